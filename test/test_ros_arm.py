"""
The actor on a real arm's topics: a stand-in ros2_control driver process, real topics only.

The driver (standin_driver.py) publishes /joint_states in its own joint order (plus finger
joints the policy does not drive), /ee_pose and /target, and integrates velocity commands from
/joint_velocity_controller/commands in its controller's joint order. Each test starts it and
an actor as separate processes and watches the command topic from the test process.
"""

import os
import signal
import sys
import time

from fault_nodes import NodeProcess, Observer, wait_for_log
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TASK = 'manip:reach_site_features'
JOINTS = [f'jaco_arm/joint_{i}' for i in range(1, 7)]
FINGERS = [f'jaco_arm/jaco_hand/finger_{i}' for i in range(1, 4)]
SHUFFLED = [JOINTS[i] for i in (3, 0, 5, 1, 4, 2)]
COMMANDS = '/joint_velocity_controller/commands'
J2_UPPER, J3_LOWER = 5.462881, 0.331613          # the Jaco model's limits of joints 2 and 3


def yaml_list(values):
    return '[' + ', '.join(str(v) for v in values) + ']'


def actor_params(tmp_path, **params):
    """Write an actor parameter file: reach on the Jaco's six arm joints plus ``params``."""
    base = {'task': TASK, 'task_definition': 'reach', 'joints': yaml_list(JOINTS),
            'throttle': 'false', 'eval_every': 0, 'episode_steps': 100000,
            'timing_period_s': 1.0}
    base.update(params)
    lines = ['/**/actor:', '  ros__parameters:']
    lines += [f'    {k}: {v}' for k, v in base.items()]
    path = tmp_path / 'actor.yaml'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def actor(tmp_path, **params):
    cmd = [os.path.join(os.path.dirname(sys.executable), 'actor'), '--ros-args',
           '-r', '__node:=actor', '--params-file', actor_params(tmp_path, **params)]
    return NodeProcess('actor', cmd, str(tmp_path)).start()


def driver(tmp_path, initial, frozen=False):
    cmd = [sys.executable, os.path.join(HERE, 'standin_driver.py'),
           '--controller-joints', *JOINTS, '--publish-order', *SHUFFLED,
           '--extra-joints', *FINGERS, '--initial', *[str(x) for x in initial]]
    if frozen:
        cmd.append('--frozen')
    return NodeProcess('driver', cmd, str(tmp_path)).start()


@pytest.fixture
def observer():
    from std_msgs.msg import Float64MultiArray
    obs = Observer('arm_test_observer')
    obs.commands = obs.record(Float64MultiArray, COMMANDS)
    yield obs
    obs.close()


def values(box, since=0.0):
    return [np.asarray(m.data) for t, m in box if t >= since]


def stop_all(*nodes):
    for node in nodes:
        node.stop()


def test_homing_reaches_each_joint_by_name_with_a_shuffled_driver(tmp_path, observer):
    """Commands are in the controller's order although joint_states come shuffled."""
    from sensor_msgs.msg import JointState
    home = [0.4, 2.0, 1.0, -0.3, 0.6, -0.5]
    states = observer.record(JointState, '/joint_states')
    drv = driver(tmp_path, initial=[0.0, 1.5, 1.5, 0.0, 0.0, 0.0])
    act = actor(tmp_path, **{'reset.mode': 'home', 'reset.home': yaml_list(home),
                             'reset.gain': 2.0, 'reset.tolerance': 0.01, 'reset.service': "''"})
    try:
        def at_home():
            if not states:
                return False
            msg = states[-1][1]
            q = dict(zip(msg.name, msg.position))
            return all(abs(q[j] - h) < 0.03 for j, h in zip(JOINTS, home))
        assert observer.spin_until(at_home, 60.0), act.all_logs() + drv.all_logs()
        msg = states[-1][1]
        assert list(msg.name[:6]) == SHUFFLED              # the driver's order, not ours
        cmds = values(observer.commands)
        assert all(c.shape == (6,) for c in cmds)
        # Joint 2 starts 0.5 rad below home and joint 3 0.5 above: by the controller's order
        # the first moving commands push them the right way.
        moving = [c for c in cmds if np.any(c != 0)]
        assert moving and moving[0][1] > 0 and moving[0][2] < 0
        # Once home, the actor stops the arm (no learner: it then waits for weights).
        assert observer.spin_until(lambda: not np.any(values(observer.commands)[-1]), 10.0)
        assert act.alive(), act.all_logs()
    finally:
        stop_all(act, drv)


def test_velocity_rate_and_position_limits_on_policy_commands(tmp_path, observer):
    """A random policy's commands: clipped speed, limited change, no motion past a limit."""
    # Joint 2 sits at its upper limit and joint 3 at its lower one (frozen driver).
    drv = driver(tmp_path, initial=[0.0, J2_UPPER - 0.01, J3_LOWER + 0.01, 0.0, 0.0, 0.0],
                 frozen=True)
    act = actor(tmp_path, wait_for_weights='false', **{
        'reset.service': "''", 'safety.max_velocity': yaml_list([0.2] * 6),
        'safety.max_delta': 0.05, 'command_in_observation': 'true', 'network.init_std': 1.0})
    try:
        assert observer.spin_until(lambda: len(observer.commands) >= 150, 90.0), \
            act.all_logs() + drv.all_logs()
        assert act.alive(), act.all_logs()
        cmds = np.stack(values(observer.commands))
        assert np.all(np.abs(cmds) <= 0.2 + 1e-12)
        assert np.any(np.abs(cmds[:, [0, 3, 4, 5]]) >= 0.2 - 1e-9)    # the clip was needed
        # Consecutive commands only: the observer may connect after the actor's first ones.
        steps = np.abs(np.diff(cmds, axis=0))
        assert np.all(steps <= 0.05 + 1e-12)
        assert np.any(steps >= 0.05 - 1e-9)                           # and so was the limit
        assert np.all(cmds[:, 1] <= 0.0) and np.all(cmds[:, 2] >= 0.0)
        assert np.any(cmds[:, 1] < 0.0) or np.any(cmds[:, 2] > 0.0)   # away from it is fine
    finally:
        stop_all(act, drv)


