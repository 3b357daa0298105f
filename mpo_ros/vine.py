"""
Vine data for TRPO (Schulman et al. 2015, Sec. 5.2): branched rollouts from saved states.

Simulation only: the environment must save and restore its state (``Env.snapshot`` /
``Env.restore``, see :mod:`mpo_ros.envs`), so the in-process trainer collects this data kind
(:data:`~mpo_ros.core.learners.base.VINE`) and the ROS learner node refuses it: a robot
cannot be put back into a past state.

Shape legend: ``T`` trunk steps, ``N`` rollout-set states, ``K`` actions per state, ``H``
rollout steps, ``O`` observation size, ``D`` action dimensions.

One :meth:`VineCollector.collect`:

1. the *trunk*: T steps of the current policy, continuing the previous call's episode
   (episodes reset as usual); the *rollout set* is N of these T states, drawn uniformly
   without replacement before the trunk runs;
2. at each rollout-set state s_n the simulator is saved, and K actions are taken from it:
   the trunk's own sampled action and K - 1 more samples of pi_old(.|s_n) (the paper's
   q = pi_old, its choice for continuous control);
3. each action a_{n,k} is followed by a rollout of at most H steps in total with the current
   policy, stopped early by a terminal step or the time limit. The rollouts of one state use
   *common random numbers*: step h of every rollout takes ``mean(s) + L(s) eps_h`` with the
   same standard-normal eps_h (L the Cholesky factor), and the restored environment RNG makes
   any simulator noise common too, so the K returns differ through the first action (and its
   consequences), not through independent noise;
4. the simulator is restored to s_n and the trunk continues with its own action.

The learner turns the rewards into Q estimates and maximises the self-normalised surrogate of
Eq. 16 (:func:`~mpo_ros.core.losses.trpo.vine_surrogate`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from mpo_ros import envs
from mpo_ros.core.learners import DataRequest, VINE
from mpo_ros.core.onpolicy import VineBatch
from mpo_ros.core.policy import Policy


@torch.no_grad()
def act_with_noise(policy: Policy, obs: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Return the pre-clip action ``mean(obs) + L(obs) noise`` [D] for standard-normal noise."""
    dist = policy.net(torch.as_tensor(np.asarray(obs, np.float32)))
    eps = torch.as_tensor(np.asarray(noise, np.float32)).unsqueeze(-1)
    return (dist.mean + (dist.scale_tril @ eps).squeeze(-1)).numpy()


class VineCollector:
    """Runs the trunk and the branched rollouts on one environment (module docstring)."""

    def __init__(self, env: envs.Env, policy: Policy, request: DataRequest, seed: int) -> None:
        """
        Start the trunk: reset ``env`` and check that it can save and restore its state.

        ``policy`` is the acting policy the runner keeps up to date; ``seed`` draws the
        rollout set, the extra actions and the common random numbers. Raises
        :class:`~mpo_ros.envs.SnapshotUnsupported` at once if the environment cannot restore.
        """
        if request.kind != VINE:
            raise ValueError(f'a vine collector cannot serve {request.kind!r} data')
        self.env, self.policy, self.request = env, policy, request
        self.rng = np.random.default_rng([seed, 0x5EED])
        self.obs = env.reset()
        env.restore(env.snapshot())          # fail now, not after a trunk
        self.episode_return = 0.0
        self.episode_returns: list[float] = []   # finished trunk episodes, for the runner

    def collect(self) -> VineBatch:
        """Run one trunk with its rollouts; return them as a batch."""
        r, spec = self.request, self.env.spec
        t_len, n_len, k_len, h_len = (r.trunk_steps, r.batch_size, r.actions_per_state,
                                      r.sequence_length)
        chosen = np.zeros(t_len, bool)
        chosen[self.rng.choice(t_len, n_len, replace=False)] = True
        observations = np.zeros((n_len, spec.obs_dim), np.float32)
        actions = np.zeros((n_len, k_len, spec.act_dim), np.float32)
        rewards = np.zeros((n_len, k_len, h_len), np.float32)
        alive = np.zeros((n_len, k_len, h_len), bool)
        trunk = np.zeros((t_len, spec.obs_dim), np.float32)
        n = 0
        for t in range(t_len):
            trunk[t] = self.obs
            act = self.policy.act(self.obs)
            if chosen[t]:
                observations[n] = self.obs
                actions[n], rewards[n], alive[n] = self.branch(self.obs, act.raw)
                n += 1
            step = self.env.step(act.action)
            self.episode_return += step.reward
            self.obs = step.observation
            if step.terminal or step.truncated:
                self.episode_returns.append(self.episode_return)
                self.obs, self.episode_return = self.env.reset(), 0.0
        return VineBatch(observations, actions, rewards, alive, trunk, t_len, int(alive.sum()))

    def branch(self, obs: np.ndarray, first: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """
        From the current state (observation ``obs``), K rollouts; the environment is back there.

        ``first`` [D] is the trunk's sampled action, the first of the K. Returns the actions
        [K, D], rewards [K, H] and alive [K, H] of the rollouts.
        """
        k_len, h_len = self.request.actions_per_state, self.request.sequence_length
        d = self.env.spec.act_dim
        saved = self.env.snapshot()
        firsts = [np.asarray(first, np.float32)] + [
            act_with_noise(self.policy, obs, self.rng.standard_normal(d))
            for _ in range(k_len - 1)]
        common = self.rng.standard_normal((h_len - 1, d))     # common random numbers
        rewards = np.zeros((k_len, h_len), np.float32)
        alive = np.zeros((k_len, h_len), bool)
        for k, raw in enumerate(firsts):
            self.env.restore(saved)
            for h in range(h_len):
                step = self.env.step(np.clip(raw, -1.0, 1.0))
                rewards[k, h], alive[k, h] = step.reward, True
                if step.terminal or step.truncated or h == h_len - 1:
                    break
                raw = act_with_noise(self.policy, step.observation, common[h])
        self.env.restore(saved)
        return np.stack(firsts), rewards, alive

    def pop_episode_returns(self) -> list[float]:
        """Return the trunk episodes finished since the last call, and forget them."""
        out, self.episode_returns = self.episode_returns, []
        return out

    def state_dict(self) -> dict[str, Any]:
        """Return the collector's RNG state (plain values; the environment is not saved)."""
        return {'rng': json.dumps(self.rng.bit_generator.state)}
