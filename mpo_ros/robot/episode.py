"""
The actor's episode / reset / evaluation state, in one object.

:class:`ActorState` is everything that decides what the actor does with the next step or
frame: the :class:`Phase` (waiting for an episode start, in an episode, one of the reset
routine's stages, halted), the halt latches (e-stop, deactivated), whether the running episode
is an evaluation episode, the action sent and not yet followed by its outcome (``pending``) and
the observation held back for lack of permission to act (``deferred``). The transitions live
in :class:`mpo_ros.robot.actor.RobotActor`.

:class:`Evaluation` schedules evaluations (every ``eval_every`` training steps,
``eval_episodes`` deterministic episodes that are not recorded) and summarises them.

Pure Python and numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import enum
from typing import NamedTuple

import numpy as np


class TaskStep(NamedTuple):
    """One step as the actor sees it (the bridge's task/step record, or a sensor frame)."""

    sequence: int
    reward: float
    terminal: bool
    truncated: bool
    episode_start: bool
    observation: np.ndarray    # [O] float32, the task's observation (without a command)


class Phase(enum.Enum):
    """Where the actor is in its episode cycle."""

    WAIT_START = 'wait_start'        # the next step / frame starts an episode
    EPISODE = 'episode'              # acting
    HOMING = 'homing'                # reset routine: driving the joints home
    RESET_SERVICE = 'reset_service'  # reset routine: calling (or retrying) the reset service
    WAIT_FRAME = 'wait_frame'        # reset done: the first frame after reset_stamp starts
    HALTED = 'halted'                # e-stop or deactivated: zero commands only

    @property
    def resetting(self) -> bool:
        """Whether this is a stage of the reset routine."""
        return self in (Phase.HOMING, Phase.RESET_SERVICE, Phase.WAIT_FRAME)


class Pending(NamedTuple):
    """An action sent to the robot, waiting for the step that shows its outcome."""

    obs: np.ndarray            # policy observation it was taken at
    action: np.ndarray         # executed action, normalised (what replay stores)
    log_prob: float            # its behaviour log-probability
    version: int = 0           # version of the policy that chose it


@dataclass
class ActorState:
    """The actor's whole decision state (see the module docstring)."""

    phase: Phase = Phase.WAIT_START
    e_stopped: bool = False
    active: bool = True
    evaluating: bool = False
    pending: Pending | None = None
    deferred: np.ndarray | None = None      # policy observation waiting to be acted on
    latest: TaskStep | None = None          # newest step (get_action's default observation)
    episode_steps: int = 0                  # frames into the running episode (sensor path)
    episode_return: float = 0.0
    reset_started: float | None = None      # clock time the reset routine began
    reset_stamp: float = np.inf             # sensor stamp after which the next episode starts
    reset_in_flight: bool = False           # a reset service call awaits its answer

    @property
    def halted(self) -> bool:
        """Whether a latch (e-stop or deactivation) holds the robot at zero."""
        return self.e_stopped or not self.active


class EvalResult(NamedTuple):
    """Summary of one evaluation."""

    env_steps: int
    mean: float
    std: float
    episodes: int
    success_rate: float | None          # with a task definition
    final_distance: float | None        # mean final end-effector to target distance (m)
    train_episodes: int
    train_return: float                 # mean of the last 10 training episodes (nan: none)
    policy_version: int


@dataclass
class Evaluation:
    """When to evaluate, and the returns of the running evaluation."""

    every: int                           # training steps between evaluations (0: never)
    episodes: int                        # episodes per evaluation
    next_at: int = 0
    returns: list[float] = field(default_factory=list)
    successes: list[bool] = field(default_factory=list)
    distances: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Schedule the first evaluation after ``every`` steps."""
        self.next_at = self.next_at or self.every

    def due(self, env_steps: int) -> bool:
        """Whether an evaluation should start now."""
        return bool(self.every) and env_steps >= self.next_at

    def clear(self) -> None:
        """Drop the running evaluation's episodes (it starts over)."""
        self.returns, self.successes, self.distances = [], [], []

    def add(self, episode_return: float, success: bool, distance: float) -> bool:
        """Add one finished episode; return whether the evaluation is complete."""
        self.returns.append(episode_return)
        self.successes.append(success)
        self.distances.append(distance)
        return len(self.returns) >= self.episodes

    def finish(self, env_steps: int, with_success: bool, train_returns: list[float],
               policy_version: int) -> EvalResult:
        """Summarise, clear and schedule the next evaluation."""
        recent = train_returns[-10:]
        result = EvalResult(
            env_steps, float(np.mean(self.returns)), float(np.std(self.returns)),
            len(self.returns), float(np.mean(self.successes)) if with_success else None,
            float(np.mean(self.distances)) if with_success else None, len(train_returns),
            float(np.mean(recent)) if recent else float('nan'), policy_version)
        self.clear()
        while self.next_at <= env_steps:
            self.next_at += self.every
        return result