def test_e_stop_deactivate_watchdog_and_shutdown_zero_the_arm(tmp_path, observer):
    """Each way of stopping sends a zero command and keeps it until released."""
    from std_msgs.msg import Bool
    from std_srvs.srv import SetBool
    drv = driver(tmp_path, initial=[0.0, 3.0, 3.0, 0.0, 0.0, 0.0], frozen=True)
    act = actor(tmp_path, wait_for_weights='false', **{
        'reset.service': "''", 'safety.sensor_timeout_s': 0.3})
    e_stop = observer.publisher(Bool, '/e_stop')
    cmds = observer.commands

    def moving_since(t):
        return lambda: any(np.any(v) for v in values(cmds, t))

    def zero_since(t, settle):
        """After ``settle`` s: commands came after t, and those after t + settle are all 0."""
        observer.spin_for(settle + 1.0)
        late = values(cmds, t + settle)
        return bool(values(cmds, t)) and bool(late) and not any(np.any(v) for v in late)

    try:
        assert observer.spin_until(moving_since(0.0), 60.0), act.all_logs() + drv.all_logs()
        assert observer.wait_subscribers(e_stop)
        # e-stop latches zero while sensors keep coming; release resumes
        t = time.monotonic()
        e_stop.publish(Bool(data=True))
        assert zero_since(t, 0.3), act.all_logs()
        assert wait_for_log(act, 'e-stop: zero command', 5.0)
        t = time.monotonic()
        e_stop.publish(Bool(data=False))
        assert observer.spin_until(moving_since(t), 10.0), act.all_logs()
        # deactivate / activate through ~/set_active
        t = time.monotonic()
        response = observer.call(SetBool, '/actor/set_active', SetBool.Request(data=False))
        assert response is not None and response.success
        assert zero_since(t, 0.3), act.all_logs()
        t = time.monotonic()
        assert observer.call(SetBool, '/actor/set_active', SetBool.Request(data=True)).success
        assert observer.spin_until(moving_since(t), 10.0), act.all_logs()
        # the driver dies: the watchdog zeroes the command once sensor data is 0.3 s old
        drv.kill(signal.SIGKILL)
        t = time.monotonic()
        assert observer.spin_until(lambda: values(cmds, t) and not np.any(
            values(cmds, t)[-1]), 5.0), act.all_logs()
        assert wait_for_log(act, 'no sensor data for 0.3 s: zero command', 5.0)
        assert act.alive()
        # the driver is back: acting resumes; then SIGINT: the last command is zero
        drv.start()
        t = time.monotonic()
        assert observer.spin_until(moving_since(t), 30.0), act.all_logs() + drv.all_logs()
        assert act.kill(signal.SIGINT, timeout=30.0) == 0, act.all_logs()
        observer.spin_for(1.0)
        assert not np.any(values(cmds)[-1]), act.all_logs()
    finally:
        stop_all(act, drv)


def test_bridge_joint_reader_follows_composer_resets():
    """joint_states report the live arm across resets (composer rebuilds its Physics)."""
    from mpo_ros import envs
    from mpo_ros.ros.bridge_node import joint_reader
    env = envs.make(TASK, seed=1)
    read = joint_reader(env)
    spec = env.env.action_spec()
    rng = np.random.default_rng(1)
    seen = []
    for _ in range(3):
        ts = env.env.reset()
        for _ in range(5):
            q, _ = read()
            sincos = ts.observation['jaco_arm/joints_pos'][0]       # dm_control's own view
            np.testing.assert_allclose(np.sin(q[:6]), sincos[:, 0], atol=1e-9)
            np.testing.assert_allclose(np.cos(q[:6]), sincos[:, 1], atol=1e-9)
            ts = env.env.step(rng.uniform(spec.minimum, spec.maximum))
        seen.append(q)
    env.close()
    assert np.ptp(np.stack(seen), axis=0).max() > 0.01


def test_sim_time_stamps_never_go_back():
    """0.04 s steps summed in floating point hit 2.9999999999 s: that is 3 s, not 2."""
    from mpo_ros.ros.bridge_node import _stamp
    assert (_stamp(2.9999999999996).sec, _stamp(2.9999999999996).nanosec) == (3, 0)
    assert (_stamp(1.25).sec, _stamp(1.25).nanosec) == (1, 250_000_000)
    t, last = 0.0, -1.0
    for _ in range(5000):
        t += 0.04
        s = _stamp(t)
        assert s.sec + 1e-9 * s.nanosec > last
        last = s.sec + 1e-9 * s.nanosec
