"""
The MPO learner: Retrace critic, E-step, decoupled M-step, duals and target networks.

Shape legend: ``T`` sequence steps, ``B`` sequences, ``N`` action samples, ``O`` observation
size, ``D`` action dimensions.

Registered as ``mpo``: the runners reach it through :mod:`mpo_ros.core.learners` only. It
consumes :class:`~mpo_ros.core.replay.SequenceBatch` objects and knows nothing of where they
came from.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
from torch import nn

from mpo_ros.core.config import Config, MPOConfig, NetworkConfig, ReplayConfig
from mpo_ros.core.learners import register
from mpo_ros.core.learners.base import DataRequest, SEQUENCES
from mpo_ros.core.losses import mpo as mpo_losses
from mpo_ros.core.losses import retrace
from mpo_ros.core.networks import CriticNetwork, PolicyNetwork, RunningNormalizer
from mpo_ros.core.replay import SequenceBatch

_LOG_FLOOR = math.log(1e-8)


METRICS = ('loss/critic', 'loss/policy', 'dual/temperature', 'dual/alpha_mean',
           'dual/alpha_cov', 'kl/q_uniform', 'kl/mean', 'kl/cov', 'kl/mean_max_dim',
           'loss/policy_nll', 'q/mean', 'q/target_mean', 'grad/critic_norm',
           'grad/policy_norm', 'perf/step_time')
# Names of the loss functions' stats in METRICS.
_LOSS_STATS = {'temperature': 'dual/temperature', 'kl_q_uniform': 'kl/q_uniform',
               'q_mean': 'q/mean', 'kl_mean': 'kl/mean', 'kl_cov': 'kl/cov',
               'kl_mean_max_dim': 'kl/mean_max_dim', 'alpha_mean': 'dual/alpha_mean',
               'alpha_cov': 'dual/alpha_cov', 'policy_nll': 'loss/policy_nll'}


class MPOLearner:
    """Owns networks, target networks, optimisers and Lagrange duals; ``step`` runs one update."""

    name = 'mpo'
    log_metrics = ('dual/temperature', 'kl/mean', 'kl/cov')

    def __init__(self, obs_dim: int, act_dim: int, mpo: MPOConfig | None = None,
                 network: NetworkConfig | None = None, seed: int = 0,
                 device: str | torch.device = 'cpu', replay: ReplayConfig | None = None
                 ) -> None:
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.cfg = mpo or MPOConfig()
        self.net_cfg = network or NetworkConfig()
        self.network = self.net_cfg
        replay = replay or ReplayConfig()
        self.data = DataRequest(SEQUENCES, replay.batch_size, self.cfg.sequence_length)
        if self.cfg.per_dim_kl and self.net_cfg.covariance != 'diagonal':
            raise ValueError('per_dim_kl requires a diagonal policy')
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.policy = PolicyNetwork(obs_dim, act_dim, self.net_cfg).to(self.device)
            self.critic = CriticNetwork(obs_dim, act_dim, self.net_cfg).to(self.device)
        # One normaliser shared by all four networks keeps online and target inputs identical.
        self.normalizer: RunningNormalizer = self.policy.normalizer
        self.critic.normalizer = self.normalizer
        self.target_policy = copy.deepcopy(self.policy)
        self.target_critic = copy.deepcopy(self.critic)
        for net in (self.target_policy, self.target_critic):
            net.normalizer = self.normalizer
            net.requires_grad_(False)
        dual_shape = (act_dim,) if self.cfg.per_dim_kl else ()

        def dual(value: float) -> nn.Parameter:
            return nn.Parameter(torch.full(dual_shape, math.log(value), device=self.device))

        self.log_temperature = nn.Parameter(
            torch.tensor(math.log(self.cfg.init_temperature), device=self.device))
        self.log_alpha_mean = dual(self.cfg.init_alpha_mean)
        self.log_alpha_cov = dual(self.cfg.init_alpha_cov)
        self.policy_opt = torch.optim.Adam(self.policy.parameters(), lr=self.cfg.policy_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=self.cfg.critic_lr)
        self.dual_opt = torch.optim.Adam(
            [self.log_temperature, self.log_alpha_mean, self.log_alpha_cov], lr=self.cfg.dual_lr)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed + 1)
        self.num_steps = 0

    # ------------------------------------------------------------------ data
    def observe(self, observations: np.ndarray) -> None:
        """Update the observation statistics with newly collected observations [..., O]."""
        self.normalizer.update(torch.as_tensor(observations, device=self.device))

    def _to_tensors(self, batch: SequenceBatch) -> dict[str, torch.Tensor]:
        out = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32, device=self.device)
               for k, v in batch._asdict().items()}
        t, b = out['rewards'].shape
        assert out['observations'].shape == (t + 1, b, self.obs_dim), out['observations'].shape
        assert out['actions'].shape == (t, b, self.act_dim), out['actions'].shape
        for k in ('discounts', 'log_probs', 'mask'):
            assert out[k].shape == (t, b), (k, out[k].shape)
        return out

    # ------------------------------------------------------------------ update
    def step(self, batch: SequenceBatch) -> dict[str, float]:
        """One learner update on a batch of sequences; returns scalar metrics."""
        t0 = time.perf_counter()
        x = self._to_tensors(batch)
        obs, actions, mask = x['observations'], x['actions'], x['mask']
        steps, b = x['rewards'].shape
        n = self.cfg.num_action_samples

        with torch.no_grad():
            target_pi = self.target_policy(obs)                                # [T+1, B]
            sampled = target_pi.sample(n, generator=self.generator)           # [N, T+1, B, D]
            q_sampled = self.target_critic(obs, sampled)                       # [N, T+1, B]
            q_taken_target = self.target_critic(obs[:-1], actions)             # [T, B]
            old_pi = target_pi.index(slice(0, steps))
            log_pi = old_pi.log_prob(actions)                                  # [T, B]
            targets = retrace.retrace_targets(
                q_taken_target, q_sampled[:, 1:].mean(0), x['rewards'],
                self.cfg.discount * x['discounts'], log_pi, x['log_probs'],
                self.cfg.retrace_lambda, mask)

        # Critic: regress Q(s_t, a_t) on the Retrace targets.
        q = self.critic(obs[:-1], actions)
        loss_critic = retrace.critic_loss(q, targets, mask)

        # E-step over all valid states of the batch, then the M-step.
        flat = steps * b
        mask_flat = mask.reshape(flat)
        q_e = q_sampled[:, :-1].reshape(n, flat)
        temperature = self.log_temperature.exp()
        e = mpo_losses.e_step(q_e, temperature, self.cfg.epsilon, mask_flat)
        online = self.policy(obs[:-1].reshape(flat, self.obs_dim))
        old_flat = old_pi.reshape((flat,))
        m = mpo_losses.m_step(
            old_flat, online, sampled[:, :-1].reshape(n, flat, self.act_dim), e.weights,
            self.log_alpha_mean.exp(), self.log_alpha_cov.exp(), self.cfg.epsilon_mean,
            self.cfg.epsilon_cov, self.cfg.per_dim_kl, mask_flat)

        self.critic_opt.zero_grad(set_to_none=True)
        loss_critic.backward()
        critic_norm = self._clip(self.critic)
        self.critic_opt.step()

        self.policy_opt.zero_grad(set_to_none=True)
        m.loss_policy.backward()
        policy_norm = self._clip(self.policy)
        self.policy_opt.step()

        self.dual_opt.zero_grad(set_to_none=True)
        (e.loss_temperature + m.loss_alpha).backward()
        self.dual_opt.step()
        self._clamp_duals()

        self.num_steps += 1
        if self.num_steps % self.cfg.target_update_period == 0:
            self.update_targets()
        metrics = {'loss/critic': loss_critic.item(), 'loss/policy': m.loss_policy.item(),
                   'q/target_mean': targets[mask > 0].mean().item(),
                   'grad/critic_norm': critic_norm, 'grad/policy_norm': policy_norm}
        metrics.update({_LOSS_STATS[k]: float(v) for k, v in {**e.stats, **m.stats}.items()})
        metrics['perf/step_time'] = time.perf_counter() - t0
        return metrics

    def metric_names(self) -> tuple[str, ...]:
        """Names of the metrics :meth:`step` returns."""
        return METRICS

    def policy_state(self) -> dict[str, torch.Tensor]:
        """Return the online policy's parameters and observation statistics, for actors."""
        return self.policy.state_dict()

    def _clamp_duals(self) -> None:
        # Log-space Adam steps grow a multiplier exponentially while its KL stays above the
        # bound (Adam's step noise alone can keep it there); unbounded, it reached 1e19 and
        # the likelihood gradient vanished in float32 under the KL term's.
        with torch.no_grad():
            self.log_temperature.clamp_(min=_LOG_FLOOR)
            log_max = math.log(self.cfg.max_multiplier)
            for p in (self.log_alpha_mean, self.log_alpha_cov):
                p.clamp_(min=_LOG_FLOOR, max=log_max)

    def _clip(self, net: nn.Module) -> float:
        if self.cfg.grad_clip > 0:
            return float(nn.utils.clip_grad_norm_(net.parameters(), self.cfg.grad_clip))
        return float('nan')

    def update_targets(self) -> None:
        """Hard copy of the online networks into the targets (normaliser stays shared)."""
        self.target_policy.load_state_dict(self.policy.state_dict())
        self.target_critic.load_state_dict(self.critic.state_dict())

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, object]:
        """Everything needed to continue exactly: networks, targets, optimisers, duals, RNG."""
        return {
            'num_steps': self.num_steps,
            'policy': self.policy.state_dict(), 'critic': self.critic.state_dict(),
            'target_policy': self.target_policy.state_dict(),
            'target_critic': self.target_critic.state_dict(),
            'policy_opt': self.policy_opt.state_dict(),
            'critic_opt': self.critic_opt.state_dict(),
            'dual_opt': self.dual_opt.state_dict(),
            'log_temperature': self.log_temperature.detach().clone(),
            'log_alpha_mean': self.log_alpha_mean.detach().clone(),
            'log_alpha_cov': self.log_alpha_cov.detach().clone(),
            'generator': self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore from :meth:`state_dict` (shapes must match this learner's configuration)."""
        self.policy.load_state_dict(state['policy'])
        self.critic.load_state_dict(state['critic'])
        self.target_policy.load_state_dict(state['target_policy'])
        self.target_critic.load_state_dict(state['target_critic'])
        with torch.no_grad():
            self.log_temperature.copy_(state['log_temperature'])
            self.log_alpha_mean.copy_(state['log_alpha_mean'])
            self.log_alpha_cov.copy_(state['log_alpha_cov'])
        self._clamp_duals()       # a checkpoint written before the cap may hold larger ones
        self.policy_opt.load_state_dict(state['policy_opt'])
        self.critic_opt.load_state_dict(state['critic_opt'])
        self.dual_opt.load_state_dict(state['dual_opt'])
        self.generator.set_state(state['generator'])
        self.num_steps = int(state['num_steps'])

    @property
    def temperature(self) -> float:
        """Current E-step temperature."""
        return float(self.log_temperature.detach().exp())


@register('mpo')
def build(obs_dim: int, act_dim: int, config: Config, seed: int = 0,
          device: str | torch.device = 'cpu') -> MPOLearner:
    """Registry factory: continuous-action MPO from the full configuration."""
    return MPOLearner(obs_dim, act_dim, config.mpo, config.network, seed, device, config.replay)
