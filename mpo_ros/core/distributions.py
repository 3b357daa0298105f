"""
Gaussian policies parametrised by a mean and a lower-triangular scale.

Shape legend: ``...`` batch dimensions, ``D`` action dimensions, ``N`` samples.

Log-densities and KLs go through Cholesky factors and triangular solves only (never ``det()`` or
``inverse()``), which is what keeps them finite when covariances become small.
"""

from __future__ import annotations

import math

import torch

_LOG_2PI = math.log(2.0 * math.pi)


class FullGaussian:
    """Multivariate normal ``N(mean, L L^T)`` with ``L`` lower triangular, positive diagonal."""

    def __init__(self, mean: torch.Tensor, scale_tril: torch.Tensor) -> None:
        assert mean.shape[-1] == scale_tril.shape[-1] == scale_tril.shape[-2], (
            mean.shape, scale_tril.shape)
        assert mean.shape[:-1] == scale_tril.shape[:-2], (mean.shape, scale_tril.shape)
        self.mean = mean
        self.scale_tril = scale_tril

    @property
    def dim(self) -> int:
        """Action dimension D."""
        return self.mean.shape[-1]

    @property
    def stddev(self) -> torch.Tensor:
        """Marginal standard deviations [..., D]."""
        return self.scale_tril.square().sum(-1).sqrt()

    def _log_diag_sum(self) -> torch.Tensor:
        return torch.diagonal(self.scale_tril, dim1=-2, dim2=-1).log().sum(-1)

    def _whiten(self, x: torch.Tensor) -> torch.Tensor:
        """Solve ``L z = x`` for z; x is [..., D] or [N, ..., D] broadcast against L."""
        scale = self.scale_tril.expand(x.shape[:-1] + self.scale_tril.shape[-2:])
        return torch.linalg.solve_triangular(scale, x.unsqueeze(-1), upper=False).squeeze(-1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density of x [..., D] or [N, ..., D] -> [...] or [N, ...]."""
        z = self._whiten(x - self.mean)
        return -0.5 * (z.square().sum(-1) + self.dim * _LOG_2PI) - self._log_diag_sum()

    def sample(self, n: int | None = None, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """Draw ``n`` samples [n, ..., D] (or one [..., D] if n is None); no gradient."""
        shape = self.mean.shape if n is None else (n,) + self.mean.shape
        eps = torch.randn(shape, generator=generator, device=self.mean.device,
                          dtype=self.mean.dtype)
        return (self.mean + (self.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)).detach()

    def kl(self, other: 'FullGaussian') -> torch.Tensor:
        """KL(self || other) [...], closed form through triangular solves."""
        d = self.dim
        # tr(S_o^-1 S_s) = ||L_o^-1 L_s||_F^2
        m = torch.linalg.solve_triangular(other.scale_tril, self.scale_tril, upper=False)
        trace = m.square().sum((-2, -1))
        maha = other._whiten(other.mean - self.mean).square().sum(-1)
        logdet = 2.0 * (other._log_diag_sum() - self._log_diag_sum())
        return 0.5 * (trace + maha - d + logdet)

    def with_mean(self, mean: torch.Tensor) -> 'FullGaussian':
        """Return the distribution with another mean and this covariance."""
        return FullGaussian(mean, self.scale_tril)

    def with_scale_of(self, other: 'FullGaussian') -> 'FullGaussian':
        """Return the distribution with this mean and the covariance of ``other``."""
        return FullGaussian(self.mean, other.scale_tril)

    def detach(self) -> 'FullGaussian':
        """Return a copy cut from the autograd graph."""
        return FullGaussian(self.mean.detach(), self.scale_tril.detach())

    def index(self, idx) -> 'FullGaussian':
        """Select along the batch dimensions."""
        return FullGaussian(self.mean[idx], self.scale_tril[idx])

    def reshape(self, batch_shape: tuple[int, ...]) -> 'FullGaussian':
        """Return the same distributions with the batch dimensions reshaped."""
        d = self.dim
        return FullGaussian(self.mean.reshape(batch_shape + (d,)),
                            self.scale_tril.reshape(batch_shape + (d, d)))


class DiagGaussian:
    """Independent normals ``N(mean, diag(std^2))``; KLs can be kept per dimension."""

    def __init__(self, mean: torch.Tensor, stddev: torch.Tensor) -> None:
        assert mean.shape == stddev.shape, (mean.shape, stddev.shape)
        self.mean = mean
        self.std = stddev

    @property
    def dim(self) -> int:
        """Action dimension D."""
        return self.mean.shape[-1]

    @property
    def stddev(self) -> torch.Tensor:
        """Marginal standard deviations [..., D]."""
        return self.std

    @property
    def scale_tril(self) -> torch.Tensor:
        """Diagonal scale as a matrix [..., D, D]."""
        return torch.diag_embed(self.std)

    def log_prob_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """Per-dimension log-densities [..., D] (or [N, ..., D])."""
        z = (x - self.mean) / self.std
        return -0.5 * (z.square() + _LOG_2PI) - self.std.log()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density of x [..., D] or [N, ..., D]."""
        return self.log_prob_per_dim(x).sum(-1)

    def sample(self, n: int | None = None, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """Draw ``n`` samples [n, ..., D] (or one [..., D] if n is None); no gradient."""
        shape = self.mean.shape if n is None else (n,) + self.mean.shape
        eps = torch.randn(shape, generator=generator, device=self.mean.device,
                          dtype=self.mean.dtype)
        return (self.mean + self.std * eps).detach()

    def kl_per_dim(self, other: 'DiagGaussian') -> torch.Tensor:
        """Per-dimension KL(self || other) [..., D]."""
        ratio = (self.std / other.std).square()
        maha = ((self.mean - other.mean) / other.std).square()
        return 0.5 * (ratio + maha - 1.0 - ratio.log())

    def kl(self, other: 'DiagGaussian') -> torch.Tensor:
        """KL(self || other) [...]."""
        return self.kl_per_dim(other).sum(-1)

    def with_mean(self, mean: torch.Tensor) -> 'DiagGaussian':
        """Return the distribution with another mean and this scale."""
        return DiagGaussian(mean, self.std)

    def with_scale_of(self, other: 'DiagGaussian') -> 'DiagGaussian':
        """Return the distribution with this mean and the scale of ``other``."""
        return DiagGaussian(self.mean, other.std)

    def detach(self) -> 'DiagGaussian':
        """Return a copy cut from the autograd graph."""
        return DiagGaussian(self.mean.detach(), self.std.detach())

    def index(self, idx) -> 'DiagGaussian':
        """Select along the batch dimensions."""
        return DiagGaussian(self.mean[idx], self.std[idx])

    def reshape(self, batch_shape: tuple[int, ...]) -> 'DiagGaussian':
        """Return the same distributions with the batch dimensions reshaped."""
        d = self.dim
        return DiagGaussian(self.mean.reshape(batch_shape + (d,)),
                            self.std.reshape(batch_shape + (d,)))


Gaussian = FullGaussian | DiagGaussian
