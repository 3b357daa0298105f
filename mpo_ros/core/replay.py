"""
Sequence replay in numpy, storing the behaviour log-probability of every action.

Shape legend: ``B`` sequences, ``T`` steps, ``O`` observation size, ``D`` action dimensions.

Transitions go into a ring buffer tagged with a stream id (one per actor) and a running index
within that stream; each slot links to the slot holding its stream's next step, so chunks from
several actors may interleave in memory. A sampled sequence follows those links only while the
target slot still holds the expected step, and stops at the end of an episode. Steps after
such an end are padding (``mask`` 0) and the observation sequence repeats the last real
next-observation there, so the learner can bootstrap from it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class SequenceBatch(NamedTuple):
    """A batch of sequences, time-major."""

    observations: np.ndarray   # [T+1, B, O]: s_0 .. s_T
    actions: np.ndarray        # [T, B, D]: sampled (pre-clip) actions
    rewards: np.ndarray        # [T, B]
    discounts: np.ndarray      # [T, B]: 0 after a terminal step, 1 otherwise (also truncation)
    log_probs: np.ndarray      # [T, B]: behaviour log b(a_t | s_t)
    mask: np.ndarray           # [T, B]: 1 for real steps, 0 for padding


_FIELDS = ('obs', 'next_obs', 'action', 'reward', 'terminal', 'end', 'log_prob', 'stream',
           'index', 'next_slot')


class StepBuffer:
    """
    What every data buffer takes: one step, or a chunk of consecutive steps, of one stream.

    Subclasses set ``obs_dim`` and ``act_dim`` and implement :meth:`add_chunk`.
    """

    obs_dim: int
    act_dim: int

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
            terminal: bool, truncated: bool, log_prob: float, stream: int = 0) -> None:
        """Store one transition; ``terminal`` (no bootstrap) and ``truncated`` both end it."""
        self.add_chunk(np.stack([obs, next_obs]), np.asarray(action)[None],
                       np.asarray([reward]), np.asarray([terminal]),
                       np.asarray([terminal or truncated]), np.asarray([log_prob]), stream)

    def add_chunk(self, observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                  terminals: np.ndarray, ends: np.ndarray, log_probs: np.ndarray,
                  stream: int = 0) -> None:
        """Store T consecutive steps: observations [T+1, O], actions [T, D], the rest [T]."""
        raise NotImplementedError

    def check_chunk(self, observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                    terminals: np.ndarray, ends: np.ndarray, log_probs: np.ndarray) -> int:
        """Assert the shapes of a chunk (the runner validated its contents); return T."""
        steps = actions.shape[0]
        assert observations.shape == (steps + 1, self.obs_dim), observations.shape
        assert actions.shape == (steps, self.act_dim), actions.shape
        for name, x in (('rewards', rewards), ('terminals', terminals), ('ends', ends),
                        ('log_probs', log_probs)):
            assert np.shape(x) == (steps,), (name, np.shape(x))
        return steps


class SequenceReplay(StepBuffer):
    """Fixed-capacity ring buffer of transitions sampled as sequences."""

    def __init__(self, obs_dim: int, act_dim: int, capacity: int, seed: int = 0,
                 batch_size: int = 64, sequence_length: int = 4) -> None:
        """Allocate ``capacity`` slots; ``sample()`` without arguments draws B x T sequences."""
        if capacity < 1:
            raise ValueError('capacity must be positive')
        self.obs_dim, self.act_dim, self.capacity = obs_dim, act_dim, capacity
        self.batch_size, self.sequence_length = batch_size, sequence_length
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros((capacity, act_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.terminal = np.zeros(capacity, bool)
        self.end = np.zeros(capacity, bool)
        self.log_prob = np.zeros(capacity, np.float32)
        self.stream = np.full(capacity, -1, np.int64)
        self.index = np.full(capacity, -1, np.int64)
        self.next_slot = np.full(capacity, -1, np.int64)
        self.cursor = 0
        self.size = 0
        self.added = 0
        self._next_index: dict[int, int] = {}
        self._last_slot: dict[int, int] = {}
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        """Transitions currently stored."""
        return self.size

    def add_chunk(self, observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                  terminals: np.ndarray, ends: np.ndarray, log_probs: np.ndarray,
                  stream: int = 0) -> None:
        """Store T consecutive steps: observations [T+1, O], actions [T, D], the rest [T]."""
        steps = self.check_chunk(observations, actions, rewards, terminals, ends, log_probs)
        slots = (self.cursor + np.arange(steps)) % self.capacity
        start = self._next_index.get(stream, 0)
        last = self._last_slot.get(stream)
        # Link from the stream's previous step only if that slot has not been overwritten.
        link_from = last if last is not None and self.stream[last] == stream and \
            self.index[last] == start - 1 else None
        self.obs[slots] = observations[:-1]
        self.next_obs[slots] = observations[1:]
        self.action[slots] = actions
        self.reward[slots] = rewards
        self.terminal[slots] = terminals
        self.end[slots] = np.asarray(ends) | np.asarray(terminals)
        self.log_prob[slots] = log_probs
        self.stream[slots] = stream
        self.index[slots] = start + np.arange(steps)
        self.next_slot[slots[:-1]] = slots[1:]
        self.next_slot[slots[-1]] = -1
        if link_from is not None and link_from not in slots:
            self.next_slot[link_from] = slots[0]
        self._next_index[stream] = start + steps
        self._last_slot[stream] = int(slots[-1])
        self.cursor = int((self.cursor + steps) % self.capacity)
        self.size = min(self.size + steps, self.capacity)
        self.added += steps

    def next_stream(self) -> int:
        """Return the lowest stream id never used in this buffer (restored with its state)."""
        return max(self._next_index, default=-1) + 1

    def sample(self, batch_size: int | None = None, seq_len: int | None = None
               ) -> SequenceBatch:
        """Uniformly chosen start transitions, each followed for up to ``seq_len`` steps."""
        batch_size = self.batch_size if batch_size is None else batch_size
        seq_len = self.sequence_length if seq_len is None else seq_len
        if self.size == 0:
            raise ValueError('cannot sample from an empty replay buffer')
        start = self.rng.integers(0, self.size, size=batch_size)
        idx = np.empty((seq_len, batch_size), np.int64)                       # [T, B]
        cont = np.ones((seq_len, batch_size), bool)
        idx[0] = start
        for t in range(1, seq_len):
            prev = idx[t - 1]
            cur = self.next_slot[prev]
            cont[t] = cont[t - 1] & (cur >= 0) & ~self.end[prev]
            cur = np.where(cont[t], cur, prev)
            cont[t] &= (self.stream[cur] == self.stream[prev]) & (
                self.index[cur] == self.index[prev] + 1)
            idx[t] = np.where(cont[t], cur, prev)
        mask = cont
        # s_0 = obs[start]; s_{t+1} = next_obs[idx_t] while real, else repeat the last state.
        # Padding repeats the last real slot, so s_{t+1} = next_obs[idx_t] covers both cases.
        observations = np.concatenate([self.obs[idx[:1]], self.next_obs[idx]], axis=0)
        m = mask.astype(np.float32)
        return SequenceBatch(
            observations=observations,
            actions=self.action[idx] * m[..., None],
            rewards=self.reward[idx] * m,
            discounts=(1.0 - self.terminal[idx].astype(np.float32)) * m,
            log_probs=self.log_prob[idx] * m,
            mask=m)

    def state_dict(self) -> dict[str, object]:
        """Arrays as tensors plus counters and RNG state, loadable with weights_only=True."""
        # Until the ring wraps, the filled slots are exactly 0..size-1: save only those.
        state: dict[str, object] = {k: torch.from_numpy(getattr(self, k)[:self.size].copy())
                                    for k in _FIELDS}
        state['meta'] = {'cursor': self.cursor, 'size': self.size, 'added': self.added,
                         'capacity': self.capacity,
                         'next_index': {str(k): v for k, v in self._next_index.items()},
                         'last_slot': {str(k): v for k, v in self._last_slot.items()},
                         'rng': _rng_to_strings(self.rng.bit_generator.state)}
        return state

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore from :meth:`state_dict`; the capacity and sizes must match."""
        meta = state['meta']
        if meta['capacity'] != self.capacity:
            raise ValueError(f"replay capacity mismatch: checkpoint {meta['capacity']}, "
                             f'configured {self.capacity}')
        size = int(meta['size'])
        for k in _FIELDS:
            arr, mine = state[k].numpy(), getattr(self, k)
            if arr.shape != (size,) + mine.shape[1:] or arr.dtype != mine.dtype:
                raise ValueError(f'replay field {k}: {arr.dtype} {arr.shape} does not fit '
                                 f'{size} slots of {mine.dtype} {mine.shape[1:]}')
        for k in _FIELDS:
            getattr(self, k)[:size] = state[k].numpy()
        self.cursor, self.size, self.added = meta['cursor'], meta['size'], meta['added']
        self._next_index = {int(k): v for k, v in meta['next_index'].items()}
        self._last_slot = {int(k): v for k, v in meta['last_slot'].items()}
        self.rng.bit_generator.state = _rng_from_strings(meta['rng'])


def _rng_to_strings(state: dict) -> dict:
    """Numpy bit-generator state with its big integers as strings (safe to serialise)."""
    return {k: (_rng_to_strings(v) if isinstance(v, dict) else
                str(v) if isinstance(v, int) else v) for k, v in state.items()}


def _rng_from_strings(state: dict) -> dict:
    return {k: (_rng_from_strings(v) if isinstance(v, dict) else
                int(v) if isinstance(v, str) and v.lstrip('-').isdigit() else v)
            for k, v in state.items()}
