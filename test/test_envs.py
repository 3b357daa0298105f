"""Environment adapters: specs, action scaling, terminal versus time-limit truncation."""

import numpy as np
import pytest

from mpo_ros import envs


def test_action_scaling_maps_box_to_limits_and_clips():
    spec = envs.EnvSpec('x', 1, 2, (-2.0, 0.0), (2.0, 10.0), (), 0.1, None)
    np.testing.assert_allclose(spec.scale_action([-1, 1]), [-2.0, 10.0])
    np.testing.assert_allclose(spec.scale_action([0, 0]), [0.0, 5.0])
    np.testing.assert_allclose(spec.scale_action([5, -7]), [2.0, 0.0])


def test_pendulum_truncates_at_time_limit():
    env = envs.make('gym:Pendulum-v1', seed=0)
    assert (env.spec.obs_dim, env.spec.act_dim, env.spec.action_high) == (3, 1, (2.0,))
    env.reset()
    steps = [env.step(np.zeros(1)) for _ in range(200)]
    assert not any(s.terminal for s in steps)
    assert [s.truncated for s in steps].index(True) == 199


def test_hopper_falls_into_a_terminal_state_and_names_its_joints():
    env = envs.make('gym:Hopper-v5', seed=0)
    assert env.spec.joint_names == ('thigh_joint', 'leg_joint', 'foot_joint')
    env.reset()
    for _ in range(1000):
        step = env.step(np.ones(3))
        if step.terminal or step.truncated:
            break
    assert step.terminal and not step.truncated


def test_dm_control_cartpole_time_limit_is_truncation():
    env = envs.make('dmc:cartpole-swingup', seed=0)
    assert env.spec.max_episode_steps == 1000 and env.spec.joint_names == ('slider',)
    env.reset()
    for k in range(1000):
        step = env.step(np.zeros(1))
        assert not step.terminal
    assert step.truncated and k == 999


def test_jaco_arm_spec():
    env = envs.make('manip:reach_site_features', seed=0)
    assert env.spec.act_dim == 9 and env.spec.joint_names[0] == 'jaco_arm/joint_1'
    assert env.spec.control_dt == pytest.approx(0.04)
    obs = env.reset()
    assert obs.shape == (env.spec.obs_dim,) and np.isfinite(obs).all()


@pytest.mark.parametrize('task', ['pendulum', 'gym:NoSuchEnv-v0', 'dmc:cartpole',
                                  'foo:bar', 'manip:nothing'])
def test_unknown_tasks_raise_clear_errors(task):
    with pytest.raises(envs.UnknownTaskError):
        envs.make(task)
