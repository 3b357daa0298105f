"""
Learner registry: every algorithm behind one name, built the same way by both runners.

``make(name, obs_dim, act_dim, config, seed, device)`` returns a
:class:`~mpo_ros.core.learners.base.Learner`; ``names()`` lists what is registered. Each
algorithm lives in its own module here and registers itself with :func:`register`.
"""

from __future__ import annotations

from typing import Callable

import torch

from mpo_ros.core.config import Config, ConfigError
from mpo_ros.core.learners.base import DataRequest, Learner, make_buffer, make_schedule
from mpo_ros.core.learners.base import MODEL_ROLLOUTS, ON_POLICY, SEQUENCES
from mpo_ros.core.learners.base import SIMULATION_ONLY, VINE

__all__ = ['DataRequest', 'Learner', 'make', 'make_buffer', 'make_schedule', 'names',
           'register', 'MODEL_ROLLOUTS', 'ON_POLICY', 'SEQUENCES', 'SIMULATION_ONLY', 'VINE']

Factory = Callable[[int, int, Config, int, 'str | torch.device'], Learner]
_REGISTRY: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Class or function decorator: make ``name`` buildable by :func:`make`."""
    def add(factory: Factory) -> Factory:
        if name in _REGISTRY:
            raise ValueError(f'learner {name!r} is registered twice')
        _REGISTRY[name] = factory
        return factory
    return add


def names() -> tuple[str, ...]:
    """Return the registered algorithm names, sorted."""
    return tuple(sorted(_REGISTRY))


def make(name: str, obs_dim: int, act_dim: int, config: Config, seed: int = 0,
         device: str | torch.device = 'cpu') -> Learner:
    """Build the learner registered as ``name``; an unknown name raises ConfigError."""
    if name not in _REGISTRY:
        raise ConfigError(f'algorithm={name!r} is not one of {names()}')
    return _REGISTRY[name](obs_dim, act_dim, config, seed, device)


# Algorithms register themselves on import.
from mpo_ros.core.learners import mpo as _mpo  # noqa: E402,F401
from mpo_ros.core.learners import trpo as _trpo  # noqa: E402,F401
