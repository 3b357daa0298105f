"""
Loss functions against numpy written from the definitions: per-dimension M-step, masked Retrace.

Non-constant rewards, off-policy ratios on both sides of 1, lambda below 1 and padding with
absurd values, so TD(0), n-step returns, ignored behaviour log-probs or a dropped mask all
give other numbers; per-dimension multipliers differ, so a mean over dimensions in place of
the sum gives other numbers too.
"""

import math

import numpy as np
import pytest
import torch

from mpo_ros.core.distributions import DiagGaussian
from mpo_ros.core.losses.mpo import decoupled_kls, m_step
from mpo_ros.core.losses.retrace import critic_loss, retrace_targets


# ---------------------------------------------------------------------- per-dimension M-step
def _log_normal(a, m, s):
    return -0.5 * ((a - m) / s) ** 2 - np.log(s) - 0.5 * math.log(2 * math.pi)


def _setup(seed=0, n=5, b=4, d=3):
    rng = np.random.default_rng(seed)
    mu_i, std_i = rng.normal(size=(b, d)), rng.uniform(0.5, 1.5, size=(b, d))
    mu, std = mu_i + 0.3 * rng.normal(size=(b, d)), std_i * rng.uniform(0.7, 1.4, size=(b, d))
    acts = mu_i + std_i * rng.normal(size=(n, b, d))
    w = rng.random((n, b))
    w /= w.sum(0)
    mask = np.array([1.0, 1.0, 0.0, 1.0])
    return mu_i, std_i, mu, std, acts, w, mask


