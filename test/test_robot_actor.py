"""
The robot layer's actor without ROS, against values worked out by hand in each test.

Episode / reset / evaluation state machine, halts, and the executed action that replay stores.
"""

import math

from mpo_ros.robot.arm import policy_dims, ResetConfig, SafetyConfig
from mpo_ros.robot.episode import Phase
import numpy as np
import pytest
from robot_fixtures import ARM, fix_policy, frame, gaussian_log_density, LINE, make_actor, step


def _flags(chunks):
    return [(c.episode_start, c.episode_end, c.truncated) for c in chunks]


# ------------------------------------------------------------------ episodes (task/step path)
def test_episode_start_chunks_terminal_and_next_episode():
    actor, io, _ = make_actor(chunk_length=2)
    assert actor.on_task_step(step(0, [0, 0, 0], start=True))
    for seq, r in ((1, 1.0), (2, 2.0)):
        assert actor.on_task_step(step(seq, [seq] * 3, reward=r))
    assert len(io.chunks) == 1                                         # full at 2 transitions
    assert not actor.on_task_step(step(3, [3] * 3, reward=3.0, terminal=True))
    assert len(io.commands) == 3                                       # no action after the end
    actor.on_task_step(step(4, [4] * 3, start=True))
    actor.on_task_step(step(5, [5] * 3, reward=5.0, truncated=True))
    assert _flags(io.chunks) == [(True, False, False), (False, True, False),
                                 (True, True, True)]
    assert [c.episode_id for c in io.chunks] == [0, 0, 1]
    assert [c.sequence_number for c in io.chunks] == [0, 1, 2]
    assert io.chunks[0].observations[:, 0].tolist() == [0, 1, 2]
    assert io.chunks[1].observations[:, 0].tolist() == [2, 3]
    assert io.chunks[0].rewards.tolist() == [1.0, 2.0]
    assert io.chunks[1].discounts.tolist() == [0.0]                    # terminal: no bootstrap
    assert io.chunks[2].discounts.tolist() == [1.0]                    # time limit: bootstrap
    assert actor.train_returns == [6.0, 5.0] and actor.recorder.env_steps == 4


def test_terminal_and_truncated_together_is_terminal():
    actor, io, _ = make_actor()
    actor.on_task_step(step(0, [0] * 3, start=True))
    actor.on_task_step(step(1, [1] * 3, reward=1.0, terminal=True, truncated=True))
    assert _flags(io.chunks) == [(True, True, False)]
    assert io.chunks[0].discounts.tolist() == [0.0]


def test_reset_from_outside_mid_episode_cuts_it_truncated():
    actor, io, _ = make_actor()
    actor.on_task_step(step(0, [0] * 3, start=True))
    actor.on_task_step(step(1, [1] * 3))
    actor.on_task_step(step(2, [9] * 3, start=True))                   # the bridge reset
    assert _flags(io.chunks) == [(True, True, True)]
    assert io.chunks[0].observations[:, 0].tolist() == [0, 1]


def test_heartbeat_repeats_the_command_and_stale_steps_are_ignored():
    actor, io, _ = make_actor()
    actor.on_task_step(step(5, [0] * 3, start=True))
    actor.on_task_step(step(5, [0] * 3, start=True))
    assert len(io.commands) == 2
    np.testing.assert_array_equal(io.commands[0], io.commands[1])
    assert not actor.on_task_step(step(4, [0] * 3)) and len(io.commands) == 2


def test_throttle_holds_the_step_until_the_budget_allows():
    actor, io, _ = make_actor(throttle=True)
    assert not actor.on_task_step(step(0, [0] * 3, start=True))        # no budget yet
    assert io.commands == [] and actor.state.deferred is not None
    actor.set_budget(-1)                                               # unlimited
    assert len(io.commands) == 1 and actor.state.pending is not None


