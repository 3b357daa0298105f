"""E-step and M-step against hand-computed values and the dual's optimality condition."""

import math

import pytest
import torch

from mpo_ros.core.distributions import DiagGaussian, FullGaussian
from mpo_ros.core.losses.mpo import e_step, m_step, temperature_dual


def test_weights_are_softmax_of_q_over_temperature():
    q = torch.tensor([[1.0], [2.0], [3.0]])           # N=3 samples, B=1 state
    eta = torch.tensor(2.0)
    res = e_step(q, eta, epsilon=0.1)
    z = [math.exp(v / 2.0) for v in (1.0, 2.0, 3.0)]
    expected = torch.tensor([[v / sum(z)] for v in z])
    torch.testing.assert_close(res.weights, expected)
    assert not res.weights.requires_grad


def test_dual_value_by_hand():
    # g(1) = eps + log mean(exp(0), exp(log 3)) = eps + log 2
    q = torch.tensor([[0.0], [math.log(3.0)]])
    g = temperature_dual(q, torch.tensor(1.0), epsilon=0.1)
    assert g.item() == pytest.approx(0.1 + math.log(2.0))


def test_dual_optimum_gives_kl_epsilon():
    """At the dual's minimum the mean KL(q || uniform) of the sample weights equals epsilon."""
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(20, 64, generator=gen, dtype=torch.float64) * 5.0
    eps = 0.1
    log_eta = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([log_eta], lr=0.05)
    for _ in range(3000):
        opt.zero_grad()
        temperature_dual(q, log_eta.exp(), eps).backward()
        opt.step()
    w = torch.softmax(q / log_eta.exp().detach(), dim=0)
    kl = (w * torch.log(w * q.shape[0])).sum(0).mean()     # KL(q || uniform), by hand
    assert kl.item() == pytest.approx(eps, abs=2e-3)
    res = e_step(q, log_eta.exp().detach(), eps)
    assert res.stats['kl_q_uniform'].item() == pytest.approx(kl.item(), rel=1e-6)


def test_dual_gradient_sign():
    """Too hot (KL < eps) -> the dual pushes eta down; too cold -> up."""
    q = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    for eta0, sign in ((100.0, 1.0), (0.01, -1.0)):
        eta = torch.tensor(eta0, requires_grad=True)
        temperature_dual(q, eta, 0.1).backward()
        assert eta.grad.item() * sign > 0


def test_masked_states_do_not_count():
    q = torch.tensor([[0.0, 100.0], [1.0, -100.0]])
    mask = torch.tensor([1.0, 0.0])
    g_masked = temperature_dual(q, torch.tensor(1.0), 0.1, mask)
    g_first = temperature_dual(q[:, :1], torch.tensor(1.0), 0.1)
    torch.testing.assert_close(g_masked, g_first)


def _old_and_new():
    old = FullGaussian(torch.tensor([[0.0, 0.0]]), torch.tensor([[[1.0, 0.0], [0.0, 2.0]]]))
    mean = torch.tensor([[0.3, -0.4]], requires_grad=True)
    tril = torch.tensor([[[1.5, 0.0], [0.2, 1.0]]], requires_grad=True)
    return old, FullGaussian(mean, tril), mean, tril


