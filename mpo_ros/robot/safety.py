"""
Command safety filter for joint velocity commands.

The actor passes every command through :class:`SafetyFilter` before it reaches a robot. The
filter never trusts the policy: a non-finite command becomes zero, each step may change a
joint's command by at most ``max_delta`` (rate limit), each joint's speed is clipped to
``max_velocity``, and a joint within ``position_margin`` of a position limit may only move away
from it. The limits are applied in that order, so the hard ones (speed, position) win over the
rate limit: stopping at a limit is abrupt if it must be.

Pure numpy, no ROS: the stale-sensor watchdog, e-stop latch and shutdown zeroing live in the
actor node, which owns time and topics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SafetyLimits:
    """Per-joint limits in actuator units (velocity: rad/s, position: rad)."""

    max_velocity: np.ndarray           # (n,) > 0
    position_lower: np.ndarray         # (n,) -inf where unlimited
    position_upper: np.ndarray         # (n,) +inf where unlimited
    position_margin: float = 0.05      # rad before a limit where motion towards it stops
    max_delta: float = 0.0             # max command change per step (0: no rate limit)

    def __post_init__(self) -> None:
        """Validate shapes and values."""
        n = np.asarray(self.max_velocity).shape
        if len(n) != 1 or np.asarray(self.position_lower).shape != n \
                or np.asarray(self.position_upper).shape != n:
            raise ValueError('max_velocity, position_lower and position_upper need one value '
                             'per joint')
        if np.any(~(np.asarray(self.max_velocity) > 0)):
            raise ValueError('max_velocity must be > 0 for every joint')
        if np.any(np.asarray(self.position_lower) > np.asarray(self.position_upper)):
            raise ValueError('position_lower must not exceed position_upper')
        if self.position_margin < 0 or self.max_delta < 0:
            raise ValueError('position_margin and max_delta must be >= 0')


class SafetyFilter:
    """Stateful filter: remembers the last command it let through for the rate limit."""

    def __init__(self, limits: SafetyLimits) -> None:
        """Start from a zero previous command."""
        self.limits = limits
        self.num_joints = len(limits.max_velocity)
        self.previous = np.zeros(self.num_joints)
        self.interventions = 0     # commands changed by any rule

    def reset(self, previous: np.ndarray | None = None) -> None:
        """Set the command the rate limit starts from (zero by default)."""
        self.previous = np.zeros(self.num_joints) if previous is None \
            else np.asarray(previous, dtype=np.float64).copy()

    def __call__(self, command: np.ndarray, joint_position: np.ndarray | None = None
                 ) -> np.ndarray:
        """Return the safe version of ``command`` given the joints' positions (if known)."""
        lim = self.limits
        raw = np.asarray(command, dtype=np.float64)
        if raw.shape != (self.num_joints,):
            raise ValueError(f'command has shape {raw.shape}, expected ({self.num_joints},)')
        v = np.where(np.isfinite(raw), raw, 0.0)
        if lim.max_delta > 0:
            v = np.clip(v, self.previous - lim.max_delta, self.previous + lim.max_delta)
        v = np.clip(v, -lim.max_velocity, lim.max_velocity)
        if joint_position is not None:
            q = np.asarray(joint_position, dtype=np.float64)
            at_upper = q >= lim.position_upper - lim.position_margin
            at_lower = q <= lim.position_lower + lim.position_margin
            v = np.where(at_upper, np.minimum(v, 0.0), v)
            v = np.where(at_lower, np.maximum(v, 0.0), v)
        if not np.array_equal(v, raw):
            self.interventions += 1
        self.previous = v
        return v