def test_evaluation_episodes_are_not_recorded():
    actor, io, _ = make_actor(eval_every=2, eval_episodes=2)
    fix_policy(actor, [0.25, -0.5], [0.3, 0.3])
    actor.on_task_step(step(0, [0] * 3, start=True))
    actor.on_task_step(step(1, [1] * 3, reward=1.0))
    actor.on_task_step(step(2, [2] * 3, reward=1.0, terminal=True))   # 2 training steps
    seq = 3
    for ret in (3.0, 5.0):                                             # two eval episodes
        actor.on_task_step(step(seq, [0] * 3, start=True))
        assert actor.state.evaluating
        # Deterministic: the mean's command, -2 + 4 * (0.25 + 1) / 2 = 0.5 and (-0.5 + 1) / 2.
        np.testing.assert_allclose(io.commands[-1], [0.5, 0.25], atol=1e-6)
        actor.on_task_step(step(seq + 1, [0] * 3, reward=ret, terminal=True))
        seq += 2
    assert len(io.chunks) == 1 and actor.recorder.env_steps == 2
    assert len(io.evals) == 1
    result = io.evals[0]
    assert (result.mean, result.std, result.episodes, result.env_steps) == (4.0, 1.0, 2, 2)
    assert result.success_rate is None and result.train_return == 2.0
    assert not actor.state.evaluating
    actor.on_task_step(step(seq, [0] * 3, start=True))                 # training again
    actor.on_task_step(step(seq + 1, [0] * 3, reward=1.0, terminal=True))
    assert len(io.chunks) == 2 and io.chunks[1].episode_id == 1


# ------------------------------------------------------------------ halts
def test_e_stop_halts_and_release_resumes_only_when_every_latch_is_off():
    actor, io, clock = make_actor()
    actor.on_task_step(step(0, [0] * 3, start=True))
    actor.on_task_step(step(1, [1] * 3))
    actor.set_e_stop(True)
    assert actor.state.phase == Phase.HALTED and actor.state.halted
    np.testing.assert_array_equal(io.commands[-1], [0.0, 0.0])
    assert _flags(io.chunks) == [(True, True, True)]                   # cut: bootstrap
    n = len(io.commands)
    clock.t += 0.05
    assert not actor.on_task_step(step(2, [2] * 3))                    # within 0.1 s: quiet
    clock.t += 0.1
    actor.on_task_step(step(3, [3] * 3))                               # re-asserted zero
    assert len(io.commands) == n + 1 and not np.any(io.commands[-1])
    actor.set_active(False)
    actor.set_e_stop(False)                                            # still deactivated
    assert actor.state.phase == Phase.HALTED and not np.any(io.commands[-1])
    actor.set_active(True)                                             # acts on the latest step
    assert not actor.state.halted and np.any(io.commands[-1])
    actor.on_task_step(step(4, [4] * 3, reward=1.0, terminal=True))
    assert _flags(io.chunks)[-1] == (False, True, False)               # joined, not a start
    assert io.chunks[-1].observations[:, 0].tolist() == [3, 4]


def test_watchdog_zeroes_a_moving_command_and_cuts_the_episode():
    actor, io, clock = make_actor(safety=SafetyConfig(sensor_timeout_s=0.5))
    fix_policy(actor, [0.5, 0.5], [0.01, 0.01])                        # never a zero command
    actor.on_task_step(step(0, [0] * 3, start=True))
    actor.on_task_step(step(1, [1] * 3))
    clock.t += 0.4
    actor.watchdog()
    assert np.any(io.commands[-1]) and io.chunks == []
    clock.t += 0.2
    actor.watchdog()
    assert not np.any(io.commands[-1]) and _flags(io.chunks) == [(True, True, True)]


# ------------------------------------------------------------------ sensor path and reset
def test_home_reset_then_episode_then_reset_again():
    home = ResetConfig(mode='home', home=(0.0, 0.5), gain=1.0, tolerance=0.05, service='')
    actor, io, _ = make_actor(ARM, reset=home, task_definition='reach', episode_steps=2)
    assert actor.state.phase == Phase.HOMING                           # homes before episode 1
    # j1 is continuous: from 6.0 the short way to 0 is +0.283 (2 pi - 6), not -6.
    frame(actor, 1.0, [6.0, 0.0])
    np.testing.assert_allclose(io.commands[-1], [2 * math.pi - 6.0, 0.5])
    frame(actor, 2.0, [0.01, 0.49])                                    # home within tolerance
    assert not np.any(io.commands[-1]) and actor.state.phase == Phase.WAIT_FRAME
    assert io.reset_calls == 1                                         # no service: 'none'
    assert frame(actor, 3.0, [0.01, 0.49])                             # next frame: episode
    assert actor.state.phase == Phase.EPISODE
    frame(actor, 4.0, [0.02, 0.49])
    assert not frame(actor, 5.0, [0.03, 0.49])                         # 2 frames: time limit
    assert actor.state.phase == Phase.HOMING and not np.any(io.commands[-1])
    assert _flags(io.chunks) == [(True, True, True)]
    assert io.chunks[0].rewards.tolist() == [1.0, 1.0]                 # ee on the target
    assert io.chunks[0].observations.shape == (3, 3 * 2 + 9)


