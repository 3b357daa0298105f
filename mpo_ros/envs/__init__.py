"""
ROS-free environment adapters behind one small API.

Task ids:
    ``gym:<EnvId>``             gymnasium (MuJoCo and classic control), e.g. ``gym:Hopper-v5``
    ``dmc:<domain>-<task>``     dm_control suite, e.g. ``dmc:cartpole-swingup``
    ``manip:<name>``            dm_control manipulation, e.g. ``manip:reach_site_features``

Every adapter takes actions in the normalised box [-1, 1]^D, clips them and rescales them to the
real actuator limits, and reports ``terminal`` (no bootstrap: discount 0) separately from
``truncated`` (time limit: bootstrap).

Simulators only: ``snapshot()`` saves the state of the current episode and ``restore(snap)``
returns to it, so that the continuation from there is bit-identical to the one the original
would have had (the vine estimator of TRPO branches rollouts this way). Supported: gymnasium
MuJoCo (the whole ``MjData``, the time-limit wrappers' step counts, the env's RNG), gymnasium
classic control with continuous actions (``Pendulum-v1``, ``MountainCarContinuous-v0``: their
``state``) and the dm_control suite (the whole ``MjData``, the step count, the task's RNG). A
snapshot is valid until the next ``reset()`` (suite tasks change the model at episode start);
other environments raise :class:`SnapshotUnsupported`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np


@dataclass(frozen=True)
class EnvSpec:
    """What a learner and a ROS bridge need to know about a task."""

    task: str
    obs_dim: int
    act_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    joint_names: tuple[str, ...]       # actuated joints in action order; () if none
    control_dt: float                  # seconds per environment step
    max_episode_steps: int | None
    # (lower, upper) position limit of each actuated joint; +-inf where unlimited
    joint_ranges: tuple[tuple[float, float], ...] = ()

    def scale_action(self, action: np.ndarray) -> np.ndarray:
        """Map a normalised action in [-1, 1]^D (clipped first) to actuator units."""
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        low, high = np.asarray(self.action_low), np.asarray(self.action_high)
        return low + 0.5 * (a + 1.0) * (high - low)


def joint_ranges(model, joint_ids) -> tuple[tuple[float, float], ...]:
    """Position limits of MuJoCo joints ``joint_ids`` ((-inf, inf) for unlimited ones)."""
    out = []
    for j in joint_ids:
        j = int(j)
        limited = bool(model.jnt_limited[j]) if hasattr(model, 'jnt_limited') else False
        lo, hi = (float(x) for x in model.jnt_range[j]) if limited else (-np.inf, np.inf)
        out.append((lo, hi))
    return tuple(out)


class Step(NamedTuple):
    """Outcome of one environment step."""

    observation: np.ndarray
    reward: float
    terminal: bool
    truncated: bool


class Env(Protocol):
    """The adapter API."""

    spec: EnvSpec

    def reset(self) -> np.ndarray:
        """Start an episode; returns the first observation."""

    def step(self, action: np.ndarray) -> Step:
        """Apply a normalised action."""

    def close(self) -> None:
        """Release resources."""

    def disable_time_limit(self) -> None:
        """Never truncate episodes (a robot has no time limit; its actor decides)."""

    def snapshot(self) -> 'Snapshot':
        """Save the simulator state (SnapshotUnsupported where it cannot be saved)."""

    def restore(self, snapshot: 'Snapshot') -> None:
        """Return to a state saved by :meth:`snapshot` during the current episode."""


class UnknownTaskError(ValueError):
    """The task id names no known adapter or environment."""


class SnapshotUnsupported(NotImplementedError):
    """The environment cannot save and restore its state; the message says which can."""


SNAPSHOT_SUPPORT = ('gym MuJoCo tasks, gym classic control with continuous actions '
                    '(Pendulum-v1, MountainCarContinuous-v0) and dm_control suite tasks (dmc:)')


@dataclass(frozen=True)
class Snapshot:
    """A saved environment state, opaque outside the adapter that took it."""

    owner: int          # id() of the adapter that took it
    episode: int        # that adapter's episode count when it was taken
    state: Any


class Snapshots:
    """
    Mixin for adapters: episode counting and the checks around ``snapshot`` / ``restore``.

    Subclasses call :meth:`_new_episode` in ``reset`` and implement ``_save_state`` /
    ``_load_state`` (raising :class:`SnapshotUnsupported` where they cannot).
    """

    _episode = 0

    def _new_episode(self) -> None:
        self._episode += 1

    def _save_state(self) -> Any:
        raise SnapshotUnsupported(f'{self.spec.task}: cannot save its state; supported: '
                                  f'{SNAPSHOT_SUPPORT}')

    def _load_state(self, state: Any) -> None:
        raise SnapshotUnsupported(f'{self.spec.task}: cannot restore a state')

    def snapshot(self) -> Snapshot:
        """Save the state of the current episode (see the module docstring)."""
        if self._episode == 0:
            raise ValueError(f'{self.spec.task}: reset() before snapshot()')
        return Snapshot(id(self), self._episode, self._save_state())

    def restore(self, snapshot: Snapshot) -> None:
        """Return to ``snapshot``, taken by this adapter in the current episode."""
        if not isinstance(snapshot, Snapshot) or snapshot.owner != id(self):
            raise ValueError(f'{self.spec.task}: not a snapshot of this environment')
        if snapshot.episode != self._episode:
            raise ValueError(f'{self.spec.task}: the snapshot is from episode '
                             f'{snapshot.episode}, this is episode {self._episode} (a snapshot '
                             f'is valid until the next reset)')
        self._load_state(snapshot.state)


def make(task: str, seed: int = 0) -> Env:
    """Build the adapter for ``task`` (see the module docstring for the id forms)."""
    kind, sep, name = task.partition(':')
    if not sep or not name:
        raise UnknownTaskError(f'task {task!r} must look like gym:<Id>, dmc:<domain>-<task> '
                               f'or manip:<name>')
    if kind == 'gym':
        from mpo_ros.envs.gym_env import GymEnv
        return GymEnv(task, name, seed)
    if kind == 'dmc':
        from mpo_ros.envs.dmc_env import DMCSuiteEnv
        return DMCSuiteEnv(task, name, seed)
    if kind == 'manip':
        from mpo_ros.envs.dmc_env import ManipulationEnv
        return ManipulationEnv(task, name, seed)
    raise UnknownTaskError(f'unknown task kind {kind!r} in {task!r} (gym, dmc, manip)')
