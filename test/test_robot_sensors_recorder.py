"""Sensor synchronisation and the transition recorder's chunk boundaries, without ROS."""

from mpo_ros.robot.recorder import TransitionRecorder
from mpo_ros.robot.sensors import SensorSync, SyncKind
import numpy as np
import pytest

Q, QD = np.array([0.1, 0.2]), np.array([0.0, -0.1])
EE, TARGET = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.5, 0.5])


def test_frame_needs_all_three_readings_of_one_instant():
    sync = SensorSync(tolerance_s=0.02)
    assert sync.joint_state(10.0, Q, QD).kind == SyncKind.NOTHING      # no pose, no target
    assert sync.ee_pose(10.01, EE).kind == SyncKind.NOTHING            # no target yet
    sync.target_point(3.0, TARGET)                                     # any stamp
    result = sync.ee_pose(10.015, EE)                                  # 15 ms apart: one instant
    assert result.kind == SyncKind.FRAME and not result.clock_jumped
    np.testing.assert_array_equal(result.frame.joint_position, Q)
    np.testing.assert_array_equal(result.frame.joint_velocity, QD)
    np.testing.assert_array_equal(result.frame.ee_position, EE)
    np.testing.assert_array_equal(result.frame.target_position, TARGET)
    assert sync.frame_stamp == 10.0                                    # the joint state's stamp


def test_pose_of_another_instant_makes_no_frame():
    sync = SensorSync(tolerance_s=0.02)
    sync.target_point(0.0, TARGET)
    sync.ee_pose(10.0, EE)
    assert sync.joint_state(10.025, Q, QD).kind == SyncKind.NOTHING    # 25 ms > 20 ms
    assert sync.ee_pose(10.03, EE).kind == SyncKind.FRAME              # 5 ms


def test_repeat_stale_and_clock_jump():
    sync = SensorSync(tolerance_s=0.0)
    sync.target_point(0.0, TARGET)
    sync.ee_pose(5.0, EE)
    assert sync.joint_state(5.0, Q, QD).kind == SyncKind.FRAME
    assert sync.joint_state(5.0, Q, QD).kind == SyncKind.REPEAT        # heartbeat
    sync.ee_pose(4.5, EE)
    assert sync.joint_state(4.5, Q, QD).kind == SyncKind.STALE         # 0.5 s back: stale
    sync.ee_pose(3.9, EE)
    result = sync.joint_state(3.9, Q, QD)                              # 1.1 s back: a jump
    assert result.kind == SyncKind.FRAME and result.clock_jumped
    assert sync.frame_stamp == 3.9


def _obs(i):
    return np.full(2, float(i), np.float32)


def _record(rec, first, last, terminal_at=None):
    for i in range(first, last):
        rec.record(np.array([i], np.float32), -float(i), float(i), i == terminal_at, _obs(i + 1))
        rec.flush_if_full()


def test_chunks_of_chunk_length_overlap_by_one_observation_and_end_at_episode_end():
    chunks = []
    rec = TransitionRecorder('a', 3, chunks.append, policy_version=lambda: 7)
    rec.begin_episode(_obs(0), start=True)
    _record(rec, 0, 7, terminal_at=6)
    rec.end_episode(truncated=False)
    assert [len(c.actions) for c in chunks] == [3, 3, 1]
    assert [c.sequence_number for c in chunks] == [0, 1, 2]
    assert [(c.episode_start, c.episode_end, c.truncated) for c in chunks] == [
        (True, False, False), (False, False, False), (False, True, False)]
    # Observations 0..7 with the boundary observations repeated: nothing lost in between.
    assert [c.observations[:, 0].tolist() for c in chunks] == [
        [0, 1, 2, 3], [3, 4, 5, 6], [6, 7]]
    assert chunks[2].discounts.tolist() == [0.0]                       # terminal
    assert chunks[0].discounts.tolist() == [1.0, 1.0, 1.0]
    assert chunks[1].log_probs.tolist() == [-3.0, -4.0, -5.0]
    assert all(c.policy_version == 7 and c.episode_id == 0 for c in chunks)
    assert rec.env_steps == 7 and not rec.in_episode


def test_episode_ending_on_a_chunk_boundary_sends_one_chunk_with_the_end_flag():
    chunks = []
    rec = TransitionRecorder('a', 2, chunks.append)
    rec.begin_episode(_obs(0), start=True)
    rec.record(np.zeros(1), 0.0, 1.0, False, _obs(1))
    rec.flush_if_full()
    rec.record(np.zeros(1), 0.0, 1.0, False, _obs(2))
    rec.end_episode(truncated=True)                                    # time limit
    assert len(chunks) == 1
    c = chunks[0]
    assert len(c.actions) == 2 and c.episode_end and c.truncated
    assert c.discounts.tolist() == [1.0, 1.0]


def test_cut_episode_is_truncated_and_an_empty_cut_sends_nothing():
    chunks = []
    rec = TransitionRecorder('a', 10, chunks.append)
    rec.begin_episode(_obs(0), start=True)
    _record(rec, 0, 2)
    rec.cut()
    assert len(chunks) == 1 and chunks[0].episode_end and chunks[0].truncated
    assert chunks[0].discounts.tolist() == [1.0, 1.0]
    rec.begin_episode(_obs(5), start=False)
    rec.cut()                                                          # no transitions yet
    assert len(chunks) == 1 and not rec.in_episode
    rec.begin_episode(_obs(9), start=True)
    _record(rec, 9, 10)
    rec.end_episode(truncated=False)
    assert [c.episode_id for c in chunks] == [0, 2]
    assert [c.sequence_number for c in chunks] == [0, 1]


@pytest.mark.parametrize('length', [1, 4])
def test_every_transition_is_sent_once(length):
    chunks = []
    rec = TransitionRecorder('a', length, chunks.append)
    rec.begin_episode(_obs(0), start=True)
    _record(rec, 0, 9)
    rec.end_episode(truncated=True)
    sent = np.concatenate([c.actions[:, 0] for c in chunks])
    assert sent.tolist() == list(range(9))


def test_a_new_policy_version_starts_a_new_chunk():
    """On-policy learners drop old versions: a chunk must never mix two policies' steps."""
    chunks = []
    rec = TransitionRecorder('a', 10, chunks.append, policy_version=lambda: 99)
    rec.begin_episode(_obs(0), start=True)
    for t, version in enumerate([3, 3, 4, 4, 4]):
        rec.record(np.zeros(1), 0.0, 1.0, False, _obs(t + 1), version)
    rec.end_episode(truncated=True)
    assert [c.policy_version for c in chunks] == [3, 4]            # not the current 99
    assert [c.observations[:, 0].tolist() for c in chunks] == [[0, 1, 2], [2, 3, 4, 5]]
    assert [(c.episode_start, c.episode_end) for c in chunks] == [(True, False), (False, True)]
