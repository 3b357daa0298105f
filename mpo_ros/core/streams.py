"""
Trajectory chunks and the per-actor stream rules of the learner's input.

A :class:`TrajectoryChunk` is what an actor records and what a ``Trajectory`` message carries,
as arrays. :class:`StreamAssigner` decides, from each chunk's actor id and sequence number,
which replay stream it continues, or rejects it: duplicates and out-of-order chunks are
dropped, a gap or an actor restart opens a new stream so no replayed sequence spans lost data.
With a :class:`~mpo_ros.core.config.StreamConfig` it also keeps one sender from taking the
replay over: a bounded number of tracked actor ids, a per-id token bucket of steps per second,
and a bound on sequence jumps.

Pure Python and numpy, so the rules are tested without ROS.
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple
import zlib

from mpo_ros.core.config import StreamConfig
import numpy as np


class TrajectoryChunk(NamedTuple):
    """A validated Trajectory message as arrays (shapes as in Trajectory.msg)."""

    actor_id: str
    episode_id: int
    sequence_number: int
    policy_version: int
    observations: np.ndarray   # [T+1, O]
    actions: np.ndarray        # [T, D]
    rewards: np.ndarray        # [T]
    discounts: np.ndarray      # [T]
    log_probs: np.ndarray      # [T]
    episode_start: bool
    episode_end: bool
    truncated: bool


def chunk_fingerprint(chunk: TrajectoryChunk) -> int:
    """CRC32 of a chunk's observations and actions (tells a duplicate from new data)."""
    return zlib.crc32(chunk.actions.tobytes(), zlib.crc32(chunk.observations.tobytes()))


class ActorStream:
    """Per-actor bookkeeping: expected sequence number, replay stream, episode return."""

    def __init__(self, stream: int) -> None:
        self.stream = stream
        self.next_seq = 0
        self.ep_return = 0.0
        self.first_fingerprint: int | None = None
        self.tokens = 0.0                  # steps this actor may still send (token bucket)
        self.last_seen = 0.0               # clock time of its last accepted chunk


class StreamAssigner:
    """
    Map (actor id, sequence number) to a replay stream, or reject the chunk.

    Each actor gets its own stream. A duplicated or out-of-order sequence number is rejected;
    a gap (lost chunks) or an actor restart opens a new stream, so no replayed sequence runs
    across missing data. A restart is a sequence number 0 from a known actor: with a
    ``fingerprint`` (:func:`chunk_fingerprint`) it is one unless it repeats the actor's first
    chunk (a duplicate); without, only at an episode start. ``lost`` counts missing chunks.

    With ``limits`` a chunk is also refused (counted in ``refused``) when its actor id is new
    and ``max_actors`` ids are tracked and none has been idle ``actor_idle_s``, or when the
    id's token bucket holds fewer than the chunk's steps; a sequence jump beyond
    ``max_sequence_jump`` is rejected without moving the expected sequence number.
    """

    def __init__(self, first_stream: int = 0, limits: StreamConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.actors: dict[str, ActorStream] = {}
        self.next_stream = first_stream
        self.lost = 0
        self.refused = 0
        self.limits = limits
        self.clock = clock

    def _admit(self, now: float) -> bool:
        """Make room for a new actor id if the table is full; return whether there is room."""
        lim = self.limits
        if lim is None or len(self.actors) < lim.max_actors:
            return True
        idle = min(self.actors, key=lambda k: self.actors[k].last_seen)
        if now - self.actors[idle].last_seen >= lim.actor_idle_s:
            del self.actors[idle]
            return True
        return False

    def _tokens(self, actor: ActorStream | None, now: float) -> float:
        """Return the steps the actor may send now (a new actor starts with a full bucket)."""
        lim = self.limits
        cap = lim.actor_steps_per_s * lim.actor_burst_s
        if actor is None:
            return cap
        return min(cap, actor.tokens + (now - actor.last_seen) * lim.actor_steps_per_s)

    def _new_stream(self) -> int:
        self.next_stream += 1
        return self.next_stream - 1

    def assign(self, actor_id: str, sequence: int, episode_start: bool,
               fingerprint: int | None = None, steps: int = 1
               ) -> tuple[ActorStream | None, str | None]:
        """Return (actor state or None if rejected, a reason / warning or None)."""
        actor = self.actors.get(actor_id)
        note = None
        restart = actor is not None and sequence == 0 and actor.next_seq != 0 and (
            episode_start if fingerprint is None else fingerprint != actor.first_fingerprint)
        lim, now = self.limits, self.clock()
        if lim is not None:
            if actor is None and not self._admit(now):
                self.refused += 1
                return None, (f'refused: {len(self.actors)} actor ids are tracked '
                              f'(streams.max_actors) and none is idle')
            if actor is not None and not restart and \
                    sequence - actor.next_seq > lim.max_sequence_jump:
                return None, (f'sequence number {sequence} is implausibly far beyond the '
                              f'expected {actor.next_seq} (streams.max_sequence_jump)')
            tokens = self._tokens(actor, now)
            if tokens < steps:
                self.refused += 1
                return None, (f'refused: over the rate limit of {lim.actor_steps_per_s:g} '
                              'steps/s per actor (streams.actor_steps_per_s)')
        if actor is None or restart:
            if restart:
                note = 'sequence restarted at 0 (actor restarted); starting a new replay stream'
            actor = self.actors[actor_id] = ActorStream(self._new_stream())
            actor.next_seq = sequence
            if sequence == 0:
                actor.first_fingerprint = fingerprint
        elif sequence < actor.next_seq:
            return None, (f'sequence number {sequence} duplicated or out of order (expected '
                          f'{actor.next_seq})')
        elif sequence > actor.next_seq:
            self.lost += sequence - actor.next_seq
            note = f'{sequence - actor.next_seq} chunk(s) lost; starting a new replay stream'
            actor.stream = self._new_stream()
        actor.next_seq = sequence + 1
        if lim is not None:
            actor.tokens, actor.last_seen = tokens - steps, now
        return actor, note
