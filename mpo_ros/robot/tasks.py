"""
Task definitions: observation, reward and episode end from what a real robot publishes.

A real arm publishes joint states, and tf / forward kinematics gives the end-effector pose; a
target comes from a perception or task node. Nobody publishes a reward, so the actor computes
it from those signals with a task definition. In simulation the same definition must give the
simulator's own reward, which the tests check against dm_control.

Pure numpy: the actor (ROS) and the learner (observation size) share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SensorFrame:
    """One synchronised set of sensor readings, joints in the policy's (model's) order."""

    joint_position: np.ndarray    # (n,) rad
    joint_velocity: np.ndarray    # (n,) rad/s
    ee_position: np.ndarray       # (3,) m, end-effector (tool centre point) in the world frame
    target_position: np.ndarray   # (3,) m, in the same frame


def tolerance(distance: float, radius: float, margin: float,
              value_at_margin: float = 0.1) -> float:
    """
    Return 1 inside ``radius`` and a Gaussian fall-off outside it.

    The fall-off reaches ``value_at_margin`` at ``radius + margin``: this is dm_control's
    ``rewards.tolerance(d, bounds=(0, radius), margin=margin)`` with its default Gaussian
    sigmoid, written in closed form as ``value_at_margin ** ((d - radius) / margin) ** 2``.
    """
    if distance <= radius:
        return 1.0
    if margin <= 0.0:
        return 0.0
    x = (distance - radius) / margin
    return float(value_at_margin ** (x * x))


class ReachTask:
    """
    Bring the end effector within ``radius`` of the target.

    Observation (all from sensors): sin and cos of the joint positions, joint velocities,
    end-effector position, target position and target minus end-effector (3 n + 9 values).
    Reward: :func:`tolerance` of the end-effector to target distance; with the defaults
    (radius 0.05 m, margin 0.05 m) it equals dm_control's Jaco ``reach_site`` reward. A larger
    ``margin`` shapes the reward so that learning starts from afar; success is still
    ``distance <= radius``. Reaching never ends an episode (no terminal state): episodes are
    cut by the time limit, and bootstrap.
    """

    name = 'reach'

    def __init__(self, num_joints: int, radius: float = 0.05, margin: float = 0.05) -> None:
        """Build for ``num_joints`` controlled joints."""
        if num_joints < 1:
            raise ValueError(f'reach needs at least one joint, got {num_joints}')
        if radius < 0.0 or margin < 0.0:
            raise ValueError(f'radius ({radius}) and margin ({margin}) must be >= 0')
        self.num_joints = num_joints
        self.radius = float(radius)
        self.margin = float(margin)

    @property
    def obs_dim(self) -> int:
        """Observation size."""
        return 3 * self.num_joints + 9

    def _check(self, frame: SensorFrame) -> None:
        n = self.num_joints
        if frame.joint_position.shape != (n,) or frame.joint_velocity.shape != (n,):
            raise ValueError(f'expected {n} joint positions and velocities, got '
                             f'{frame.joint_position.shape} and {frame.joint_velocity.shape}')
        if frame.ee_position.shape != (3,) or frame.target_position.shape != (3,):
            raise ValueError('end-effector and target positions must have 3 values')

    def observation(self, frame: SensorFrame) -> np.ndarray:
        """Observation vector (float32)."""
        self._check(frame)
        q = np.asarray(frame.joint_position, dtype=np.float64)
        ee, target = frame.ee_position, frame.target_position
        return np.concatenate([np.sin(q), np.cos(q), frame.joint_velocity, ee, target,
                               target - ee]).astype(np.float32)

    def distance(self, frame: SensorFrame) -> float:
        """Return how far the end effector is from the target, in metres."""
        return float(np.linalg.norm(np.asarray(frame.target_position, dtype=np.float64)
                                    - np.asarray(frame.ee_position, dtype=np.float64)))

    def reward(self, frame: SensorFrame) -> float:
        """Reward for arriving at ``frame``."""
        return tolerance(self.distance(frame), self.radius, self.margin)

    def success(self, frame: SensorFrame) -> bool:
        """Whether the end effector is within the target radius."""
        return self.distance(frame) <= self.radius

    def terminal(self, frame: SensorFrame) -> bool:
        """Reaching has no terminal state."""
        return False


TASK_DEFINITIONS = {'reach': ReachTask}


def make_task_definition(name: str, num_joints: int, **params: float) -> ReachTask:
    """Build the task definition ``name`` (a key of :data:`TASK_DEFINITIONS`)."""
    if name not in TASK_DEFINITIONS:
        raise ValueError(f'unknown task definition {name!r} (known: '
                         f"{', '.join(sorted(TASK_DEFINITIONS))})")
    return TASK_DEFINITIONS[name](num_joints, **params)
