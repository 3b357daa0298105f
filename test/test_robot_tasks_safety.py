"""Task definitions (actor-side reward) and the safety filter of the robot layer, by hand."""

import math

from mpo_ros.robot.safety import SafetyFilter, SafetyLimits
from mpo_ros.robot.tasks import make_task_definition, ReachTask, SensorFrame, tolerance
import numpy as np
import pytest


def frame(q, qd, ee, target):
    return SensorFrame(np.asarray(q, float), np.asarray(qd, float), np.asarray(ee, float),
                       np.asarray(target, float))


def test_tolerance_closed_form_values():
    # 1 inside the radius, value_at_margin at radius + margin, its 4th power at 2 margins.
    assert tolerance(0.0, 0.05, 0.05) == 1.0
    assert tolerance(0.05, 0.05, 0.05) == 1.0
    assert tolerance(0.10, 0.05, 0.05) == pytest.approx(0.1)
    assert tolerance(0.15, 0.05, 0.05) == pytest.approx(1e-4)
    assert tolerance(0.075, 0.05, 0.05) == pytest.approx(0.1 ** 0.25)
    assert tolerance(0.3, 0.05, 0.0) == 0.0


def test_tolerance_matches_dm_control():
    from dm_control.utils import rewards
    for d in np.linspace(0.0, 0.4, 41):
        assert tolerance(d, 0.05, 0.05) == pytest.approx(
            float(rewards.tolerance(d, bounds=(0, 0.05), margin=0.05)), abs=1e-12)
        assert tolerance(d, 0.05, 0.3) == pytest.approx(
            float(rewards.tolerance(d, bounds=(0, 0.05), margin=0.3)), abs=1e-12)


def test_reach_observation_layout_and_reward():
    task = make_task_definition('reach', 2)
    assert task.obs_dim == 3 * 2 + 9
    f = frame([0.0, math.pi / 2], [0.5, -1.0], [0.1, 0.2, 0.3], [0.1, 0.2, 0.4])
    obs = task.observation(f)
    np.testing.assert_allclose(obs, [0, 1, 1, 0, 0.5, -1.0, 0.1, 0.2, 0.3, 0.1, 0.2, 0.4,
                                     0, 0, 0.1], atol=1e-6)
    assert task.distance(f) == pytest.approx(0.1)
    assert task.reward(f) == pytest.approx(0.1)       # 5 cm beyond the 5 cm radius
    assert not task.success(f) and not task.terminal(f)
    near = frame([0, 0], [0, 0], [0, 0, 0], [0.03, 0.04, 0])   # 5 cm exactly
    assert task.success(near) and task.reward(near) == 1.0
    with pytest.raises(ValueError, match='2 joint'):
        task.observation(frame([0.0], [0.0], [0, 0, 0], [0, 0, 0]))
    with pytest.raises(ValueError, match='unknown task definition'):
        make_task_definition('juggle', 2)


def test_reach_reward_equals_dm_control_jaco_reward():
    """The published TCP and target are dm_control's own, and so is the reward from them."""
    from mpo_ros import envs
    from mpo_ros.envs.dmc_env import arm_sites
    env = envs.make('manip:reach_site_features', seed=3)
    composer_env = env.env
    sites = arm_sites(env)
    task = ReachTask(6)
    rng = np.random.default_rng(0)
    rewards, mine, targets = [], [], []
    spec = composer_env.action_spec()
    for episode in range(3):                  # composer may rebuild its physics at reset
        ts = composer_env.reset()
        for _ in range(40):
            ee, _, target = sites()
            # dm_control's observables (a separate code path) report the same positions
            np.testing.assert_allclose(ee, ts.observation['jaco_arm/jaco_hand/pinch_site_pos'][0],
                                       atol=1e-9)
            np.testing.assert_allclose(target, ts.observation['target_position'][0], atol=1e-9)
            if ts.reward is not None:
                rewards.append(ts.reward)
                mine.append(task.reward(frame(np.zeros(6), np.zeros(6), ee, target)))
            ts = composer_env.step(rng.uniform(spec.minimum, spec.maximum))
        targets.append(target)
    env.close()
    assert np.ptp(np.stack(targets), axis=0).max() > 0.01     # new targets each episode
    np.testing.assert_allclose(mine, rewards, atol=1e-9)


def limits(**kw):
    base = dict(max_velocity=np.array([1.0, 2.0]), position_lower=np.array([-1.0, -np.inf]),
                position_upper=np.array([1.0, np.inf]), position_margin=0.1, max_delta=0.0)
    base.update(kw)
    return SafetyLimits(**base)


def test_velocity_clip_and_non_finite():
    f = SafetyFilter(limits())
    np.testing.assert_array_equal(f(np.array([3.0, -5.0])), [1.0, -2.0])
    np.testing.assert_array_equal(f(np.array([np.nan, np.inf])), [0.0, 0.0])
    assert f.interventions == 2
    np.testing.assert_array_equal(f(np.array([0.5, -0.5])), [0.5, -0.5])
    assert f.interventions == 2


def test_position_limits_block_motion_towards_the_limit_only():
    f = SafetyFilter(limits())
    q_at_upper = np.array([0.95, 100.0])          # inside the 0.1 margin of +1; joint 2 free
    np.testing.assert_array_equal(f(np.array([0.5, 0.5]), q_at_upper), [0.0, 0.5])
    np.testing.assert_array_equal(f(np.array([-0.5, 0.5]), q_at_upper), [-0.5, 0.5])
    q_at_lower = np.array([-1.2, 0.0])            # already past the lower limit
    np.testing.assert_array_equal(f(np.array([-0.3, 0.0]), q_at_lower), [0.0, 0.0])
    np.testing.assert_array_equal(f(np.array([0.3, 0.0]), q_at_lower), [0.3, 0.0])


def test_rate_limit_then_hard_limits():
    f = SafetyFilter(limits(max_delta=0.25))
    out = [f(np.array([1.0, -2.0])).copy() for _ in range(5)]
    np.testing.assert_allclose(out, [[0.25, -0.25], [0.5, -0.5], [0.75, -0.75], [1.0, -1.0],
                                     [1.0, -1.25]])
    # A position limit stops the joint at once, whatever the rate limit says.
    np.testing.assert_array_equal(f(np.array([1.0, -2.0]), np.array([0.95, 0.0])),
                                  [0.0, -1.5])
    f.reset()
    np.testing.assert_array_equal(f.previous, [0.0, 0.0])


def test_limits_validation():
    with pytest.raises(ValueError, match='one value per joint'):
        limits(max_velocity=np.array([1.0]))
    with pytest.raises(ValueError, match='> 0'):
        limits(max_velocity=np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match='exceed'):
        limits(position_lower=np.array([2.0, 0.0]))
    with pytest.raises(ValueError, match='shape'):
        SafetyFilter(limits())(np.zeros(3))
