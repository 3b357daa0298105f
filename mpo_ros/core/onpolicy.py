"""
On-policy data: the steps of the current policy only, handed over whole and then forgotten.

Shape legend: ``N`` steps in the batch, ``O`` observation size, ``D`` action dimensions.

Steps arrive per stream (one per actor, as in the replay) and are kept in stream order, so a
batch is a set of *segments*: runs of consecutive steps of one episode. A segment ends at an
episode end (terminal or time limit) or where the batch was cut; the learner bootstraps from
``next_observations`` of a segment's last step unless it is terminal. Which policy version
produced a step is the runner's business: it stores only steps of the current version.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mpo_ros.core.replay import StepBuffer


class OnPolicyBatch(NamedTuple):
    """All stored steps, segment by segment (consecutive within a segment)."""

    observations: np.ndarray        # [N, O]: s_t
    next_observations: np.ndarray   # [N, O]: s_{t+1}
    actions: np.ndarray             # [N, D]: sampled (pre-clip) actions
    rewards: np.ndarray             # [N]
    log_probs: np.ndarray           # [N]: behaviour log pi_old(a_t | s_t)
    terminals: np.ndarray           # [N] bool: s_{t+1} is terminal (no bootstrap)
    segment_ends: np.ndarray        # [N] bool: the last step of a segment


class VineBatch(NamedTuple):
    """
    Vine data (TRPO Sec. 5.2): K actions at each of N rollout-set states, each with a rollout.

    Shape legend here: ``N`` rollout-set states, ``K`` actions per state, ``H`` rollout steps,
    ``T`` trunk steps. Rollout k of state n starts with ``actions[n, k]`` from the saved state
    s_n; ``rewards[n, k, h]`` is its reward h steps later, while ``alive[n, k, h]`` (the
    rollout took step h: it stops at a terminal step or the time limit, rewards are 0 after).
    """

    observations: np.ndarray        # [N, O]: the rollout set s_n
    actions: np.ndarray             # [N, K, D]: a_{n,k} ~ pi_old(.|s_n), pre-clip
    rewards: np.ndarray             # [N, K, H]
    alive: np.ndarray               # [N, K, H] bool
    trunk_observations: np.ndarray  # [T, O]: every trunk state (for the statistics)
    trunk_steps: int                # T
    branch_steps: int               # simulator steps of all rollouts (alive.sum())


_FIELDS = ('obs', 'next_obs', 'action', 'reward', 'log_prob', 'terminal', 'end')


class OnPolicyBuffer(StepBuffer):
    """Collects steps until ``batch_size`` are in; :meth:`sample` returns them all and clears."""

    def __init__(self, obs_dim: int, act_dim: int, batch_size: int) -> None:
        """``batch_size``: steps per update (N, at least)."""
        if batch_size < 1:
            raise ValueError('batch_size must be positive')
        self.obs_dim, self.act_dim, self.batch_size = obs_dim, act_dim, batch_size
        self._streams: dict[int, dict[str, list]] = {}
        self.size = 0
        self.added = 0

    def __len__(self) -> int:
        """Return how many steps are stored."""
        return self.size

    def ready(self) -> bool:
        """Whether a whole batch is stored."""
        return self.size >= self.batch_size

    def add_chunk(self, observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                  terminals: np.ndarray, ends: np.ndarray, log_probs: np.ndarray,
                  stream: int = 0) -> None:
        """Store T consecutive steps: observations [T+1, O], actions [T, D], the rest [T]."""
        steps = self.check_chunk(observations, actions, rewards, terminals, ends, log_probs)
        s = self._streams.setdefault(stream, {k: [] for k in _FIELDS})
        s['obs'].append(np.asarray(observations[:-1], np.float32))
        s['next_obs'].append(np.asarray(observations[1:], np.float32))
        s['action'].append(np.asarray(actions, np.float32))
        s['reward'].append(np.asarray(rewards, np.float32))
        s['log_prob'].append(np.asarray(log_probs, np.float32))
        s['terminal'].append(np.asarray(terminals, bool))
        s['end'].append(np.asarray(ends, bool) | np.asarray(terminals, bool))
        self.size += steps
        self.added += steps

    def sample(self) -> OnPolicyBatch:
        """Every stored step, streams one after another; the buffer is empty afterwards."""
        if self.size == 0:
            raise ValueError('cannot sample from an empty on-policy buffer')
        parts = []
        for s in self._streams.values():
            if not s['obs']:
                continue
            cols = {k: np.concatenate(v) for k, v in s.items()}
            cols['end'][-1] = True           # the batch cuts the stream here: bootstrap
            parts.append(cols)
        batch = OnPolicyBatch(*(np.concatenate([p[k] for p in parts]) for k in _FIELDS))
        self.clear()
        return batch

    def clear(self) -> None:
        """Forget every stored step (for example, after the policy changed)."""
        self._streams = {}
        self.size = 0

    def state_dict(self) -> dict[str, object]:
        """Return the stored steps per stream (numpy arrays and plain values only)."""
        return {'meta': {'size': self.size, 'added': self.added,
                         'batch_size': self.batch_size},
                'streams': {str(k): {f: np.concatenate(v) if v else np.zeros(0)
                                     for f, v in s.items()}
                            for k, s in self._streams.items() if s['obs']}}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore :meth:`state_dict`."""
        meta = state['meta']
        if int(meta['batch_size']) != self.batch_size:
            raise ValueError(f"batch_size {meta['batch_size']} != {self.batch_size}")
        self._streams = {int(k): {f: [np.asarray(v)] for f, v in s.items()}
                         for k, s in state['streams'].items()}
        self.size, self.added = int(meta['size']), int(meta['added'])

    def next_stream(self) -> int:
        """Return the lowest stream id not used by stored steps."""
        return max(self._streams, default=-1) + 1
