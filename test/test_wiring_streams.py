"""
Stream rules (core/streams.py) in detail: exact notes, counters and fingerprints.

Complements test_streams.py; written to kill mutants of streams.py (see
bench/results/mutation_core.md).
"""

import zlib

import numpy as np

from mpo_ros.core.streams import ActorStream, chunk_fingerprint, StreamAssigner, TrajectoryChunk


def _chunk(obs, actions):
    t = len(actions)
    return TrajectoryChunk('a', 0, 0, 0, np.asarray(obs, np.float32),
                           np.asarray(actions, np.float32), np.zeros(t, np.float32),
                           np.ones(t, np.float32), np.zeros(t, np.float32), True, False, False)


def test_fingerprint_is_crc32_of_observations_then_actions():
    obs, act = [[1.0, 2.0], [3.0, 4.0]], [[0.5]]
    chunk = _chunk(obs, act)
    expected = zlib.crc32(np.asarray(act, np.float32).tobytes(),
                          zlib.crc32(np.asarray(obs, np.float32).tobytes()))
    assert chunk_fingerprint(chunk) == expected
    assert chunk_fingerprint(_chunk(obs, [[0.25]])) != expected
    assert chunk_fingerprint(_chunk([[1.0, 2.0], [3.0, 5.0]], act)) != expected


def test_actor_stream_starts_empty():
    actor = ActorStream(4)
    assert (actor.stream, actor.next_seq, actor.ep_return, actor.first_fingerprint) == (
        4, 0, 0.0, None)


def test_in_order_chunks_continue_one_stream():
    streams = StreamAssigner()
    assert streams.next_stream == 0 and streams.lost == 0 and streams.actors == {}
    for seq in range(4):
        actor, note = streams.assign('a', seq, seq == 0)
        assert actor.stream == 0 and note is None and actor.next_seq == seq + 1
    assert streams.next_stream == 1 and streams.lost == 0
    other, note = streams.assign('b', 0, True)
    assert other.stream == 1 and note is None and streams.next_stream == 2


def test_late_joiner_duplicates_and_out_of_order():
    streams = StreamAssigner(first_stream=5)
    late, note = streams.assign('b', 3, False)          # joined late: accepted as is
    assert late.stream == 5 and note is None and late.next_seq == 4
    assert late.first_fingerprint is None
    for seq in (3, 2, 0):                                 # duplicate, out of order, old 0
        rejected, reason = streams.assign('b', seq, False)
        assert rejected is None
        assert reason == f'sequence number {seq} duplicated or out of order (expected 4)'
    assert streams.actors['b'].next_seq == 4 and streams.lost == 0


def test_gap_opens_a_new_stream_and_counts_lost_chunks():
    streams = StreamAssigner()
    streams.assign('a', 0, True)
    streams.assign('a', 1, False)
    actor, note = streams.assign('a', 4, False)
    assert actor.stream == 1 and streams.lost == 2
    assert note == '2 chunk(s) lost; starting a new replay stream'
    actor, note = streams.assign('a', 5, False)           # continues the new stream
    assert actor.stream == 1 and note is None
    actor, note = streams.assign('a', 7, False)
    assert actor.stream == 2 and streams.lost == 3 and note.startswith('1 chunk(s) lost')


def test_restart_without_fingerprint_needs_an_episode_start():
    streams = StreamAssigner()
    streams.assign('a', 0, True)
    streams.assign('a', 1, False)
    rejected, _ = streams.assign('a', 0, False)            # mid-episode 0: a stale chunk
    assert rejected is None
    actor, note = streams.assign('a', 0, True)
    assert actor.stream == 1 and 'restarted' in note and actor.next_seq == 1
    assert streams.actors['a'] is actor


def test_sequence_zero_again_before_any_progress():
    """A repeated first chunk is a duplicate; a different chunk 0 is a restart."""
    streams = StreamAssigner()
    streams.assign('a', 0, True, fingerprint=7)
    assert streams.actors['a'].first_fingerprint == 7
    rejected, reason = streams.assign('a', 0, True, fingerprint=7)
    assert rejected is None and 'duplicated' in reason and streams.next_stream == 1
    actor, note = streams.assign('a', 0, True, fingerprint=8)
    assert actor.stream == 1 and 'restarted' in note and actor.first_fingerprint == 8


def test_restart_by_fingerprint():
    streams = StreamAssigner()
    streams.assign('a', 0, False, fingerprint=111)
    streams.assign('a', 1, False, fingerprint=222)
    dup, reason = streams.assign('a', 0, True, fingerprint=111)   # repeated first chunk
    assert dup is None and 'duplicated' in reason
    actor, note = streams.assign('a', 0, False, fingerprint=333)
    assert actor.stream == 1 and actor.first_fingerprint == 333
    assert note == 'sequence restarted at 0 (actor restarted); starting a new replay stream'
    actor, _ = streams.assign('a', 2, False, fingerprint=444)       # 1 lost after restart
    assert actor.stream == 2 and streams.lost == 1
