"""
The TRPO learner: natural-gradient policy steps in a KL trust region, a learned value baseline.

Shape legend: ``N`` steps of the on-policy batch, ``O`` observation size, ``D`` action
dimensions.

Registered as ``trpo``; consumes :class:`~mpo_ros.core.onpolicy.OnPolicyBatch` objects (every
step of the current policy version, segment by segment). One :meth:`TRPOLearner.step`:

1. V(s_t) and V(s_{t+1}) from the value network, GAE advantages and value targets
   (:func:`~mpo_ros.core.losses.trpo.gae`), advantages standardised in the batch;
2. pi_old = the policy as it is now (it sampled the batch: see :meth:`TRPOLearner.observe`),
   one natural-gradient step on the surrogate within ``max_kl``, line search, exact restore
   when it fails (:func:`~mpo_ros.core.losses.trpo.natural_gradient_step`);
3. the value network regressed on the targets with Adam, ``value_epochs`` passes of shuffled
   minibatches.

With ``estimator='vine'`` it asks for :data:`~mpo_ros.core.learners.base.VINE` data instead
(:class:`~mpo_ros.core.onpolicy.VineBatch`, simulation only) and one step is: Q estimates of
the K rollouts per state (:func:`~mpo_ros.core.losses.trpo.vine_q_values`), the same
natural-gradient step on the self-normalised surrogate of Eq. 16
(:func:`~mpo_ros.core.losses.trpo.vine_surrogate`) with the mean KL over the rollout set; the
value network is not used (the K estimates of a state are each other's baseline).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from mpo_ros.core.config import Config, NetworkConfig, TRPOConfig
from mpo_ros.core.learners import register
from mpo_ros.core.learners.base import DataRequest, ON_POLICY, VINE
from mpo_ros.core.losses import trpo as trpo_losses
from mpo_ros.core.networks import PolicyNetwork, RunningNormalizer, ValueNetwork
from mpo_ros.core.onpolicy import OnPolicyBatch, VineBatch

METRICS = ('loss/surrogate_gain', 'loss/expected_gain', 'loss/value', 'loss/entropy',
           'kl/policy', 'value/mean', 'value/target_mean', 'value/explained_variance',
           'value/advantage_std', 'grad/policy_norm', 'grad/cg_residual', 'grad/step_norm',
           'perf/line_search_steps', 'perf/line_search_accepted', 'perf/step_time')
VINE_METRICS = ('loss/surrogate_gain', 'loss/expected_gain', 'loss/entropy', 'kl/policy',
                'q/mean', 'q/action_spread', 'grad/policy_norm', 'grad/cg_residual',
                'grad/step_norm', 'perf/line_search_steps', 'perf/line_search_accepted',
                'perf/step_time', 'perf/trunk_steps', 'perf/branch_steps')


class TRPOLearner:
    """Owns the policy, the value baseline and its optimiser; ``step`` runs one TRPO update."""

    name = 'trpo'
    log_metrics = ('kl/policy', 'loss/surrogate_gain', 'loss/value', 'perf/line_search_steps')

    def __init__(self, obs_dim: int, act_dim: int, trpo: TRPOConfig | None = None,
                 network: NetworkConfig | None = None, seed: int = 0,
                 device: str | torch.device = 'cpu') -> None:
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.cfg = trpo or TRPOConfig()
        self.net_cfg = network or NetworkConfig()
        self.network = self.net_cfg
        self.vine = self.cfg.estimator == 'vine'
        if self.vine:
            self.data = DataRequest(VINE, batch_size=self.cfg.vine_states,
                                    sequence_length=self.cfg.vine_rollout_length,
                                    actions_per_state=self.cfg.vine_actions,
                                    trunk_steps=self.cfg.batch_size, parameter='trpo.estimator')
            self.log_metrics = ('kl/policy', 'loss/surrogate_gain', 'q/action_spread',
                                'perf/line_search_steps')
        else:
            self.data = DataRequest(ON_POLICY, batch_size=self.cfg.batch_size,
                                    sequence_length=1)
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.policy = PolicyNetwork(obs_dim, act_dim, self.net_cfg).to(self.device)
            self.value = ValueNetwork(obs_dim, self.net_cfg).to(self.device)
        self.normalizer: RunningNormalizer = self.policy.normalizer
        self.value.normalizer = self.normalizer
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=self.cfg.value_lr)
        self.generator = torch.Generator()           # minibatch order, on the CPU
        self.generator.manual_seed(seed + 1)
        # Observations seen since the last update, merged into the statistics after it.
        self._pending: list[torch.Tensor] = []
        self.num_steps = 0

    # ------------------------------------------------------------------ data
    def observe(self, observations: np.ndarray) -> None:
        """
        Queue observations [..., O] for the normalisation statistics.

        They are merged at the end of the next :meth:`step`, so the statistics, and with them
        the policy, change only together with its parameters: every step of a batch is
        sampled from exactly the pi_old of the update that consumes it.
        """
        x = torch.as_tensor(np.asarray(observations), dtype=torch.float64)
        self._pending.append(x.reshape(-1, self.obs_dim))

    def _merge_pending(self) -> None:
        if self._pending:
            self.normalizer.update(torch.cat(self._pending).to(self.device))
            self._pending = []

    def _to_tensors(self, batch: OnPolicyBatch) -> dict[str, torch.Tensor]:
        out = {}
        for k, v in batch._asdict().items():
            dtype = torch.bool if k in ('terminals', 'segment_ends') else torch.float32
            out[k] = torch.as_tensor(np.asarray(v), dtype=dtype, device=self.device)
        n = out['rewards'].shape[0]
        assert n >= 1, 'empty batch'
        for k in ('observations', 'next_observations'):
            assert out[k].shape == (n, self.obs_dim), (k, out[k].shape)
        assert out['actions'].shape == (n, self.act_dim), out['actions'].shape
        for k in ('log_probs', 'terminals', 'segment_ends'):
            assert out[k].shape == (n,), (k, out[k].shape)
        return out

    def _tensor(self, x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=dtype, device=self.device)

    # ------------------------------------------------------------------ update
    def step(self, batch: OnPolicyBatch | VineBatch) -> dict[str, float]:
        """One TRPO update on a whole on-policy (or vine) batch; returns scalar metrics."""
        if self.vine:
            return self._step_vine(batch)
        t0 = time.perf_counter()
        cfg = self.cfg
        x = self._to_tensors(batch)
        obs, actions = x['observations'], x['actions']
        n = obs.shape[0]

        with torch.no_grad():
            values = self.value(obs)                                          # [N]
            next_values = self.value(x['next_observations'])                  # [N]
        est = trpo_losses.gae(x['rewards'], values, next_values, x['terminals'],
                              x['segment_ends'], cfg.discount, cfg.gae_lambda)
        advantages, targets = est.advantages, est.returns
        adv_std = float(advantages.std()) if n > 1 else 0.0
        if cfg.normalize_advantages and n > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

        # Policy: natural gradient in the trust region around pi_old.
        with torch.no_grad():
            old = self.policy(obs).detach()
            old_log_prob = old.log_prob(actions)                              # [N]
        result, ent = self._trust_region_step(obs, old, lambda: trpo_losses.surrogate(
            self.policy(obs).log_prob(actions), old_log_prob, advantages))

        # Value baseline: regression on the GAE targets.
        value_loss = self._fit_value(obs, targets)
        var_targets = float(targets.var()) if n > 1 else 0.0
        explained = (1.0 - float((targets - values).var()) / var_targets
                     if var_targets > 1e-12 else 0.0)

        self._merge_pending()
        self.num_steps += 1
        search, stats = result.search, result.stats
        return {'loss/surrogate_gain': search.surrogate_gain,
                'loss/expected_gain': stats['expected_gain'],
                'loss/value': value_loss, 'loss/entropy': ent, 'kl/policy': search.kl,
                'value/mean': float(values.mean()), 'value/target_mean': float(targets.mean()),
                'value/explained_variance': explained, 'value/advantage_std': adv_std,
                'grad/policy_norm': stats['grad_norm'], 'grad/cg_residual': stats['cg_residual'],
                'grad/step_norm': stats['step_norm'],
                'perf/line_search_steps': float(search.backtracks),
                'perf/line_search_accepted': float(search.accepted),
                'perf/step_time': time.perf_counter() - t0}

    def _trust_region_step(self, obs: torch.Tensor, old: Any,
                           surrogate_fn: Callable[[], torch.Tensor]
                           ) -> tuple[trpo_losses.NaturalStep, float]:
        """Natural gradient step on ``surrogate_fn`` within the KL bound around ``old``."""
        cfg = self.cfg
        params = [p for p in self.policy.parameters() if p.requires_grad]
        result = trpo_losses.natural_gradient_step(
            params, surrogate_fn, lambda: trpo_losses.mean_kl(old, self.policy(obs)),
            cfg.max_kl, cfg.cg_iterations, cfg.cg_damping, cfg.line_search_shrink,
            cfg.line_search_steps)
        with torch.no_grad():
            entropy = float(trpo_losses.entropy(self.policy(obs)).mean())
        return result, entropy

    def _step_vine(self, batch: VineBatch) -> dict[str, float]:
        """One TRPO update on vine data: Eq. 16 within the trust region, no value fit."""
        t0 = time.perf_counter()
        assert isinstance(batch, VineBatch), type(batch)
        cfg = self.cfg
        obs, actions = self._tensor(batch.observations), self._tensor(batch.actions)
        rewards, alive = self._tensor(batch.rewards), self._tensor(batch.alive, torch.bool)
        n, k = actions.shape[:2]
        assert obs.shape == (n, self.obs_dim), obs.shape
        assert actions.shape == (n, k, self.act_dim), actions.shape
        assert rewards.shape[:2] == (n, k) and alive.shape == rewards.shape, rewards.shape
        q = trpo_losses.vine_q_values(rewards, alive, cfg.discount)              # [N, K]
        by_action = actions.transpose(0, 1)                                       # [K, N, D]

        with torch.no_grad():
            old = self.policy(obs).detach()
            old_log_prob = old.log_prob(by_action).transpose(0, 1)               # [N, K]
        result, ent = self._trust_region_step(obs, old, lambda: trpo_losses.vine_surrogate(
            self.policy(obs).log_prob(by_action).transpose(0, 1), old_log_prob, q))
        self._merge_pending()
        self.num_steps += 1
        search, stats = result.search, result.stats
        return {'loss/surrogate_gain': search.surrogate_gain,
                'loss/expected_gain': stats['expected_gain'], 'loss/entropy': ent,
                'kl/policy': search.kl, 'q/mean': float(q.mean()),
                'q/action_spread': float(q.std(dim=1).mean()),
                'grad/policy_norm': stats['grad_norm'], 'grad/cg_residual': stats['cg_residual'],
                'grad/step_norm': stats['step_norm'],
                'perf/line_search_steps': float(search.backtracks),
                'perf/line_search_accepted': float(search.accepted),
                'perf/step_time': time.perf_counter() - t0,
                'perf/trunk_steps': float(batch.trunk_steps),
                'perf/branch_steps': float(batch.branch_steps)}

    def _fit_value(self, obs: torch.Tensor, targets: torch.Tensor) -> float:
        """Adam on the squared error, ``value_epochs`` shuffled passes; last pass's mean loss."""
        n = obs.shape[0]
        size = min(self.cfg.value_minibatch_size, n)
        targets = targets.detach()
        losses: list[float] = []
        for _ in range(self.cfg.value_epochs):
            order = torch.randperm(n, generator=self.generator).to(self.device)
            losses = []
            for start in range(0, n, size):
                idx = order[start:start + size]
                loss = (self.value(obs[idx]) - targets[idx]).square().mean()
                self.value_opt.zero_grad(set_to_none=True)
                loss.backward()
                self.value_opt.step()
                losses.append(float(loss.detach()))
        if not losses:                                   # value_epochs = 0
            with torch.no_grad():
                return float((self.value(obs) - targets).square().mean())
        return float(np.mean(losses))

    def metric_names(self) -> tuple[str, ...]:
        """Names of the metrics :meth:`step` returns."""
        return VINE_METRICS if self.vine else METRICS

    def policy_state(self) -> dict[str, torch.Tensor]:
        """Return the policy's parameters and observation statistics, for broadcasting."""
        return self.policy.state_dict()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, object]:
        """Everything needed to continue exactly: networks, optimiser, queued statistics, RNG."""
        pending = (torch.cat(self._pending) if self._pending
                   else torch.zeros((0, self.obs_dim), dtype=torch.float64))
        return {'num_steps': self.num_steps,
                'policy': self.policy.state_dict(), 'value': self.value.state_dict(),
                'value_opt': self.value_opt.state_dict(),
                'pending_observations': pending, 'generator': self.generator.get_state()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore from :meth:`state_dict` (shapes must match this learner's configuration)."""
        self.policy.load_state_dict(state['policy'])
        self.value.load_state_dict(state['value'])
        self.value_opt.load_state_dict(state['value_opt'])
        pending = torch.as_tensor(state['pending_observations'], dtype=torch.float64)
        if pending.dim() != 2 or pending.shape[1] != self.obs_dim:
            raise ValueError(f'pending observations of shape {tuple(pending.shape)}')
        self._pending = [pending] if pending.shape[0] else []
        self.generator.set_state(state['generator'])
        self.num_steps = int(state['num_steps'])


@register('trpo')
def build(obs_dim: int, act_dim: int, config: Config, seed: int = 0,
          device: str | torch.device = 'cpu') -> TRPOLearner:
    """Registry factory: TRPO from the full configuration (sections ``trpo`` and ``network``)."""
    return TRPOLearner(obs_dim, act_dim, config.trpo, config.network, seed, device)
