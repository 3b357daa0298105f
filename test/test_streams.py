"""The learner's per-actor stream rules and chunk fingerprints, without ROS."""

import numpy as np

from mpo_ros.core.streams import chunk_fingerprint, StreamAssigner, TrajectoryChunk


def test_stream_assignment():
    streams = StreamAssigner(first_stream=5)
    a, note = streams.assign('a', 0, True)
    assert a.stream == 5 and note is None
    b, _ = streams.assign('b', 3, False)               # joined late: accepted as is
    assert b.stream == 6
    assert streams.assign('a', 1, False)[0].stream == 5
    rejected, reason = streams.assign('a', 1, False)
    assert rejected is None and 'duplicated or out of order' in reason
    assert streams.assign('a', 0, False)[0] is None    # out of order
    gap, note = streams.assign('a', 4, False)           # 2 and 3 lost
    assert gap.stream == 7 and '2 chunk(s) lost' in note
    restart, _ = streams.assign('a', 0, True)           # the actor restarted
    assert restart.stream == 8 and streams.assign('a', 1, False)[0].stream == 8


def test_stream_restart_vs_duplicate_by_fingerprint():
    """A restarted actor (sequence 0 mid-episode) opens a stream; a repeated chunk 0 does not."""
    streams = StreamAssigner()
    first, _ = streams.assign('a', 0, False, fingerprint=111)
    assert first.stream == 0 and streams.assign('a', 1, False, fingerprint=222)[0] is not None
    dup, reason = streams.assign('a', 0, False, fingerprint=111)
    assert dup is None and 'duplicated or out of order' in reason
    restarted, note = streams.assign('a', 0, False, fingerprint=333)
    assert restarted.stream == 1 and 'restarted' in note
    assert streams.assign('a', 3, False, fingerprint=444)[0].stream == 2
    assert streams.lost == 2


def _chunk(obs, act):
    return TrajectoryChunk('a', 0, 0, 0, np.asarray(obs, np.float32),
                           np.asarray(act, np.float32), np.zeros(1, np.float32),
                           np.ones(1, np.float32), np.zeros(1, np.float32), True, False, False)


def test_fingerprint_depends_on_observations_and_actions():
    import zlib
    base = _chunk([[1.0], [2.0]], [[0.5]])
    obs = np.asarray([[1.0], [2.0]], np.float32).tobytes()
    act = np.asarray([[0.5]], np.float32).tobytes()
    assert chunk_fingerprint(base) == zlib.crc32(act, zlib.crc32(obs))
    assert chunk_fingerprint(_chunk([[1.0], [2.5]], [[0.5]])) != chunk_fingerprint(base)
    assert chunk_fingerprint(_chunk([[1.0], [2.0]], [[0.25]])) != chunk_fingerprint(base)


def test_quotas_keep_one_sender_from_taking_the_replay_over():
    """Bounded actor ids (idle ones make room), a per-actor token bucket, bounded jumps."""
    from mpo_ros.core.config import StreamConfig
    now = [0.0]
    limits = StreamConfig(max_actors=3, actor_idle_s=10.0, actor_steps_per_s=100.0,
                          actor_burst_s=1.0, max_sequence_jump=50)
    streams = StreamAssigner(limits=limits, clock=lambda: now[0])
    assert streams.assign('real', 0, True, steps=10)[0] is not None
    accepted = [streams.assign(f'fake{i}', 0, True, steps=10)[0] for i in range(100)]
    assert sum(a is not None for a in accepted) == 2 and streams.refused == 98
    assert set(streams.actors) == {'real', 'fake0', 'fake1'}
    assert streams.assign('real', 1, False, steps=10)[0] is not None   # the real one goes on
    # Rate: 100 steps/s, bursts of 100: 8 more chunks of 10 fit now, then one per 0.1 s.
    ok = [streams.assign('real', 2 + i, False, steps=10)[0] is not None for i in range(10)]
    assert ok == [True] * 8 + [False] * 2 and streams.refused == 100
    now[0] += 0.1
    assert streams.assign('real', 10, False, steps=10)[0] is not None
    # Sequence 2**63 with the real id is refused and does not move the expected number.
    hostile, reason = streams.assign('real', 2 ** 63, False, steps=1)
    assert hostile is None and 'implausibly far' in reason
    assert streams.actors['real'].next_seq == 11 and streams.lost == 0
    now[0] += 0.05
    assert streams.assign('real', 11, False, steps=1)[0] is not None
    # After actor_idle_s a silent id makes room for a new one.
    now[0] += 5.0
    streams.assign('real', 12, False, steps=1)
    now[0] += 6.0
    assert streams.assign('new', 0, True, steps=1)[0] is not None
    assert 'real' in streams.actors and len(streams.actors) == 3