def test_service_reset_retries_waits_for_the_reset_stamp_and_times_out():
    service = ResetConfig(mode='service', service='bridge/reset', timeout_s=30.0)
    actor, io, clock = make_actor(ARM, reset=service, task_definition='reach',
                                  episode_steps=1)
    io.reset_answer = 'called'
    assert actor.state.phase == Phase.WAIT_START
    assert frame(actor, 1.0, [0.0, 0.0])                               # starts at once
    frame(actor, 2.0, [0.0, 0.0])                                      # time limit
    assert actor.state.phase == Phase.RESET_SERVICE and io.reset_calls == 1
    n = len(io.commands)
    frame(actor, 3.0, [0.0, 0.0])                                      # call in flight
    assert io.reset_calls == 1 and len(io.commands) == n
    actor.on_reset_result(False, 'busy')
    assert actor.state.phase == Phase.RESET_SERVICE
    frame(actor, 4.0, [0.0, 0.0])                                      # retried
    assert io.reset_calls == 2 and not np.any(io.commands[-1])
    actor.on_reset_result(True, 'reset; stamp=10.0')
    assert actor.state.phase == Phase.WAIT_FRAME
    assert not frame(actor, 5.0, [0.0, 0.0])                           # before the reset state
    assert frame(actor, 10.0, [0.0, 0.0])                              # the reset state
    assert actor.state.phase == Phase.EPISODE
    frame(actor, 11.0, [0.0, 0.0])
    assert actor.state.phase == Phase.RESET_SERVICE and io.reset_calls == 3
    actor.on_reset_result(False, 'busy')
    clock.t += 31.0
    actor.reset_timer()                                                # gives up: starts
    assert actor.state.phase == Phase.EPISODE
    assert [c.episode_start for c in io.chunks] == [True, True]


def test_e_stop_on_the_sensor_path_goes_home_after_release():
    home = ResetConfig(mode='home', home=(0.0, 0.0), service='')
    actor, io, clock = make_actor(ARM, reset=home, task_definition='reach', episode_steps=50)
    frame(actor, 1.0, [0.0, 0.0])                                      # at home already
    frame(actor, 2.0, [0.0, 0.0])
    frame(actor, 3.0, [0.0, 0.0])
    frame(actor, 4.0, [0.0, 0.0])
    assert actor.state.phase == Phase.EPISODE
    actor.set_e_stop(True)
    assert _flags(io.chunks) == [(True, True, True)]
    clock.t += 1.0
    assert not frame(actor, 5.0, [0.3, 0.0]) and not np.any(io.commands[-1])
    actor.set_active(False)
    actor.set_e_stop(False)                                            # still deactivated
    assert actor.state.phase == Phase.HALTED
    clock.t += 1.0
    frame(actor, 6.0, [0.3, 0.0])
    assert not np.any(io.commands[-1])                                 # no homing yet
    actor.set_active(True)
    assert actor.state.phase == Phase.HOMING
    frame(actor, 7.0, [0.3, 0.0])
    np.testing.assert_allclose(io.commands[-1], [-0.3, 0.0])


def test_clock_jump_cuts_the_episode_and_starts_a_new_one():
    actor, io, _ = make_actor(ARM, task_definition='reach', episode_steps=50)
    frame(actor, 50.0, [0.0, 0.0])
    frame(actor, 51.0, [0.0, 0.0])
    assert frame(actor, 2.0, [0.0, 0.0])                               # driver restarted
    assert _flags(io.chunks) == [(True, True, True)]
    assert actor.state.phase == Phase.EPISODE and actor.state.latest.episode_start


