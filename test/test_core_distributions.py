"""Gaussian log-densities and KLs against torch.distributions and hand-written closed forms."""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from mpo_ros.core.distributions import DiagGaussian, FullGaussian
from mpo_ros.core.losses.mpo import decoupled_kls


def _random_tril(batch, d, gen, scale=1.0):
    a = torch.randn(batch + (d, d), generator=gen, dtype=torch.float64) * 0.3
    tril = torch.tril(a, -1) + torch.diag_embed(torch.rand(batch + (d,), generator=gen,
                                                           dtype=torch.float64) + 0.2)
    return tril * scale


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


def test_full_log_prob_matches_multivariate_normal(gen):
    mean = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    tril = _random_tril((7,), 4, gen)
    x = torch.randn(5, 7, 4, generator=gen, dtype=torch.float64)
    ours = FullGaussian(mean, tril).log_prob(x)
    ref = MultivariateNormal(mean, scale_tril=tril).log_prob(x)
    assert ours.shape == (5, 7)
    torch.testing.assert_close(ours, ref)


def test_one_dimensional_log_prob_by_hand():
    # N(1, 2^2) at x=3: -0.5*(1)^2 - log 2 - 0.5 log(2 pi)
    d = FullGaussian(torch.tensor([1.0], dtype=torch.float64),
                     torch.tensor([[2.0]], dtype=torch.float64))
    expected = -0.5 - math.log(2.0) - 0.5 * math.log(2 * math.pi)
    assert d.log_prob(torch.tensor([3.0], dtype=torch.float64)).item() == pytest.approx(expected)


def test_full_kl_matches_torch(gen):
    p = FullGaussian(torch.randn(6, 3, generator=gen, dtype=torch.float64),
                     _random_tril((6,), 3, gen))
    q = FullGaussian(torch.randn(6, 3, generator=gen, dtype=torch.float64),
                     _random_tril((6,), 3, gen))
    ref = kl_divergence(MultivariateNormal(p.mean, scale_tril=p.scale_tril),
                        MultivariateNormal(q.mean, scale_tril=q.scale_tril))
    torch.testing.assert_close(p.kl(q), ref)


def test_diag_log_prob_and_kl_match_torch(gen):
    m1, m2 = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64)
    s1, s2 = torch.rand(2, 5, 3, generator=gen, dtype=torch.float64) + 0.1
    p, q = DiagGaussian(m1, s1), DiagGaussian(m2, s2)
    x = torch.randn(4, 5, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(p.log_prob(x), Normal(m1, s1).log_prob(x).sum(-1))
    torch.testing.assert_close(p.kl_per_dim(q), kl_divergence(Normal(m1, s1), Normal(m2, s2)))
    # A diagonal Gaussian is a full one with a diagonal factor.
    torch.testing.assert_close(p.kl(q), FullGaussian(m1, torch.diag_embed(s1)).kl(
        FullGaussian(m2, torch.diag_embed(s2))))


def test_decoupled_kls_closed_forms(gen):
    """
    Decoupled KLs equal the paper's C_mu and C_Sigma, not swapped (errata 1).

    KL(pi_i || N(mu, Sigma_i)) is the Mahalanobis term under the OLD covariance and
    KL(pi_i || N(mu_i, Sigma)) the covariance term (errata 1: not swapped).
    """
    d = 3
    old = FullGaussian(torch.randn(4, d, generator=gen, dtype=torch.float64),
                       _random_tril((4,), d, gen))
    new = FullGaussian(torch.randn(4, d, generator=gen, dtype=torch.float64),
                       _random_tril((4,), d, gen))
    kl_mean, kl_cov = decoupled_kls(old, new)
    sig_old = old.scale_tril @ old.scale_tril.mT
    sig_new = new.scale_tril @ new.scale_tril.mT
    diff = (new.mean - old.mean).unsqueeze(-1)
    c_mu = 0.5 * (diff.mT @ torch.linalg.inv(sig_old) @ diff).squeeze()
    c_sigma = 0.5 * (torch.einsum('bii->b', torch.linalg.inv(sig_new) @ sig_old) - d
                     + torch.logdet(sig_new) - torch.logdet(sig_old))
    torch.testing.assert_close(kl_mean, c_mu)
    torch.testing.assert_close(kl_cov, c_sigma)
    # Same mean: no mean KL; same covariance: no covariance KL.
    same_cov = old.with_mean(new.mean)
    assert torch.allclose(decoupled_kls(old, same_cov)[1], torch.zeros(4, dtype=torch.float64))
    same_mean = new.with_mean(old.mean)
    assert torch.allclose(decoupled_kls(old, same_mean)[0], torch.zeros(4, dtype=torch.float64))


def test_per_dim_kls_sum_to_total(gen):
    old = DiagGaussian(torch.randn(5, 3, generator=gen), torch.rand(5, 3, generator=gen) + .1)
    new = DiagGaussian(torch.randn(5, 3, generator=gen), torch.rand(5, 3, generator=gen) + .1)
    per_mean, per_cov = decoupled_kls(old, new, per_dim=True)
    tot_mean, tot_cov = decoupled_kls(old, new)
    assert per_mean.shape == (5, 3)
    torch.testing.assert_close(per_mean.sum(-1), tot_mean)
    torch.testing.assert_close(per_cov.sum(-1), tot_cov)
    with pytest.raises(ValueError):
        decoupled_kls(FullGaussian(old.mean, old.scale_tril),
                      FullGaussian(new.mean, new.scale_tril), True)


def test_tiny_covariances_stay_finite():
    """Cholesky solves keep log-probs and KLs finite where det() underflows in float32."""
    d = 21
    mean = torch.zeros(2, d)
    tril = torch.diag_embed(torch.full((2, d), 1e-3))
    p, q = FullGaussian(mean, tril), FullGaussian(mean + 1e-3, tril * 1.01)
    assert torch.linalg.det(tril @ tril.mT).eq(0).all()  # the naive route fails here
    assert torch.isfinite(p.log_prob(torch.zeros(2, d))).all()
    assert torch.isfinite(p.kl(q)).all()


def test_sample_moments(gen):
    mean = torch.tensor([1.0, -2.0], dtype=torch.float64)
    tril = torch.tensor([[1.0, 0.0], [0.5, 0.3]], dtype=torch.float64)
    x = FullGaussian(mean, tril).sample(200_000, generator=gen)
    torch.testing.assert_close(x.mean(0), mean, atol=0.01, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), tril @ tril.T, atol=0.01, rtol=0)