def test_per_dim_m_step_by_hand():
    """
    Per-dimension KLs, policy loss, multiplier loss and all gradients, by hand.

    KL_mu[d] = mean_s 0.5 (mu - mu_i)^2 / s_i^2, KL_S[d] = mean_s 0.5 (r - 1 - log r) with
    r = s_i^2 / s^2 (old policy first); the loss is -(LL_mu + LL_S) + sum_d alpha_mu[d]
    KL_mu[d] + sum_d alpha_S[d] KL_S[d] and the multipliers' loss sum_d alpha[d] (eps - KL[d]).
    """
    mu_i, std_i, mu0, std0, acts, w, mask = _setup()
    eps_m, eps_c = 0.02, 1e-3
    a_m, a_c = np.array([0.5, 2.0, 7.0]), np.array([3.0, 0.1, 40.0])
    valid = mask > 0
    nv = valid.sum()

    kl_m = (0.5 * (mu0 - mu_i) ** 2 / std_i ** 2)[valid].mean(0)                      # [D]
    r = (std_i / std0) ** 2
    kl_c = (0.5 * (r - 1 - np.log(r)))[valid].mean(0)
    ll_m = (w * _log_normal(acts, mu0, std_i).sum(-1)).sum(0)[valid].mean()
    ll_c = (w * _log_normal(acts, mu_i, std0).sum(-1)).sum(0)[valid].mean()
    loss_policy = -(ll_m + ll_c) + (a_m * kl_m).sum() + (a_c * kl_c).sum()
    loss_alpha = (a_m * (eps_m - kl_m)).sum() + (a_c * (eps_c - kl_c)).sum()
    # Gradients of the policy loss w.r.t. the online mean and std, per state and dimension.
    g_mu = (-(w[..., None] * (acts - mu0)).sum(0) + a_m * (mu0 - mu_i)) / std_i ** 2 / nv
    g_std = (-(w[..., None] * ((acts - mu_i) ** 2 / std0 ** 3 - 1 / std0)).sum(0)
             + a_c * (1 / std0 - std_i ** 2 / std0 ** 3)) / nv
    g_mu[~valid], g_std[~valid] = 0.0, 0.0

    def t(x, grad=False):
        return torch.tensor(x, dtype=torch.float64, requires_grad=grad)

    mean, std, alpha_m, alpha_c = t(mu0, True), t(std0, True), t(a_m, True), t(a_c, True)
    old = DiagGaussian(t(mu_i), t(std_i))
    res = m_step(old, DiagGaussian(mean, std), t(acts), t(w), alpha_m, alpha_c, eps_m, eps_c,
                 per_dim=True, mask=t(mask))
    assert res.loss_policy.item() == pytest.approx(loss_policy, rel=1e-10)
    assert res.loss_alpha.item() == pytest.approx(loss_alpha, rel=1e-10)
    assert res.stats['kl_mean'].item() == pytest.approx(kl_m.sum(), rel=1e-10)
    assert res.stats['kl_cov'].item() == pytest.approx(kl_c.sum(), rel=1e-10)
    assert res.stats['kl_mean_max_dim'].item() == pytest.approx(kl_m.max(), rel=1e-10)
    assert res.stats['alpha_mean'].item() == pytest.approx(a_m.mean())
    assert res.stats['alpha_cov'].item() == pytest.approx(a_c.mean())
    assert res.stats['policy_nll'].item() == pytest.approx(-(ll_m + ll_c), rel=1e-10)
    res.loss_policy.backward()
    np.testing.assert_allclose(mean.grad.numpy(), g_mu, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(std.grad.numpy(), g_std, rtol=1e-9, atol=1e-12)
    assert alpha_m.grad is None and alpha_c.grad is None      # multipliers detached here
    res.loss_alpha.backward()
    np.testing.assert_allclose(alpha_m.grad.numpy(), eps_m - kl_m, rtol=1e-10)
    np.testing.assert_allclose(alpha_c.grad.numpy(), eps_c - kl_c, rtol=1e-10)
    assert mean.grad is not None and std.grad is not None
    # The per-dimension KLs themselves, unmasked, [B, D].
    kls = decoupled_kls(old, DiagGaussian(t(mu0), t(std0)), per_dim=True)
    np.testing.assert_allclose(kls[0].numpy(), 0.5 * (mu0 - mu_i) ** 2 / std_i ** 2)
    np.testing.assert_allclose(kls[1].numpy(), 0.5 * (r - 1 - np.log(r)))


def test_per_dim_with_equal_multipliers_sums_like_the_joint_kl():
    """With equal multipliers the per-dimension loss equals the joint one (a sum, not a mean)."""
    mu_i, std_i, mu0, std0, acts, w, mask = _setup(seed=1)

    def t(x):
        return torch.tensor(x, dtype=torch.float64)

    old, new = DiagGaussian(t(mu_i), t(std_i)), DiagGaussian(t(mu0), t(std0))
    joint = m_step(old, new, t(acts), t(w), t(2.0), t(5.0), 0.1, 1e-3, mask=t(mask))
    per = m_step(old, new, t(acts), t(w), t([2.0] * 3), t([5.0] * 3), 0.1, 1e-3, per_dim=True,
                 mask=t(mask))
    assert per.loss_policy.item() == pytest.approx(joint.loss_policy.item(), rel=1e-12)
    assert per.stats['kl_mean'].item() == pytest.approx(joint.stats['kl_mean'].item())
    assert per.stats['kl_cov'].item() == pytest.approx(joint.stats['kl_cov'].item())


# ---------------------------------------------------------------------- masked Retrace
def _hand_retrace(q, v, r, g, log_pi, log_b, lam, lengths):
    """Backward recursion of Eq. 13 over each sequence's valid prefix only."""
    out = np.full_like(q, np.nan)
    for b, n in enumerate(lengths):
        ret = 0.0
        for t in range(n - 1, -1, -1):
            bracket = v[t, b]
            if t + 1 < n:
                c = lam * min(1.0, math.exp(log_pi[t + 1, b] - log_b[t + 1, b]))
                bracket += c * (ret - q[t + 1, b])
            ret = r[t, b] + g[t, b] * bracket
            out[t, b] = ret
    return out


def test_masked_retrace_and_critic_loss_by_hand():
    """
    Valid targets and the critic loss depend on the valid prefix only, whatever the padding.

    Every sequence ends with padding after a bootstrapping (non-terminal) step, where a
    dropped mask would let the padded trace leak in.
    """
    rng = np.random.default_rng(0)
    steps, batch = 6, 5
    lengths = [6, 4, 3, 1, 5]
    mask = (np.arange(steps)[:, None] < np.array(lengths)).astype(np.float64)
    q, v, r = (rng.normal(size=(steps, batch)) for _ in range(3))
    g = 0.9 * (rng.random((steps, batch)) > 0.2)
    g[np.array(lengths) - 1, np.arange(batch)] = 0.9       # last valid step bootstraps
    log_pi = rng.normal(size=(steps, batch))
    log_b = log_pi + rng.uniform(-1.5, 1.5, size=(steps, batch))
    q_online = rng.normal(size=(steps, batch))
    expected = _hand_retrace(q, v, r, g, log_pi, log_b, 0.7, lengths)
    valid = mask > 0
    expected_loss = np.mean(0.5 * (q_online - expected)[valid] ** 2)

    pad = ~valid
    garbage = [x.copy() for x in (q, v, r, g, log_pi, log_b, q_online)]
    for x in garbage:
        x[pad] = rng.normal(size=pad.sum()) * 1e3
    garbage[3][pad] = 0.9                                   # padded discounts non-zero too
    for args in ((q, v, r, g, log_pi, log_b, q_online), garbage):
        tq, tv, tr, tg, tpi, tb, tqo = (torch.from_numpy(x) for x in args)
        out = retrace_targets(tq, tv, tr, tg, tpi, tb, lambda_=0.7, mask=torch.from_numpy(mask))
        np.testing.assert_allclose(out.numpy()[valid], expected[valid], rtol=1e-10)
        loss = critic_loss(tqo, out, torch.from_numpy(mask))
        assert loss.item() == pytest.approx(expected_loss, rel=1e-10)