# ------------------------------------------------------------------ executed actions
def test_rate_limited_commands_are_stored_as_executed_with_their_log_density():
    mean, std = [0.5, 0.0], [0.05, 0.05]
    with pytest.raises(ValueError, match='command_in_observation'):
        make_actor(safety=SafetyConfig(max_delta=0.1))
    actor, io, _ = make_actor(safety=SafetyConfig(max_delta=0.1), command_in_observation=True)
    assert actor.obs_dim == 3 + 2
    fix_policy(actor, mean, std)
    # The policy wants about (1.0, 0.5) in actuator units; the rate limit allows 0.1 a step.
    for seq in range(4):
        actor.on_task_step(step(seq, [seq] * 3, start=seq == 0))
    actor.on_task_step(step(4, [4] * 3, terminal=True))
    np.testing.assert_allclose(np.stack(io.commands[:3]), [[0.1, 0.1], [0.2, 0.2],
                                                           [0.3, 0.3]], atol=1e-12)
    chunk = io.chunks[0]
    # Back to [-1, 1]: dim 0 maps [-2, 2] (c / 2), dim 1 maps [0, 1] (2 c - 1).
    expected = [[0.05, -0.8], [0.1, -0.6], [0.15, -0.4]]
    np.testing.assert_allclose(chunk.actions[:3], expected, atol=1e-6)
    for got, action in zip(chunk.log_probs[:3], expected):
        assert got == pytest.approx(gaussian_log_density(action, mean, std), rel=1e-4)
    # The observation ends with the previous command, normalised: zero = (0, -1) at first.
    np.testing.assert_allclose(chunk.observations[:4, 3:],
                               [[0.0, -1.0]] + expected, atol=1e-6)


@pytest.mark.parametrize('mean', [[0.95, -0.95], [1.6, -1.4]])
def test_clipping_alone_keeps_the_raw_sample_and_its_log_probability(mean):
    std = [0.3, 0.3]
    actor, io, _ = make_actor()
    fix_policy(actor, mean, std)
    for seq in range(30):
        actor.on_task_step(step(seq, [0] * 3, start=seq == 0))
    actor.on_task_step(step(30, [0] * 3, terminal=True))
    acts, logps = io.chunks[0].actions, io.chunks[0].log_probs
    commands = np.stack(io.commands[:30])
    # The command is the clipped sample mapped by hand; the stored action is not clipped.
    low, high = np.array([-2.0, 0.0]), np.array([2.0, 1.0])
    by_hand = low + (np.clip(acts, -1, 1) + 1) / 2 * (high - low)
    np.testing.assert_allclose(commands, by_hand, atol=1e-6)
    assert np.any(acts[:, 0] > 1.0) and np.any(acts[:, 1] < -1.0)      # raw, beyond bounds
    for action, got in zip(acts, logps):
        assert got == pytest.approx(gaussian_log_density(action, mean, std), rel=1e-4)


def test_a_position_limit_stores_the_stopped_joint_and_keeps_the_clipped_one_raw():
    safety = SafetyConfig(position_margin=0.1)
    actor, io, _ = make_actor(ARM, task_definition='reach', episode_steps=50, safety=safety)
    mean, std = [1.5, 0.5], [0.1, 0.1]                                 # j1 beyond its bound
    fix_policy(actor, mean, std)
    for t in range(1, 6):
        frame(actor, float(t), [0.0, 0.95])                            # j2 near its upper limit
    actor.set_e_stop(True)                                             # ends the episode
    acts, logps = io.chunks[0].actions, io.chunks[0].log_probs
    assert len(acts) == 4
    for command, action, logp in zip(io.commands, acts, logps):
        assert command[1] == 0.0 and action[1] == 0.0                  # stopped: stored as 0
        assert command[0] == 1.0 and action[0] > 1.0                   # only clipped: raw kept
        assert logp == pytest.approx(gaussian_log_density(action, mean, std), rel=1e-4)


def test_policy_dims_with_the_previous_command():
    assert policy_dims(LINE, '', []) == (3, 2)
    assert policy_dims(LINE, '', [], True) == (5, 2)
    assert policy_dims(ARM, 'reach', ['j2'], True) == (3 + 9 + 1, 1)


def test_a_policy_that_gives_nan_commands_zero_and_records_nothing():
    actor, io, _ = make_actor(chunk_length=2)
    n = actor.act_dim
    fix_policy(actor, [math.nan] * n, [0.5] * n)
    actor.on_task_step(step(0, [0, 0, 0], start=True))
    for seq in (1, 2, 3):
        actor.on_task_step(step(seq, [seq] * 3, reward=1.0))
    assert all(not np.any(c) for c in io.commands) and io.commands
    assert any('non-finite action' in text for _, text in io.logs)
    assert all(np.isfinite(c.actions).all() for c in io.chunks)
    fix_policy(actor, [0.1] * n, [0.5] * n)               # finite again: acts and records
    for seq in (4, 5, 6):
        actor.on_task_step(step(seq, [seq] * 3, reward=1.0))
    assert np.any(io.commands[-1]) and io.chunks
