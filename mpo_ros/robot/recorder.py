"""
Transition recorder: steps of training episodes -> :class:`TrajectoryChunk` s.

A chunk holds up to ``chunk_length`` consecutive transitions of one episode: observations
[T+1, O] (each chunk after the first of an episode starts with the last observation of the
previous one, so no transition is lost between chunks), the actions the robot executed, rewards,
discounts (0 after a terminal state) and behaviour log-probabilities. A chunk is emitted when
it is full and when the episode ends; an episode cut short by the actor (e-stop, stale sensors,
a reset from outside) ends with ``truncated`` set, so the learner bootstraps instead of
treating the last state as terminal. A chunk holds the steps of one policy version only: when
the policy changes mid-chunk, the held steps go out first, stamped with the version that chose
them (an on-policy learner drops the steps of older versions and must not lose newer ones).

Pure numpy; ``emit`` is whatever sends the chunk (the actor node publishes a Trajectory).
"""

from __future__ import annotations

from typing import Callable

from mpo_ros.core.streams import TrajectoryChunk
import numpy as np


class TransitionRecorder:
    """Collects one episode's transitions and emits them in chunks."""

    def __init__(self, actor_id: str, chunk_length: int,
                 emit: Callable[[TrajectoryChunk], None],
                 policy_version: Callable[[], int] = lambda: 0) -> None:
        """Emit chunks of ``chunk_length`` steps, stamped with ``policy_version()``."""
        self.actor_id = actor_id
        self.chunk_length = chunk_length
        self.emit = emit
        self.policy_version = policy_version
        self.episode_id = -1
        self.sequence = 0           # sequence number of the next chunk
        self.env_steps = 0          # transitions recorded in all
        self._clear([], False)

    def _clear(self, first_obs: list, start: bool) -> None:
        self.version: int | None = None     # policy version of the held transitions
        self.obs: list[np.ndarray] = list(first_obs)
        self.act: list[np.ndarray] = []
        self.rew: list[float] = []
        self.disc: list[float] = []
        self.logp: list[float] = []
        self.start = start

    @property
    def held(self) -> int:
        """Transitions recorded but not yet emitted."""
        return len(self.act)

    @property
    def in_episode(self) -> bool:
        """Whether an episode is being recorded (it has a first observation)."""
        return bool(self.obs)

    def begin_episode(self, obs: np.ndarray, start: bool) -> None:
        """Start episode ``episode_id + 1`` at ``obs`` (``start``: at the environment's reset)."""
        self.episode_id += 1
        self._clear([np.asarray(obs)], start)

    def replace_last(self, obs: np.ndarray) -> None:
        """Replace the newest observation (the robot moved on without an action of ours)."""
        self.obs[-1:] = [np.asarray(obs)]

    def record(self, action: np.ndarray, log_prob: float, reward: float, terminal: bool,
               next_obs: np.ndarray, version: int | None = None) -> None:
        """Add the transition to ``next_obs`` (``version``: the policy version that acted)."""
        if version is not None and self.held and version != self.version:
            self.flush()                    # one policy version per chunk
        if version is not None:
            self.version = version
        self.obs.append(np.asarray(next_obs))
        self.act.append(np.asarray(action))
        self.rew.append(float(reward))
        self.disc.append(0.0 if terminal else 1.0)
        self.logp.append(float(log_prob))
        self.env_steps += 1

    def flush_if_full(self) -> None:
        """Emit the chunk once it holds ``chunk_length`` transitions."""
        if self.held >= self.chunk_length:
            self.flush()

    def end_episode(self, truncated: bool) -> None:
        """Emit the rest of the episode (``truncated``: cut by a time limit, not terminal)."""
        self.flush(end=True, truncated=truncated)

    def cut(self) -> None:
        """End the episode early (e-stop, lost sensors): truncated, so the learner bootstraps."""
        if self.held:
            self.flush(end=True, truncated=True)
        else:
            self._clear([], False)

    def flush(self, end: bool = False, truncated: bool = False) -> None:
        """Emit the held transitions (if any); the next chunk starts from the last obs."""
        if self.act:
            self.emit(TrajectoryChunk(
                self.actor_id, max(self.episode_id, 0), self.sequence,
                int(self.policy_version() if self.version is None else self.version),
                np.stack(self.obs), np.stack(self.act),
                np.asarray(self.rew), np.asarray(self.disc), np.asarray(self.logp),
                self.start, end, truncated))
            self.sequence += 1
        self._clear(self.obs[-1:] if not end else [], False)
