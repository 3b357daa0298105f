"""
MPO policy improvement: E-step temperature dual and decoupled KL-constrained M-step.

Shape legend: ``N`` action samples per state, ``B`` states, ``D`` action dimensions.

E-step (paper Sec. 3.1, App. D.2, with the normaliser sign of errata 2): for each state the
non-parametric ``q(a|s) ∝ pi_i(a|s) exp(Q(s, a) / eta)``; with the actions sampled from the
target policy ``pi_i`` the weights are ``softmax_j(Q(s, a_j) / eta)``. The temperature minimises
the convex dual ``g(eta) = eta * eps + eta * mean_s log mean_j exp(Q(s, a_j) / eta)``, whose
stationary point is exactly ``mean_s KL(q_s || uniform) = eps``.

M-step (App. D.3 with errata 1): with the old (target) policy ``pi_i = N(mu_i, Sigma_i)`` and
the online ``N(mu, Sigma)``, fit ``pi_mu = N(mu, Sigma_i)`` and ``pi_Sigma = N(mu_i, Sigma)`` by
weighted maximum likelihood subject to ``KL(pi_i || pi_mu) < eps_mu`` and
``KL(pi_i || pi_Sigma) < eps_Sigma`` (old policy first), through Lagrange multipliers.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from mpo_ros.core.distributions import DiagGaussian, Gaussian


class EStepResult(NamedTuple):
    """Detached sample weights and the temperature dual loss."""

    weights: torch.Tensor        # [N, B], columns sum to 1, detached
    loss_temperature: torch.Tensor   # scalar, gradient only w.r.t. the temperature
    stats: dict[str, torch.Tensor]


def temperature_dual(q_values: torch.Tensor, temperature: torch.Tensor, epsilon: float,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """
    Dual ``eta * eps + eta * mean_s [logsumexp_j(Q/eta) - log N]`` (scalar).

    ``q_values`` [N, B] is detached here; ``mask`` [B] (1 valid, 0 padding) weights the mean.
    """
    assert q_values.dim() == 2, q_values.shape
    assert temperature.dim() == 0, temperature.shape
    n = q_values.shape[0]
    lse = torch.logsumexp(q_values.detach() / temperature, dim=0) - math.log(n)   # [B]
    return temperature * epsilon + temperature * _masked_mean(lse, mask)


def e_step(q_values: torch.Tensor, temperature: torch.Tensor, epsilon: float,
           mask: torch.Tensor | None = None) -> EStepResult:
    """Sample weights ``softmax_j(Q/eta)`` and the temperature loss for one dual step."""
    assert q_values.dim() == 2, q_values.shape
    loss = temperature_dual(q_values, temperature, epsilon, mask)
    weights = torch.softmax(q_values.detach() / temperature.detach(), dim=0)
    n = q_values.shape[0]
    # Realised KL(q || uniform) per state; equals epsilon at the dual's optimum.
    kl_q = (weights * (weights.clamp_min(1e-30) * n).log()).sum(0)
    stats = {'temperature': temperature.detach(),
             'kl_q_uniform': _masked_mean(kl_q, mask).detach(),
             'q_mean': _masked_mean(q_values.detach().mean(0), mask)}
    return EStepResult(weights.detach(), loss, stats)


class MStepResult(NamedTuple):
    """Policy loss (with detached multipliers) and multiplier loss (with detached KLs)."""

    loss_policy: torch.Tensor
    loss_alpha: torch.Tensor
    stats: dict[str, torch.Tensor]


def decoupled_kls(old: Gaussian, online: Gaussian, per_dim: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``KL(pi_i || pi_mu)`` and ``KL(pi_i || pi_Sigma)``, [B] (or [B, D] if per_dim)."""
    pi_mu = old.with_mean(online.mean)             # new mean, old covariance
    pi_sigma = old.with_scale_of(online)           # old mean, new covariance
    if per_dim:
        if not isinstance(old, DiagGaussian):
            raise ValueError('per-dimension KL needs diagonal Gaussians')
        return old.kl_per_dim(pi_mu), old.kl_per_dim(pi_sigma)
    return old.kl(pi_mu), old.kl(pi_sigma)


def m_step(old: Gaussian, online: Gaussian, actions: torch.Tensor, weights: torch.Tensor,
           alpha_mean: torch.Tensor, alpha_cov: torch.Tensor, epsilon_mean: float,
           epsilon_cov: float, per_dim: bool = False, mask: torch.Tensor | None = None
           ) -> MStepResult:
    """
    Weighted ML of the sampled actions under the decoupled policies, plus Lagrangians.

    ``old`` is the target policy (detached), ``online`` the policy being trained, both over B
    states; ``actions`` [N, B, D] were sampled from ``old``; ``weights`` [N, B] from the E-step.
    ``alpha_*`` are scalars, or [D] with ``per_dim``.
    """
    assert actions.dim() == 3 and weights.shape == actions.shape[:2], (
        actions.shape, weights.shape)
    old = old.detach()
    weights = weights.detach()
    pi_mu = old.with_mean(online.mean)
    pi_sigma = old.with_scale_of(online)
    # Weighted log-likelihood: sum over samples, mean over states.
    ll_mean = _masked_mean((weights * pi_mu.log_prob(actions)).sum(0), mask)
    ll_cov = _masked_mean((weights * pi_sigma.log_prob(actions)).sum(0), mask)
    kl_mean, kl_cov = decoupled_kls(old, online, per_dim)
    kl_mean = _masked_mean(kl_mean, mask)          # scalar or [D]
    kl_cov = _masked_mean(kl_cov, mask)
    loss_policy = -(ll_mean + ll_cov) + (alpha_mean.detach() * kl_mean).sum() \
        + (alpha_cov.detach() * kl_cov).sum()
    loss_alpha = (alpha_mean * (epsilon_mean - kl_mean.detach())).sum() \
        + (alpha_cov * (epsilon_cov - kl_cov.detach())).sum()
    stats = {'kl_mean': kl_mean.detach().sum(), 'kl_cov': kl_cov.detach().sum(),
             'kl_mean_max_dim': kl_mean.detach().max(), 'alpha_mean': alpha_mean.detach().mean(),
             'alpha_cov': alpha_cov.detach().mean(), 'policy_nll': -(ll_mean + ll_cov).detach()}
    return MStepResult(loss_policy, loss_alpha, stats)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the first (batch) dimension, counting only rows where mask is 1."""
    if mask is None:
        return x.mean(0)
    m = mask.to(x.dtype)
    m = m.reshape(m.shape + (1,) * (x.dim() - m.dim()))
    return (x * m).sum(0) / m.sum().clamp_min(1.0)