def test_m_step_kl_stats_and_multiplier_loss_by_hand():
    old, new, _, _ = _old_and_new()
    actions = torch.zeros(3, 1, 2)
    weights = torch.full((3, 1), 1 / 3)
    alpha_mean = torch.tensor(2.0, requires_grad=True)
    alpha_cov = torch.tensor(3.0, requires_grad=True)
    res = m_step(old, new, actions, weights, alpha_mean, alpha_cov, 0.1, 1e-4)
    # Mean KL under the OLD covariance diag(1, 4): 0.5 * (0.3^2 / 1 + 0.4^2 / 4) = 0.065
    assert res.stats['kl_mean'].item() == pytest.approx(0.065)
    # Covariance KL: 0.5 [tr(S^-1 S_i) - 2 + log|S| - log|S_i|], S = L L^T, L = [[1.5,0],[.2,1]]
    s = torch.tensor([[2.25, 0.3], [0.3, 1.04]], dtype=torch.float64)
    s_i = torch.tensor([[1.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    expected_cov = 0.5 * (torch.trace(torch.linalg.solve(s, s_i)) - 2
                          + math.log(2.25 * 1.04 - 0.09) - math.log(4.0))
    assert res.stats['kl_cov'].item() == pytest.approx(expected_cov.item(), rel=1e-5)
    assert res.loss_alpha.item() == pytest.approx(
        2.0 * (0.1 - 0.065) + 3.0 * (1e-4 - expected_cov.item()), rel=1e-5)
    res.loss_alpha.backward()
    # KL < eps: alpha shrinks; KL > eps: alpha grows.
    assert alpha_mean.grad.item() == pytest.approx(0.1 - 0.065, rel=1e-5)
    assert alpha_cov.grad.item() < 0


def test_m_step_decoupling_routes_gradients():
    """
    Each decoupled distribution carries gradient to its own parameters only.

    The mean is fitted only through pi_mu (old covariance) and the scale only through
    pi_Sigma (old mean): with all the weight on the old mean, the mean still moves while the
    covariance fit sees no mean error.
    """
    old, new, mean, tril = _old_and_new()
    actions = torch.tensor([[[1.0, 1.0]]])           # one sample
    weights = torch.ones(1, 1)
    res = m_step(old, new, actions, weights, torch.tensor(0.0), torch.tensor(0.0), 0.1, 1e-4)
    res.loss_policy.backward()
    # d/dmu of -log N(a; mu, S_i) = -S_i^-1 (a - mu) with S_i = diag(1, 4), a - mu = (0.7, 1.4)
    torch.testing.assert_close(mean.grad, torch.tensor([[-0.7, -1.4 / 4.0]]))
    # Covariance part: -log N(a; mu_i=0, L L^T); its gradient does not involve the new mean.
    tril2 = tril.detach().clone().requires_grad_(True)
    nll = -FullGaussian(torch.zeros(1, 2), tril2).log_prob(actions[0])
    nll.sum().backward()
    torch.testing.assert_close(tril.grad, tril2.grad)


def test_m_step_lagrangian_minimiser_closed_form():
    """
    The M-step Lagrangian has the closed-form minimiser.

    For unit variances and a fixed multiplier alpha, the policy loss is
    -sum_j w_j log N(a_j; mu, 1) + alpha * mu^2 / 2, minimised at mu = m / (1 + alpha) where
    m is the weighted sample mean; the multiplier's gradient then says whether to tighten.
    """
    gen = torch.Generator().manual_seed(3)
    old = DiagGaussian(torch.zeros(1, 1, dtype=torch.float64),
                       torch.ones(1, 1, dtype=torch.float64))
    actions = old.sample(500, generator=gen)                      # [N, 1, 1]
    weights = torch.softmax(5.0 * actions[..., 0], dim=0)        # prefers large actions
    m = (weights[..., 0] * actions[..., 0, 0]).sum().item()
    alpha = 3.0
    mean = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([mean], lr=1.0, max_iter=100, line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        res = m_step(old, DiagGaussian(mean, old.std), actions, weights,
                     torch.tensor(alpha, dtype=torch.float64), torch.tensor(1.0), 0.05, 1e-4)
        res.loss_policy.backward()
        return res.loss_policy

    opt.step(closure)
    assert mean.item() == pytest.approx(m / (1 + alpha), rel=1e-6)
    # KL(pi_i || pi_mu) = mu^2 / 2; above eps the multiplier's gradient is negative (grow it).
    log_alpha = torch.tensor(math.log(alpha), dtype=torch.float64, requires_grad=True)
    res = m_step(old, DiagGaussian(mean.detach(), old.std), actions, weights, log_alpha.exp(),
                 torch.tensor(1.0), 0.05, 1e-4)
    assert res.stats['kl_mean'].item() == pytest.approx(mean.item() ** 2 / 2, rel=1e-6)
    res.loss_alpha.backward()
    assert (mean.item() ** 2 / 2 > 0.05) == (log_alpha.grad.item() < 0)
