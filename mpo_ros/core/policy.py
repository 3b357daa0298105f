"""
Inference-only policy: what an actor needs to act, and flat weight (de)serialisation.

Flat weights are how policies cross a process boundary: named float32 arrays concatenated in
one vector with their shapes and a CRC32 checksum. Nothing is ever unpickled.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

import numpy as np
import torch

from mpo_ros.core.config import NetworkConfig
from mpo_ros.core.networks import PolicyNetwork


class Action(NamedTuple):
    """One action decision (normalised action space [-1, 1]^D)."""

    action: np.ndarray     # [D] clipped to [-1, 1]; what is sent to the robot
    raw: np.ndarray        # [D] the sampled (pre-clip) action, what replay stores
    mean: np.ndarray       # [D]
    stddev: np.ndarray     # [D]
    log_prob: float        # log pi(raw | obs), the behaviour log-probability


class FlatWeights(NamedTuple):
    """A state dict flattened for transport."""

    names: list[str]
    shapes: list[tuple[int, ...]]
    data: np.ndarray       # float32, concatenated in ``names`` order
    checksum: int          # CRC32 of data.tobytes()


def flatten_state(state: dict[str, torch.Tensor]) -> FlatWeights:
    """Flatten a state dict (floating tensors only) into one float32 vector."""
    names, shapes, parts = [], [], []
    for name, tensor in state.items():
        if not torch.is_floating_point(tensor):
            continue
        names.append(name)
        shapes.append(tuple(tensor.shape))
        parts.append(tensor.detach().cpu().reshape(-1).to(torch.float32).numpy())
    data = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return FlatWeights(names, shapes, data, zlib.crc32(data.tobytes()))


def unflatten_state(flat: FlatWeights, reference: dict[str, torch.Tensor]
                    ) -> dict[str, torch.Tensor]:
    """
    Rebuild a state dict from transported weights.

    Checksum, names, shapes and finiteness are validated against ``reference``; any mismatch
    raises ValueError with the reason.
    """
    data = np.asarray(flat.data, dtype=np.float32)
    if zlib.crc32(data.tobytes()) != flat.checksum:
        raise ValueError('checksum mismatch')
    expected = {k: tuple(v.shape) for k, v in reference.items() if torch.is_floating_point(v)}
    if list(flat.names) != list(expected):
        raise ValueError(f'layout names differ: got {list(flat.names)[:4]}..., '
                         f'expected {list(expected)[:4]}...')
    total = 0
    out: dict[str, torch.Tensor] = {}
    for name, shape in zip(flat.names, flat.shapes):
        if tuple(shape) != expected[name]:
            raise ValueError(f'{name}: shape {tuple(shape)} != {expected[name]}')
        size = int(np.prod(shape, dtype=np.int64))
        if total + size > data.size:
            raise ValueError('data shorter than the layout')
        out[name] = torch.from_numpy(data[total:total + size].copy()).reshape(shape).to(
            reference[name].dtype)
        total += size
    if total != data.size:
        raise ValueError(f'data has {data.size} values, layout needs {total}')
    if not np.isfinite(data).all():
        raise ValueError('weights contain NaN or inf')
    return out


def check_policy_state(state: dict[str, torch.Tensor], max_abs_weight: float | None = None,
                       max_abs_obs: float | None = None) -> None:
    """
    Raise ValueError unless a policy state dict has plausible values.

    The observation normaliser's buffers (``*normalizer.count``, ``*.m2``, ``*.mean``) are
    statistics, not weights: count and sum of squares must be >= 0 (a negative variance makes
    every action NaN) and the mean within ``max_abs_obs``; every other tensor within
    ``max_abs_weight``.
    """
    for name, tensor in state.items():
        if not torch.is_floating_point(tensor) or tensor.numel() == 0:
            continue
        leaf = name.rsplit('.', 1)[-1]
        if 'normalizer' in name and leaf in ('count', 'm2'):
            if float(tensor.min()) < 0:
                raise ValueError(f'{name} is negative (variance and count must be >= 0)')
            continue
        bound = max_abs_obs if 'normalizer' in name and leaf == 'mean' else max_abs_weight
        largest = float(tensor.abs().max())
        if bound is not None and largest > bound:
            raise ValueError(f'{name} has |value| {largest:.3g} above the limit {bound:g}')


class Policy:
    """Acts with a policy network; thread-compatible (one lock is the caller's business)."""

    def __init__(self, obs_dim: int, act_dim: int, network: NetworkConfig | None = None,
                 seed: int = 0) -> None:
        self.obs_dim, self.act_dim = obs_dim, act_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = PolicyNetwork(obs_dim, act_dim, network or NetworkConfig())
        self.net.requires_grad_(False)
        self.generator = torch.Generator().manual_seed(seed + 2)
        self.version = 0

    def load_state(self, state: dict[str, torch.Tensor], version: int | None = None) -> None:
        """Copy weights from a learner's policy state dict."""
        self.net.load_state_dict({k: v.detach().cpu() for k, v in state.items()})
        if version is not None:
            self.version = version

    def load_flat(self, flat: FlatWeights, version: int, max_abs_weight: float | None = None,
                  max_abs_obs: float | None = None) -> None:
        """
        Apply transported weights after validation (ValueError on any defect).

        Beyond :func:`unflatten_state`: every parameter within ``max_abs_weight``, the
        observation normaliser's mean within ``max_abs_obs`` and its count and sum of squares
        (the variance) >= 0, and the network's output at a zero observation finite. On any
        defect the current weights stay.
        """
        state = unflatten_state(flat, self.net.state_dict())
        check_policy_state(state, max_abs_weight, max_abs_obs)
        previous = {k: v.clone() for k, v in self.net.state_dict().items()}
        self.net.load_state_dict(state)
        with torch.no_grad():
            dist = self.net(torch.zeros(self.obs_dim))
            probe = torch.cat([dist.mean.reshape(-1), dist.stddev.reshape(-1)])
        if not torch.isfinite(probe).all():
            self.net.load_state_dict(previous)
            raise ValueError('weights give a non-finite action distribution at a zero '
                             'observation')
        self.version = version

    def _observation(self, obs: np.ndarray) -> torch.Tensor:
        """Check one observation [O] (ValueError on a wrong size or NaN / inf)."""
        obs = np.asarray(obs, dtype=np.float32)
        if obs.shape != (self.obs_dim,):
            raise ValueError(f'observation has shape {obs.shape}, expected ({self.obs_dim},)')
        if not np.isfinite(obs).all():
            raise ValueError('observation contains NaN or inf')
        return torch.from_numpy(obs)

    @torch.no_grad()
    def log_prob(self, obs: np.ndarray, action: np.ndarray) -> float:
        """
        Return log pi(action | obs) for a normalised, unclipped action [D].

        An actor whose safety layer changed a command stores the executed action with this
        log-probability, so replay holds what the robot did and how likely the policy was to
        do it.
        """
        act = np.asarray(action, dtype=np.float32)
        if act.shape != (self.act_dim,) or not np.isfinite(act).all():
            raise ValueError(f'action must be {self.act_dim} finite values, got {act!r}')
        return float(self.net(self._observation(obs)).log_prob(torch.from_numpy(act)))

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> Action:
        """Sample (or take the mean of) the action distribution at ``obs`` [O]."""
        dist = self.net(self._observation(obs))
        raw = dist.mean if deterministic else dist.sample(generator=self.generator)
        return Action(action=raw.clamp(-1.0, 1.0).numpy(), raw=raw.numpy(),
                      mean=dist.mean.numpy(), stddev=dist.stddev.numpy(),
                      log_prob=float(dist.log_prob(raw)))
