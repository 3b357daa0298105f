"""
The seam between the runners and the learning algorithms.

Both runners (the in-process trainer and the ROS learner node) hold a learner only as a
:class:`Learner`: they ask it which data it needs (:class:`DataRequest`), build that data source
with :func:`make_buffer`, feed it, call :meth:`Learner.step` on what it samples and broadcast
:meth:`Learner.policy_state`. Nothing in a runner names an algorithm or one of its metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

from mpo_ros.core.config import NetworkConfig
from mpo_ros.core.onpolicy import OnPolicyBuffer
from mpo_ros.core.replay import SequenceReplay
from mpo_ros.core.schedule import OnPolicyBatches, ReplayRatio

#: Sequences of consecutive steps from a replay buffer, any behaviour policy (off-policy).
SEQUENCES = 'sequences'
#: Steps collected with the learner's current policy version only (on-policy).
ON_POLICY = 'on_policy'
#: Real transitions for a learned model, which then generates rollouts (model-based).
MODEL_ROLLOUTS = 'model_rollouts'
#: Branched rollouts from saved simulator states (TRPO's vine, Sec. 5.2): a rollout set of
#: ``batch_size`` states along ``trunk_steps`` steps of the current policy, ``actions_per_state``
#: actions from each, each followed by ``sequence_length`` steps (a
#: :class:`~mpo_ros.core.onpolicy.VineBatch`). Needs a simulator that can save and restore its
#: state: the in-process trainer collects it (``mpo_ros.vine``), the ROS learner node refuses.
VINE = 'vine'
DATA_KINDS = (SEQUENCES, ON_POLICY, MODEL_ROLLOUTS, VINE)
#: Kinds only a runner owning a simulator can collect (not a robot, not the ROS pipeline).
SIMULATION_ONLY = (VINE,)

#: Metric-name prefixes: every metric a learner reports starts with one of them.
METRIC_KINDS = ('loss/', 'dual/', 'kl/', 'q/', 'grad/', 'perf/', 'value/', 'model/')


@dataclass(frozen=True)
class DataRequest:
    """What a learner consumes in one :meth:`Learner.step`."""

    kind: str              # one of DATA_KINDS
    batch_size: int        # B: sequences (or steps, or vine rollout states) per update
    sequence_length: int   # T: steps per sequence (1 for single transitions; vine: H)
    actions_per_state: int = 1   # vine: K actions, each with its rollout, per rollout state
    trunk_steps: int = 0         # vine: steps of the current policy the rollout set is drawn from
    #: The configuration parameter that chose this kind, named when a runner refuses it.
    parameter: str = 'algorithm'

    def __post_init__(self) -> None:
        """Validate."""
        if self.kind not in DATA_KINDS:
            raise ValueError(f'data kind {self.kind!r} is not one of {DATA_KINDS}')
        if self.batch_size < 1 or self.sequence_length < 1:
            raise ValueError('batch_size and sequence_length must be >= 1')
        if self.kind == VINE and (self.actions_per_state < 2
                                  or self.trunk_steps < self.batch_size):
            raise ValueError('vine data needs actions_per_state >= 2 and trunk_steps >= '
                             'batch_size (the rollout set is drawn from the trunk)')


@runtime_checkable
class Learner(Protocol):
    """What every algorithm offers the runners."""

    #: Registry name (``--algorithm`` / ``algorithm:=``).
    name: ClassVar[str]
    #: Metrics worth a place in a one-line progress log, a subset of :meth:`metric_names`.
    log_metrics: ClassVar[tuple[str, ...]]
    #: The data :meth:`step` expects.
    data: DataRequest
    #: Policy architecture an actor needs to rebuild the broadcast policy.
    network: NetworkConfig
    #: Updates performed so far (restored by :meth:`load_state_dict`).
    num_steps: int

    def metric_names(self) -> tuple[str, ...]:
        """Names of the metrics :meth:`step` returns, each prefixed by its kind."""

    def observe(self, observations: np.ndarray) -> None:
        """Update the observation statistics with newly collected observations [..., O]."""

    def step(self, batch: Any) -> dict[str, float]:
        """Run one update on data shaped as :attr:`data` asks; return its metrics."""

    def policy_state(self) -> dict[str, torch.Tensor]:
        """Parameters of the acting policy, as broadcast to actors."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically (tensors and plain values only)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""


def make_buffer(request: DataRequest, obs_dim: int, act_dim: int, capacity: int,
                seed: int) -> SequenceReplay | OnPolicyBuffer:
    """
    Build the data source a learner asks for; its ``sample()`` returns one step's batch.

    Both kinds take steps with the same ``add`` / ``add_chunk`` calls (one stream per actor)
    and are checkpointed with ``state_dict`` / ``load_state_dict``.
    """
    if request.kind == SEQUENCES:
        return SequenceReplay(obs_dim, act_dim, capacity, seed=seed,
                              batch_size=request.batch_size,
                              sequence_length=request.sequence_length)
    if request.kind == ON_POLICY:
        return OnPolicyBuffer(obs_dim, act_dim, request.batch_size)
    if request.kind in SIMULATION_ONLY:
        raise NotImplementedError(f'{request.kind!r} data is collected from a simulator by the '
                                  f'in-process trainer, not stored in a buffer')
    raise NotImplementedError(f'no buffer for data kind {request.kind!r} yet')


def make_schedule(request: DataRequest, updates_per_step: float, min_size: int,
                  max_update_debt: float = 0.0, max_update_lag: float = 0.0
                  ) -> ReplayRatio | OnPolicyBatches:
    """
    When to update for the data a learner asks for.

    Off-policy (sequences): the replay ratio ``updates_per_step`` after ``min_size`` steps,
    with the debt cap and actors' lag. On-policy: one update per complete batch (the ratio
    settings do not apply).
    """
    if request.kind == ON_POLICY:
        return OnPolicyBatches(request.batch_size)
    return ReplayRatio(updates_per_step, min_size, max_update_debt, max_update_lag)
