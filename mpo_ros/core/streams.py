"""
Trajectory chunks and the per-actor stream rules of the learner's input.

A :class:`TrajectoryChunk` is what an actor records and what a ``Trajectory`` message carries,
as arrays. :class:`StreamAssigner` decides, from each chunk's actor id and sequence number,
which replay stream it continues, or rejects it: duplicates and out-of-order chunks are
dropped, a gap or an actor restart opens a new stream so no replayed sequence spans lost data.

Pure Python and numpy, so the rules are tested without ROS.
"""

from __future__ import annotations

from typing import NamedTuple
import zlib

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


class StreamAssigner:
    """
    Map (actor id, sequence number) to a replay stream, or reject the chunk.

    Each actor gets its own stream. A duplicated or out-of-order sequence number is rejected;
    a gap (lost chunks) or an actor restart opens a new stream, so no replayed sequence runs
    across missing data. A restart is a sequence number 0 from a known actor: with a
    ``fingerprint`` (:func:`chunk_fingerprint`) it is one unless it repeats the actor's first
    chunk (a duplicate); without, only at an episode start. ``lost`` counts missing chunks.
    """

    def __init__(self, first_stream: int = 0) -> None:
        self.actors: dict[str, ActorStream] = {}
        self.next_stream = first_stream
        self.lost = 0

    def _new_stream(self) -> int:
        self.next_stream += 1
        return self.next_stream - 1

    def assign(self, actor_id: str, sequence: int, episode_start: bool,
               fingerprint: int | None = None) -> tuple[ActorStream | None, str | None]:
        """Return (actor state or None if rejected, a reason / warning or None)."""
        actor = self.actors.get(actor_id)
        note = None
        restart = actor is not None and sequence == 0 and actor.next_seq != 0 and (
            episode_start if fingerprint is None else fingerprint != actor.first_fingerprint)
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
        return actor, note
