"""
Policy, critic and value modules built from an environment spec.

Shape legend: ``...`` batch dimensions, ``O`` observation size, ``D`` action dimensions.

Actions live in the normalised box [-1, 1]^D (the environment adapters rescale to the real
limits). The policy's Gaussian is unbounded; the critic sees the action clipped to the box, as
the environment does, so Q is defined for every sampled action.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from mpo_ros.core.config import NetworkConfig
from mpo_ros.core.distributions import DiagGaussian, FullGaussian, Gaussian


class RunningNormalizer(nn.Module):
    """
    Observation standardisation with running statistics.

    The statistics are buffers, so they checkpoint and travel with the policy weights.
    """

    def __init__(self, size: int, enabled: bool = True, clip: float = 5.0) -> None:
        super().__init__()
        self.enabled = enabled
        self.clip = clip
        self.register_buffer('mean', torch.zeros(size, dtype=torch.float64))
        self.register_buffer('m2', torch.zeros(size, dtype=torch.float64))
        self.register_buffer('count', torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge a batch [..., O] into the running statistics (Chan et al. parallel update)."""
        if not self.enabled:
            return
        x = x.reshape(-1, self.mean.shape[0]).to(self.mean)
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(0)
        batch_m2 = (x - batch_mean).square().sum(0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * (n / total)
        self.m2 += batch_m2 + delta.square() * (self.count * n / total)
        self.count.fill_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise and clip; identity until statistics exist."""
        if not self.enabled or self.count.item() < 2:
            return x
        std = (self.m2 / self.count).sqrt().clamp_min(1e-6)
        z = (x - self.mean.to(x.dtype)) / std.to(x.dtype)
        return z.clamp(-self.clip, self.clip)


def _torso(in_size: int, hidden: Sequence[int]) -> nn.Sequential:
    """Linear-LayerNorm-tanh first layer, ELU after (Acme's LayerNormMLP)."""
    layers: list[nn.Module] = [nn.Linear(in_size, hidden[0]), nn.LayerNorm(hidden[0]), nn.Tanh()]
    for a, b in zip(hidden[:-1], hidden[1:]):
        layers += [nn.Linear(a, b), nn.ELU()]
    return nn.Sequential(*layers)


class PolicyNetwork(nn.Module):
    """State -> Gaussian over normalised actions, full (Cholesky) or diagonal covariance."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: NetworkConfig) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.full = cfg.covariance == 'full'
        self.min_std = cfg.min_std
        self.normalizer = RunningNormalizer(obs_dim, cfg.normalize_observations)
        self.torso = _torso(obs_dim, cfg.policy_hidden)
        width = cfg.policy_hidden[-1]
        self.mean_head = nn.Linear(width, act_dim)
        self.diag_head = nn.Linear(width, act_dim)
        nn.init.uniform_(self.mean_head.weight, -1e-3, 1e-3)
        nn.init.zeros_(self.mean_head.bias)
        nn.init.uniform_(self.diag_head.weight, -1e-3, 1e-3)
        # softplus(bias) + min_std = init_std
        target = cfg.init_std - cfg.min_std
        nn.init.constant_(self.diag_head.bias, target + math.log(-math.expm1(-target)))
        if self.full:
            n_off = act_dim * (act_dim - 1) // 2
            self.offdiag_head = nn.Linear(width, n_off) if n_off else None
            if self.offdiag_head is not None:
                nn.init.uniform_(self.offdiag_head.weight, -1e-3, 1e-3)
                nn.init.zeros_(self.offdiag_head.bias)
            rows, cols = torch.tril_indices(act_dim, act_dim, offset=-1)
            self.register_buffer('_rows', rows, persistent=False)
            self.register_buffer('_cols', cols, persistent=False)

    def forward(self, obs: torch.Tensor) -> Gaussian:
        """Distribution over actions for obs [..., O]."""
        assert obs.shape[-1] == self.obs_dim, obs.shape
        h = self.torso(self.normalizer(obs))
        mean = self.mean_head(h)
        diag = F.softplus(self.diag_head(h)) + self.min_std
        if not self.full:
            return DiagGaussian(mean, diag)
        tril = torch.diag_embed(diag)
        if self.offdiag_head is not None:
            off = h.new_zeros(tril.shape)
            off[..., self._rows, self._cols] = self.offdiag_head(h)
            tril = tril + off
        return FullGaussian(mean, tril)


class CriticNetwork(nn.Module):
    """
    (state, action) -> Q value.

    The first layer is split into an observation part and an action part, so that scoring N
    sampled actions per state computes the observation part once per state.
    """

    def __init__(self, obs_dim: int, act_dim: int, cfg: NetworkConfig) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        hidden = cfg.critic_hidden
        self.normalizer = RunningNormalizer(obs_dim, cfg.normalize_observations)
        self.obs_in = nn.Linear(obs_dim, hidden[0])
        self.act_in = nn.Linear(act_dim, hidden[0], bias=False)
        self.in_norm = nn.LayerNorm(hidden[0])
        layers: list[nn.Module] = []
        for a, b in zip(hidden[:-1], hidden[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.torso = nn.Sequential(*layers)
        self.head = nn.Linear(hidden[-1], 1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q(s, a) [...] for obs [..., O] and action [..., D], leading dims broadcast."""
        assert obs.shape[-1] == self.obs_dim and action.shape[-1] == self.act_dim
        h = self.obs_in(self.normalizer(obs)) + self.act_in(action.clamp(-1.0, 1.0))
        h = torch.tanh(self.in_norm(h))
        return self.head(self.torso(h)).squeeze(-1)


class ValueNetwork(nn.Module):
    """State -> value V(s): the baseline of on-policy learners (torso as the policy's)."""

    def __init__(self, obs_dim: int, cfg: NetworkConfig) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.normalizer = RunningNormalizer(obs_dim, cfg.normalize_observations)
        self.torso = _torso(obs_dim, cfg.critic_hidden)
        self.head = nn.Linear(cfg.critic_hidden[-1], 1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s) [...] for obs [..., O]."""
        assert obs.shape[-1] == self.obs_dim, obs.shape
        return self.head(self.torso(self.normalizer(obs))).squeeze(-1)
