"""
Sensor synchronisation: joint state + end-effector pose + target -> one :class:`SensorFrame`.

A robot publishes its joint states and (through tf or forward kinematics) its end-effector pose
on separate topics. A frame is made only from a joint state and a pose of the same instant
(stamps within ``tolerance_s``), with the latest target, so the observation never mixes two
instants. Each new stamp makes one frame; a repeat of the last stamp is a lockstep heartbeat
(the driver re-publishing because it has not seen our command), an older one is stale, and a
stamp more than ``jump_s`` behind the last frame means the sensor clock jumped back (a driver
or simulator restart): the caller ends the running episode and the clock starts over.

Pure Python and numpy; stamps are floats in seconds.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from mpo_ros.robot.tasks import SensorFrame
import numpy as np


class SyncKind(enum.Enum):
    """What a sensor message completed."""

    NOTHING = 'nothing'      # some reading missing, or joint state and pose of two instants
    FRAME = 'frame'          # a new synchronised frame
    REPEAT = 'repeat'        # the last frame's stamp again (heartbeat)
    STALE = 'stale'          # older than the last frame


class SyncResult(NamedTuple):
    """Outcome of one sensor message."""

    kind: SyncKind
    frame: SensorFrame | None = None
    clock_jumped: bool = False       # with FRAME: the stamp went back by more than jump_s


class SensorSync:
    """Pairs joint states and end-effector poses by stamp; keeps the latest target."""

    def __init__(self, tolerance_s: float, jump_s: float = 1.0) -> None:
        """Pair readings stamped within ``tolerance_s``; ``jump_s`` back is a clock jump."""
        self.tolerance_s = tolerance_s
        self.jump_s = jump_s
        self.joints: tuple[float, np.ndarray, np.ndarray] | None = None   # stamp, q, qd
        self.ee: tuple[float, np.ndarray] | None = None
        self.target: tuple[float, np.ndarray] | None = None
        self.frame_stamp = -np.inf       # stamp of the last frame

    def joint_state(self, stamp: float, position: np.ndarray, velocity: np.ndarray
                    ) -> SyncResult:
        """Take a joint state (joints in the policy's order)."""
        self.joints = (float(stamp), np.asarray(position, float), np.asarray(velocity, float))
        return self._try()

    def ee_pose(self, stamp: float, position: np.ndarray) -> SyncResult:
        """Take an end-effector position."""
        self.ee = (float(stamp), np.asarray(position, float))
        return self._try()

    def target_point(self, stamp: float, position: np.ndarray) -> None:
        """Take the target; it joins the next frame (a target alone makes no frame)."""
        self.target = (float(stamp), np.asarray(position, float))

    def _try(self) -> SyncResult:
        if self.joints is None or self.ee is None or self.target is None:
            return SyncResult(SyncKind.NOTHING)
        stamp, q, qd = self.joints
        if abs(self.ee[0] - stamp) > self.tolerance_s:
            return SyncResult(SyncKind.NOTHING)
        jumped = stamp < self.frame_stamp - self.jump_s
        if jumped:
            self.frame_stamp = -np.inf
        if stamp == self.frame_stamp:
            return SyncResult(SyncKind.REPEAT)
        if stamp < self.frame_stamp:
            return SyncResult(SyncKind.STALE)
        self.frame_stamp = stamp
        return SyncResult(SyncKind.FRAME, SensorFrame(q, qd, self.ee[1], self.target[1]), jumped)
