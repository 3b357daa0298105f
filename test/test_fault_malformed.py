"""
Malformed input through real topics and services, against real node processes.

A lone learner gets Trajectory messages with NaN / inf, wrong sizes, wrong dims, duplicated
and out-of-order sequence numbers; a lone actor gets PolicyWeights with a bad checksum, a bad
layout and the wrong architecture, and GetAction requests with bad observations. Each must be
rejected with its reason in the node's log, change nothing (the learner's ``~/counters``:
chunks stored and replay size; the actor's policy version through GetAction) and leave the
node running. Parameters: invalid at start (exit status 2 naming the parameter) and at run
time through the SetParameters service (rejected with the reason, node unchanged and alive).
A lone sensor-path actor (task definition ``reach``, the test playing the arm driver) gets
JointState messages with NaN / inf, wrong sizes, unknown, missing and duplicated joints: each
is rejected with its reason and commands nothing, and a valid frame afterwards is acted on.
"""

import math
import os
import subprocess
import sys
import time
import uuid
import zlib

import fault_nodes as fn
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from mpo_ros.core.config import NetworkConfig  # noqa: E402
from mpo_ros.core.policy import flatten_state, Policy  # noqa: E402
from mpo_ros.ros import common  # noqa: E402
from mpo_ros.ros import conversions as conv  # noqa: E402
from mpo_ros_interfaces.msg import PolicyWeights, Trajectory  # noqa: E402
from mpo_ros_interfaces.srv import GetAction  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import GetParameters, SetParameters  # noqa: E402
from geometry_msgs.msg import PointStamped, PoseStamped  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray, Int64  # noqa: E402

pytestmark = pytest.mark.ros

TASK = 'gym:Pendulum-v1'                   # obs 3, act 1
START_TIMEOUT_S = 240.0
NET = NetworkConfig(policy_hidden=(16, 16), critic_hidden=(16, 16))
NET_ARGS = ['network.policy_hidden:=[16,16]', 'network.critic_hidden:=[16,16]']


@pytest.fixture(scope='module')
def nodes(tmp_path_factory):
    """Start a lone learner and a lone actor (no bridge) in one namespace, and an observer."""
    log_dir = str(tmp_path_factory.mktemp('fault_malformed'))
    ns = '/m' + uuid.uuid4().hex[:8]
    cmds = fn.node_commands(TASK, ns, [
        f'learner.out_dir:={log_dir}/run', 'learner.replay.min_size:=100000',
        'learner.stats_period_s:=0.3', 'learner.resume:=false',
        'actor.safety.sensor_timeout_s:=0.0',        # no watchdog command between test steps
        'learner.streams.actor_steps_per_s:=100.0', 'learner.streams.max_chunk_steps:=64',
        'learner.plot_period_s:=3600.0',
        *('learner.' + a for a in NET_ARGS), *('actor.' + a for a in NET_ARGS)])
    procs = {n: fn.NodeProcess(n, cmds[n], log_dir) for n in ('learner', 'actor')}
    obs = fn.Observer('fault_malformed_observer')
    state = {'ns': ns, 'obs': obs, 'procs': procs, 'out': os.path.join(log_dir, 'run'),
             'counters': obs.record(Float64MultiArray, ns + '/learner/counters'),
             'traj_pub': obs.publisher(Trajectory, ns + '/trajectories', common.RELIABLE),
             'weights_pub': obs.publisher(PolicyWeights, ns + '/learner/policy_weights',
                                          common.LATCHED)}
    try:
        for p in procs.values():
            p.start()
        yield state
    finally:
        obs.close()
        for p in procs.values():
            p.stop()


def last_counters(nodes, since):
    """Return the learner's counters from a message received after ``since`` (wait for one)."""
    ok = nodes['obs'].spin_until(lambda: [m for r, m in nodes['counters'] if r > since], 60.0)
    assert ok, nodes['procs']['learner'].log()[-3000:]
    return fn.counters(nodes['counters'][-1][1])


def chunk(seq, t=4, start=False, seed=0, **changes):
    """Return a valid Pendulum Trajectory message (with ``changes`` applied to its fields)."""
    rng = np.random.default_rng(seed)
    msg = conv.trajectory_msg(conv.TrajectoryChunk(
        '/test_actor', 0, seq, 1, rng.normal(size=(t + 1, 3)), rng.uniform(-1, 1, (t, 1)),
        rng.normal(size=t), np.ones(t), -np.ones(t), start, False, False))
    for name, value in changes.items():
        setattr(msg, name, value)
    return msg


def send_and_expect(nodes, msg, log_text):
    """Publish ``msg``; wait for ``log_text`` in the learner's log; return counters after."""
    learner = nodes['procs']['learner']
    before_log = learner.log().count(log_text)
    nodes['traj_pub'].publish(msg)
    assert nodes['obs'].spin_until(lambda: learner.log().count(log_text) > before_log, 30.0), \
        f'no {log_text!r} in the learner log:\n' + learner.log()[-3000:]
    return last_counters(nodes, time.monotonic() + 0.05)


def test_bad_trajectories_are_rejected_with_a_reason_and_not_stored(nodes):
    obs, learner = nodes['obs'], nodes['procs']['learner']
    assert obs.wait_subscribers(nodes['traj_pub'], 1, START_TIMEOUT_S, learner), learner.log()
    first = chunk(0, start=True)
    nodes['traj_pub'].publish(first)
    assert obs.spin_until(
        lambda: [1 for _, m in nodes['counters'] if fn.counters(m)['chunks_stored'] == 1],
        60.0), learner.log()[-3000:]
    good = last_counters(nodes, time.monotonic())
    assert good['replay_size'] == 4 and good['chunks_rejected'] == 0

    nan_obs = np.asarray(first.observations).copy()
    nan_obs[2] = math.nan
    inf_rewards = np.asarray(first.rewards).copy()
    inf_rewards[0] = math.inf
    cases = [
        (chunk(1, observations=nan_obs), 'trajectory observations contains NaN or inf'),
        (chunk(1, rewards=inf_rewards), 'trajectory rewards contains NaN or inf'),
        (chunk(1, actions=np.zeros(3, np.float32)), 'trajectory actions has 3 values'),
        (chunk(1, obs_dim=5), 'trajectory dims obs 5 act 1, expected obs 3 act 1'),
        (chunk(1, num_steps=0), 'num_steps < 1'),
        (chunk(1, discounts=np.full(4, 0.5, np.float32)), 'discounts must be 0 or 1'),
        (first, 'sequence number 0 duplicated or out of order'),           # duplicate
    ]
    rejected = 0
    for msg, text in cases:
        after = send_and_expect(nodes, msg, text)
        rejected += 1
        assert after['chunks_stored'] == 1 and after['replay_size'] == 4, (text, after)
        assert after['chunks_rejected'] == rejected, (text, after)

    # Out of order: 2 arrives (1 is lost: stored, new stream), then the late 1 is refused.
    after = send_and_expect(nodes, chunk(2, seed=2), '1 chunk(s) lost')
    assert after['chunks_stored'] == 2 and after['chunks_lost'] == 1
    assert after['replay_size'] == 8
    time.sleep(5.2)          # the same kind of reason (the duplicate) is logged once per 5 s
    after = send_and_expect(nodes, chunk(1, seed=1),
                            'sequence number 1 duplicated or out of order (expected 3)')
    assert after['chunks_stored'] == 2 and after['replay_size'] == 8
    assert after['chunks_rejected'] == rejected + 1
    assert learner.alive() and 'Traceback' not in learner.log()


def weights(version, **changes):
    """Return policy weights for the actor's task with ``changes`` applied."""
    flat = flatten_state(Policy(3, 1, NET, seed=version).net.state_dict())
    msg = conv.weights_msg(flat, version, version * 10, conv.network_json(3, 1, NET))
    for name, value in changes.items():
        setattr(msg, name, value)
    return msg


def actor_version(nodes):
    """Return the actor's policy version through GetAction (fail if it does not answer)."""
    r = fn.get_action(nodes['obs'], nodes['ns'], [0.1, 0.2, 0.3])
    assert r is not None, nodes['procs']['actor'].log()[-3000:]
    return r.policy_version if r.success else None


def test_bad_policy_weights_are_rejected_and_the_actor_keeps_its_policy(nodes):
    obs, actor = nodes['obs'], nodes['procs']['actor']
    pub = nodes['weights_pub']
    assert obs.wait_subscribers(pub, 1, START_TIMEOUT_S, actor), actor.log()
    pub.publish(weights(1))
    assert obs.spin_until(lambda: actor_version(nodes) == 1, 60.0), actor.log()[-3000:]

    good = weights(2)
    bad_checksum = weights(2, checksum=(good.checksum + 1) % 2 ** 32)
    shifted = weights(3)
    shifted.offsets = [0] + [o + 1 for o in list(shifted.offsets)[1:]]
    other_task = weights(4, config_json=conv.network_json(5, 1, NET))
    renamed = weights(5, names=['x' + n for n in good.names])
    cases = [(bad_checksum, 'checksum mismatch'), (shifted, 'offset'),
             (other_task, 'weights are for obs 5 act 1'), (renamed, 'layout names differ'),
             (weights(1), 'version 1 is not newer than 1')]
    for i, (msg, text) in enumerate(cases):
        if i:
            time.sleep(5.2)        # the actor logs one 'weights rejected' warning per 5 s
        count = actor.log().count('policy weights rejected')
        pub.publish(msg)
        assert obs.spin_until(lambda: actor.log().count('policy weights rejected') > count,
                              30.0), f'{text}: nothing logged\n' + actor.log()[-3000:]
        assert text in actor.log().split('policy weights rejected')[-1], actor.log()[-2000:]
        assert actor_version(nodes) == 1, text
    pub.publish(weights(6))                                  # and a good one still works
    assert obs.spin_until(lambda: actor_version(nodes) == 6, 60.0), actor.log()[-3000:]
    assert actor.alive() and 'Traceback' not in actor.log()


def test_get_action_with_bad_observations_answers_false_and_keeps_serving(nodes):
    """Extends test_ros_pipeline (wrong size, NaN) with inf, too long, empty-before-sensors."""
    obs, ns, actor = nodes['obs'], nodes['ns'], nodes['procs']['actor']
    assert obs.spin_until(lambda: actor_version(nodes) is not None, 60.0), actor.log()
    for bad, text in (([0.1, math.inf, 0.3], 'NaN or inf'), ([-math.inf] * 3, 'NaN or inf'),
                      ([0.1] * 7, 'shape'), ([], 'no sensor data yet')):
        r = fn.get_action(obs, ns, bad)
        assert r is not None and not r.success, (bad, r)
        assert text in r.message and list(r.action) == [], (bad, r.message)
    assert fn.get_action(obs, ns, [0.1, 0.2, 0.3]).success
    assert actor.alive()


def _value(kind, value):
    v = ParameterValue(type=kind)
    field = {ParameterType.PARAMETER_INTEGER: 'integer_value',
             ParameterType.PARAMETER_DOUBLE: 'double_value',
             ParameterType.PARAMETER_STRING: 'string_value'}[kind]
    setattr(v, field, value)
    return v


@pytest.mark.parametrize('node, name, kind, value, reason', [
    ('learner', 'replay.batch_size', ParameterType.PARAMETER_INTEGER, 0, 'batch_size'),
    ('learner', 'mpo.epsilon', ParameterType.PARAMETER_DOUBLE, -1.0, 'epsilon'),
    ('learner', 'checkpoint_keep', ParameterType.PARAMETER_INTEGER, 0, 'checkpoint_keep'),
    ('actor', 'chunk_length', ParameterType.PARAMETER_INTEGER, 0, 'chunk_length'),
    ('actor', 'network.covariance', ParameterType.PARAMETER_STRING, 'spherical', 'covariance'),
])
def test_runtime_parameter_change_is_rejected_and_the_node_keeps_running(
        nodes, node, name, kind, value, reason):
    obs, ns = nodes['obs'], nodes['ns']
    get = GetParameters.Request(names=[name])
    before = obs.call(GetParameters, f'{ns}/{node}/get_parameters', get, START_TIMEOUT_S)
    assert before is not None, nodes['procs'][node].log()[-3000:]
    request = SetParameters.Request(parameters=[Parameter(name=name,
                                                          value=_value(kind, value))])
    result = obs.call(SetParameters, f'{ns}/{node}/set_parameters', request, 30.0)
    assert result is not None and len(result.results) == 1
    assert not result.results[0].successful
    assert reason in result.results[0].reason, result.results[0].reason
    after = obs.call(GetParameters, f'{ns}/{node}/get_parameters', get, 30.0)
    assert after.values == before.values
    assert nodes['procs'][node].alive()


@pytest.mark.parametrize('executable, args, name', [
    ('learner', ['-p', 'checkpoint_keep:=0'], 'checkpoint_keep'),
    ('learner', ['-p', 'task:=gym:NoSuchTask-v0'], 'task'),
    ('learner', ['-p', 'replay.batch_size:=0'], 'replay.batch_size'),
    ('bridge', ['-p', 'realtime_factor:=0.0'], 'realtime_factor'),
    ('actor', ['-p', 'timing_period_s:=-1.0'], 'timing_period_s'),
    ('learner', ['-p', 'device:=banana'], 'device'),
    pytest.param('learner', ['-p', 'device:=cuda'], 'device', marks=pytest.mark.skipif(
        __import__('torch').cuda.is_available(), reason='this machine has CUDA')),
    ('learner', ['-p', 'out_dir:=/dev/null/run'], 'out_dir'),
])
def test_invalid_parameter_at_start_exits_2_naming_it(executable, args, name, tmp_path):
    """Extends test_ros_parameters (bridge mode, actor chunk_length) to more of each node."""
    exe = os.path.join(os.path.dirname(sys.executable), executable)
    proc = subprocess.run([exe, '--ros-args', '-r', '__ns:=/s' + uuid.uuid4().hex[:8],
                           '-p', f'out_dir:={tmp_path}', *args] if executable == 'learner'
                          else [exe, '--ros-args', *args], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert f"invalid parameter '{name}'" in proc.stderr, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if executable in line]) == 1


ARM_TASK = 'manip:reach_site_features'
ARM_JOINTS = [f'jaco_arm/joint_{i}' for i in range(1, 7)] + [
    f'jaco_arm/jaco_hand/finger_{i}' for i in range(1, 4)]


@pytest.fixture(scope='module')
def arm_actor(tmp_path_factory):
    """Start a lone sensor-path actor (task definition reach); the test plays the driver."""
    log_dir = str(tmp_path_factory.mktemp('fault_joint_states'))
    ns = '/j' + uuid.uuid4().hex[:8]
    cmd = fn.node_commands(ARM_TASK, ns, [
        'actor.task_definition:=reach', 'actor.wait_for_weights:=false',
        'actor.throttle:=false', 'actor.eval_every:=0', 'actor.safety.sensor_timeout_s:=0.0',
        *('actor.' + a for a in NET_ARGS)])['actor']
    actor = fn.NodeProcess('actor', cmd, log_dir)
    obs = fn.Observer('fault_joint_states_observer')
    state = {'ns': ns, 'obs': obs, 'actor': actor,
             'commands': obs.record(Float64MultiArray,
                                    ns + '/joint_velocity_controller/commands'),
             'joints': obs.publisher(JointState, ns + '/joint_states', common.RELIABLE),
             'ee': obs.publisher(PoseStamped, ns + '/ee_pose', common.RELIABLE),
             'target': obs.publisher(PointStamped, ns + '/target', common.RELIABLE)}
    try:
        actor.start()
        yield state
    finally:
        obs.close()
        actor.stop()


def _sensors(arm, sec, names=None, position=None, velocity=None):
    """Publish target, ee_pose and joint_states stamped ``sec`` (one sensor frame)."""
    names = ARM_JOINTS if names is None else names
    js = conv.joint_state_msg(names, np.zeros(len(names)) if position is None else position,
                              np.zeros(len(names)) if velocity is None else velocity)
    ee = conv.pose_msg(np.array([0.1, 0.2, 0.3]), np.array([1.0, 0.0, 0.0, 0.0]), 'world')
    target = conv.point_msg(np.array([0.2, 0.2, 0.2]), 'world')
    for msg in (js, ee, target):
        msg.header.stamp.sec = sec
    arm['target'].publish(target)
    arm['ee'].publish(ee)
    arm['joints'].publish(js)


def test_bad_joint_states_are_rejected_and_nothing_is_commanded(arm_actor):
    obs, actor, arm = arm_actor['obs'], arm_actor['actor'], arm_actor
    for pub in ('joints', 'ee', 'target'):
        assert obs.wait_subscribers(arm[pub], 1, START_TIMEOUT_S, actor), actor.log()[-3000:]
    t = time.monotonic()
    sec = 100
    assert obs.spin_until(lambda: [m for r, m in arm['commands'] if r > t] or
                          _sensors(arm, sec), 60.0), 'no command for a valid frame\n' + \
        actor.log()[-3000:]
    nan_position = np.zeros(9)
    nan_position[3] = math.nan
    inf_velocity = np.zeros(9)
    inf_velocity[0] = -math.inf
    cases = [
        ({'position': nan_position}, 'joint_states.position contains NaN or inf'),
        ({'velocity': inf_velocity}, 'joint_states.velocity contains NaN or inf'),
        ({'position': np.zeros(8)}, '9 names but 8 position values'),
        ({'names': ARM_JOINTS + ['mystery_joint']}, "unknown joints ['mystery_joint']"),
        ({'names': ARM_JOINTS[:-1]}, "missing joints ['jaco_arm/jaco_hand/finger_3']"),
        ({'names': ARM_JOINTS[:8] + ARM_JOINTS[:1]}, 'duplicated joint names'),
    ]
    for i, (change, text) in enumerate(cases):
        if i:
            time.sleep(5.2)           # the actor logs one 'joint state rejected' per 5 s
        obs.spin_for(0.3)
        count = actor.log().count('joint state rejected')
        t, sec = time.monotonic(), sec + 1
        if 'names' in change:
            n = len(change['names'])
            change = dict(change, position=np.zeros(n), velocity=np.zeros(n))
        _sensors(arm, sec, **change)
        assert obs.spin_until(lambda: actor.log().count('joint state rejected') > count,
                              30.0), f'{text}: nothing logged\n' + actor.log()[-3000:]
        assert text in actor.log().split('joint state rejected')[-1], actor.log()[-2000:]
        obs.spin_for(0.5)
        assert not [m for r, m in arm['commands'] if r > t], f'{text}: a command was sent'
    t, sec = time.monotonic(), sec + 1
    _sensors(arm, sec)                                   # a valid frame is still acted on
    assert obs.spin_until(lambda: [m for r, m in arm['commands'] if r > t], 30.0)
    assert actor.alive() and 'Traceback' not in actor.log()


# ---------------------------------------------------------------- hostile but well-formed input
def progress_rows(nodes):
    """Return the data rows of the learner's progress.csv."""
    with open(os.path.join(nodes['out'], 'progress.csv')) as f:
        return f.read().splitlines()[1:]


def test_hostile_values_to_the_learner_are_rejected_and_nothing_is_stored(nodes):
    """Finite but absurd observations / rewards, a long actor id, absurd evaluations."""
    obs, learner = nodes['obs'], nodes['procs']['learner']
    assert obs.wait_subscribers(nodes['traj_pub'], 1, START_TIMEOUT_S, learner), learner.log()
    before = last_counters(nodes, time.monotonic())
    big_obs = np.zeros((5, 3), np.float32)
    big_obs[1, 2] = 1e30
    cases = [
        (chunk(0, actor_id='/hostile', observations=big_obs.ravel()),
         'trajectory observations has |value| 1e+30 above the limit 1e+06'),
        (chunk(0, actor_id='/hostile', rewards=np.array([0, 1e30, 0, 0], np.float32)),
         'trajectory rewards has |value| 1e+30 above the limit'),
        (chunk(0, actor_id='x' * 300), 'actor_id has 300 characters'),
    ]
    for i, (msg, text) in enumerate(cases):
        after = send_and_expect(nodes, msg, text)
        assert after['chunks_rejected'] == before['chunks_rejected'] + i + 1, (text, after)
        assert after['replay_size'] == before['replay_size'], (text, after)
        assert after['chunks_stored'] == before['chunks_stored'], (text, after)

    pub = obs.publisher(Float64MultiArray, nodes['ns'] + '/evaluation', common.RELIABLE)
    assert obs.wait_subscribers(pub, 1, 60.0, learner)
    rows = progress_rows(nodes)
    evals = [([2.0 ** 63, -100.0, 1.0, 5], 'evaluation env_steps 9.223372036854776e+18 is not'),
             ([1000, 1e308, 1.0, 5], 'evaluation return 1e+308'),
             ([1000, -100.0, -1.0, 5], 'std must be >= 0'),
             ([1000, -100.0, 1.0, 0.5], 'evaluation episodes 0.5 is not an integer')]
    for i, (values, text) in enumerate(evals):
        count = learner.log().count(text)
        pub.publish(conv.vector_msg(values))
        assert obs.spin_until(lambda: learner.log().count(text) > count, 30.0), \
            f'no {text!r} in the learner log:\n' + learner.log()[-3000:]
        after = last_counters(nodes, time.monotonic() + 0.05)
        assert after['evaluations_rejected'] == before['evaluations_rejected'] + i + 1
    assert progress_rows(nodes) == rows                  # no bad row reached progress.csv
    pub.publish(conv.vector_msg([1234, -150.0, 3.0, 2]))  # a valid one still does
    assert obs.spin_until(lambda: len(progress_rows(nodes)) == len(rows) + 1, 60.0), \
        learner.log()[-3000:]
    assert progress_rows(nodes)[-1].startswith('1234,')
    assert learner.alive() and 'Traceback' not in learner.log()


def test_a_burst_of_evaluations_is_recorded_but_not_replotted(nodes):
    """300 evaluations froze commands for seconds: the curve is redrawn once per period."""
    obs, learner = nodes['obs'], nodes['procs']['learner']
    pub = obs.publisher(Float64MultiArray, nodes['ns'] + '/evaluation', common.RELIABLE)
    assert obs.wait_subscribers(pub, 1, START_TIMEOUT_S, learner), learner.log()
    png = os.path.join(nodes['out'], 'learning_curve.png')
    rows = len(progress_rows(nodes))
    pub.publish(conv.vector_msg([10, -100.0, 1.0, 1]))
    assert obs.spin_until(lambda: len(progress_rows(nodes)) == rows + 1 and
                          os.path.exists(png), 60.0), learner.log()[-3000:]
    drawn = os.stat(png).st_mtime_ns
    start = time.monotonic()
    for i in range(100):
        pub.publish(conv.vector_msg([20 + i, -100.0 + i, 1.0, 1]))
        if i % 50 == 49:
            obs.spin_for(0.02)
    assert obs.spin_until(lambda: len(progress_rows(nodes)) >= rows + 101, 60.0), \
        (len(progress_rows(nodes)), learner.log()[-3000:])
    assert os.stat(png).st_mtime_ns == drawn            # plot_period_s 3600: not redrawn
    assert time.monotonic() - start < 30.0
    assert learner.alive() and 'Traceback' not in learner.log()


def settled(nodes, quiet=2.0, timeout=90.0):
    """Return the learner's counters once they have not changed for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = last_counters(nodes, time.monotonic())
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    raise AssertionError('the counters kept changing: ' + str(last))


def test_one_peer_cannot_take_the_replay_over(nodes):
    """Too long a chunk, sequence 2^63 on a real id, a flood from one id and from made-up ids."""
    obs, learner, pub = nodes['obs'], nodes['procs']['learner'], nodes['traj_pub']
    assert obs.wait_subscribers(pub, 1, START_TIMEOUT_S, learner), learner.log()
    before = last_counters(nodes, time.monotonic())
    after = send_and_expect(nodes, chunk(0, t=65, actor_id='/long'),
                            'trajectory has 65 steps, more than max_chunk_steps 64')
    assert after['chunks_stored'] == before['chunks_stored']
    # A real actor; a stranger reuses its id with sequence 2^63; the real one goes on.
    pub.publish(chunk(0, start=True, actor_id='/real'))
    assert obs.spin_until(lambda: last_counters(nodes, time.monotonic())['chunks_stored'] ==
                          before['chunks_stored'] + 1, 30.0), learner.log()[-3000:]
    after = send_and_expect(nodes, chunk(2 ** 63, seed=5, actor_id='/real'),
                            'is implausibly far beyond the expected 1')
    assert after['chunks_lost'] == before['chunks_lost']
    stored = after['chunks_stored']
    pub.publish(chunk(1, seed=6, actor_id='/real'))
    assert obs.spin_until(lambda: last_counters(nodes, time.monotonic())['chunks_stored'] ==
                          stored + 1, 30.0), learner.log()[-3000:]
    # One id floods (streams.actor_steps_per_s 100, bursts of 2 s: 200 steps = 50 chunks).
    # Publishing this fast, DDS (keep last 100) may drop some: count what arrived.
    base = last_counters(nodes, time.monotonic())
    for seq in range(200):
        pub.publish(chunk(seq, seed=seq, start=seq == 0, actor_id='/greedy'))
        if seq % 50 == 49:
            obs.spin_for(0.02)
    after = settled(nodes)
    assert after['chunks_stored'] - base['chunks_stored'] <= 75, after
    assert after['chunks_refused'] - base['chunks_refused'] >= 50, after
    assert 'over the rate limit of 100 steps/s per actor' in learner.log()
    # Made-up ids: at most streams.max_actors (16) ids are tracked, the rest is refused.
    base = after
    for i in range(400):
        pub.publish(chunk(0, start=True, seed=i, actor_id=f'/fake_{i}'))
        if i % 50 == 49:
            obs.spin_for(0.02)
    after = settled(nodes)
    assert after['chunks_stored'] - base['chunks_stored'] <= 16, after
    assert after['replay_size'] - base['replay_size'] <= 16 * 4, after
    assert after['chunks_refused'] - base['chunks_refused'] >= 200, after
    assert 'actor ids are tracked (streams.max_actors) and none is idle' in learner.log()
    assert learner.alive() and 'Traceback' not in learner.log()


def ensure_weights(nodes, version):
    """Give the lone actor policy weights of ``version`` and wait until it uses them."""
    obs, actor = nodes['obs'], nodes['procs']['actor']
    assert obs.wait_subscribers(nodes['weights_pub'], 1, START_TIMEOUT_S, actor), actor.log()
    nodes['weights_pub'].publish(weights(version))
    assert obs.spin_until(lambda: actor_version(nodes) == version, 60.0), actor.log()[-3000:]


def with_data(msg, index, value):
    """Set one weight (by flat index) and fix the checksum, as a hostile sender would."""
    data = np.asarray(msg.data, '<f4').copy()
    data[index] = value
    msg.data = data
    msg.checksum = zlib.crc32(data.tobytes())
    return msg


def expect_actor_log(nodes, text, prefix, timeout=30.0):
    """Wait until ``text`` follows the last ``prefix`` in the actor's log."""
    actor = nodes['procs']['actor']
    ok = nodes['obs'].spin_until(lambda: text in actor.log().split(prefix)[-1], timeout)
    assert ok, f'no {text!r} after {prefix!r}:\n' + actor.log()[-3000:]


def test_hostile_policy_weights_are_rejected_and_the_actor_keeps_its_policy(nodes):
    """Empty data with checksum 0, bounded JSON, absurd weights, negative variance."""
    ensure_weights(nodes, 20)
    good = weights(21)
    names = list(good.names)
    m2 = int(good.offsets[names.index('normalizer.m2')])
    empty = weights(22, data=np.zeros(0, np.float32), checksum=0, names=[], ranks=[],
                    shapes=[], offsets=[])
    cases = [
        (empty, 'no weights (empty data)'),
        (weights(23, config_json='[' * 10_000 + ']' * 10_000), 'nested deeper than 8'),
        (weights(24, config_json='{"obs_dim": 1e999, "act_dim": 1, "network": {}}'),
         'number 1e999 is not finite'),
        (weights(25, config_json='{"obs_dim": 3, "act_dim": 1, "network": {"policy_hidden": '
                 '[16, 16], "critic_hidden": [16, 16]}, "x": "' + 'y' * 70_000 + '"}'),
         'at most 65536'),
        (with_data(weights(26), 40, 1e30), 'has |value| 1e+30 above the limit 1e+06'),
        (with_data(weights(27), m2, -1.0), 'normalizer.m2 is negative'),
    ]
    for msg, text in cases:
        nodes['weights_pub'].publish(msg)
        expect_actor_log(nodes, text, 'policy weights rejected')
        assert actor_version(nodes) == 20, text
    ensure_weights(nodes, 28)                                # a good one still works
    assert nodes['procs']['actor'].alive() and 'Traceback' not in nodes['procs']['actor'].log()


def overflowing_weights(version):
    """Return weights finite at a zero observation whose stddev underflows to 0 elsewhere."""
    import torch
    net = NetworkConfig(policy_hidden=(16, 16), critic_hidden=(16, 16), min_std=0.0)
    policy = Policy(3, 1, net, seed=1)
    state = policy.net.state_dict()
    with torch.no_grad():
        for name in ('torso.0.bias', 'torso.1.bias', 'torso.3.bias', 'diag_head.bias'):
            state[name].zero_()
        state['torso.0.weight'].copy_(torch.linspace(-1, 1, 48).reshape(16, 3))
        state['torso.3.weight'].copy_(torch.sign(torch.linspace(-1, 1, 16)).repeat(16, 1))
        state['diag_head.weight'].fill_(-1e6)
    return conv.weights_msg(flatten_state(state), version, 0, conv.network_json(3, 1, net))


def test_get_action_never_answers_nan_with_success(nodes):
    """Weights within every bound whose log-probability is NaN at some observations."""
    obs, ns, actor = nodes['obs'], nodes['ns'], nodes['procs']['actor']
    ensure_weights(nodes, 30)
    nodes['weights_pub'].publish(overflowing_weights(31))
    assert obs.spin_until(lambda: fn.get_action(obs, ns, [0.0, 0.0, 0.0]).policy_version == 31,
                          60.0), actor.log()[-3000:]
    zero = fn.get_action(obs, ns, [0.0, 0.0, 0.0])
    assert zero.success and np.isfinite(zero.log_prob)
    for deterministic in (True, False):
        request = GetAction.Request(observation=[0.1, 0.2, 0.3], deterministic=deterministic)
        r = obs.call(GetAction, ns + '/actor/get_action', request, 30.0)
        assert r is not None and not r.success, r
        assert 'non-finite' in r.message and list(r.action) == [], r.message
    assert actor.alive() and 'Traceback' not in actor.log()


def set_param(nodes, node, name, value):
    """Set one parameter through the node's SetParameters service; return its result."""
    kind = {float: ParameterType.PARAMETER_DOUBLE, int: ParameterType.PARAMETER_INTEGER,
            str: ParameterType.PARAMETER_STRING}.get(type(value))
    v = ParameterValue(type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=value) \
        if isinstance(value, list) else _value(kind, value)
    request = SetParameters.Request(parameters=[Parameter(name=name, value=v)])
    result = nodes['obs'].call(SetParameters, f"{nodes['ns']}/{node}/set_parameters", request,
                               60.0)
    assert result is not None, nodes['procs'][node].log()[-3000:]
    return result.results[0]


def test_runtime_parameters_take_effect_or_are_refused_as_read_only(nodes):
    """safety.max_velocity applies to the next command; read-only ones are refused."""
    obs, ns, actor, learner = nodes['obs'], nodes['ns'], nodes['procs']['actor'], \
        nodes['procs']['learner']
    ensure_weights(nodes, 60)
    commands = obs.record(Float64MultiArray, ns + '/joint_velocity_controller/commands')
    steps = obs.publisher(Float64MultiArray, ns + '/task/step', common.RELIABLE)
    assert obs.wait_subscribers(steps, 1, 60.0, actor)
    obs.spin_for(0.5)
    for name, value in (('safety.e_stop_topic', 'stop_here'), ('eval_every', 7),
                        ('task', 'gym:Hopper-v5')):
        result = set_param(nodes, 'actor', name, value)
        assert not result.successful and 'read-only' in result.reason, (name, result.reason)
    result = set_param(nodes, 'learner', 'publish_every', 3)
    assert not result.successful and 'read-only' in result.reason
    assert set_param(nodes, 'actor', 'safety.max_velocity', [0.01]).successful
    t = time.monotonic()
    for seq in range(1000, 1040):
        steps.publish(step_msg(seq, obs=(0.3, -0.8, 5.0), start=seq == 1000))
        obs.spin_for(0.02)
    assert obs.spin_until(lambda: len([m for r, m in commands if r > t]) >= 40, 30.0), \
        actor.log()[-3000:]                  # every step answered: none left for later tests
    obs.spin_for(0.5)
    sent = np.concatenate([np.asarray(m.data) for r, m in commands if r > t])
    assert np.abs(sent).max() <= 0.01 + 1e-12, sent
    # The learner's input limits too: with limits.eval_return 10 a return of -100 is refused.
    assert set_param(nodes, 'learner', 'limits.eval_return', 10.0).successful
    pub = obs.publisher(Float64MultiArray, ns + '/evaluation', common.RELIABLE)
    assert obs.wait_subscribers(pub, 1, 60.0, learner)
    text = 'evaluation return -100 ± 1 outside the limit 10'
    pub.publish(conv.vector_msg([77, -100.0, 1.0, 1]))
    assert obs.spin_until(lambda: text in learner.log(), 30.0), learner.log()[-3000:]
    assert set_param(nodes, 'learner', 'limits.eval_return', 1e12).successful
    assert actor.alive() and learner.alive()


def step_msg(seq, obs=(0.1, 0.2, 0.3), reward=-1.0, start=False):
    """Return a task/step message for the Pendulum actor."""
    return conv.step_msg(conv.TaskStep(seq, reward, False, False, start, np.asarray(obs)))


def test_hostile_task_steps_and_budgets_neither_crash_nor_stall_the_actor(nodes):
    """Values beyond float32 / the limits, a sequence jump of 1e15 and a step budget of 0."""
    obs, ns, actor = nodes['obs'], nodes['ns'], nodes['procs']['actor']
    ensure_weights(nodes, 70)
    commands = obs.record(Float64MultiArray, ns + '/joint_velocity_controller/commands')
    steps = obs.publisher(Float64MultiArray, ns + '/task/step', common.RELIABLE)
    budget = obs.publisher(Int64, ns + '/learner/step_budget', common.LATCHED)
    assert obs.wait_subscribers(steps, 1, 60.0, actor) and obs.wait_subscribers(budget, 1)
    obs.spin_for(1.0)

    def commanded(msg, timeout=10.0):
        t = time.monotonic()
        steps.publish(msg)
        return obs.spin_until(lambda: [1 for r, _ in commands if r > t], timeout)

    assert commanded(step_msg(0, start=True), 60.0), actor.log()[-3000:]
    quiet = time.monotonic()                 # let answers to earlier tests' steps drain
    obs.spin_until(lambda: time.monotonic() - max([quiet] + [r for r, _ in commands]) > 1.5,
                   30.0)
    flags = step_msg(1)
    flags.data = np.array([1, -1, 0.5, 0, 0, 0.1, 0.2, 0.3])
    cases = [(step_msg(1, obs=(1e39, 0.0, 0.0)), 'task step observation has |value| 1e+39'),
             (step_msg(1, reward=1e30), 'task step reward has |value| 1e+30'),
             (step_msg(2 ** 63), 'is not an integer in [0, 2^53]'),
             (flags, 'must be 0 or 1'),
             (step_msg(10 ** 15), 'ignored: more than max_sequence_jump 1000 after 0')]
    for msg, text in cases:
        count = actor.log().count(text)
        assert not commanded(msg, 1.0), f'{text}: a command was sent'
        assert obs.spin_until(lambda: actor.log().count(text) > count, 30.0), \
            f'no {text!r} in the actor log:\n' + actor.log()[-3000:]
    assert commanded(step_msg(1)), 'the actor stalled after the hostile steps'

    budget.publish(Int64(data=0))
    expect_actor_log(nodes, 'step budget 0 is neither -1 (unlimited) nor positive',
                     'step budget rejected')
    for seq in range(2, 36):          # one chunk (32 steps) sent: a budget of 1 would hold
        assert commanded(step_msg(seq)), f'step {seq}: a budget of 0 was taken'
    budget.publish(Int64(data=1))     # valid but forged: the learner repeats its own budget
    assert commanded(step_msg(36), 20.0), 'a forged budget held the actor'
    assert actor.alive() and 'Traceback' not in actor.log()


def test_hostile_arm_sensor_values_are_rejected(arm_actor):
    """A target at x = 1e39, an end-effector at 1e39 m, a joint at 1e39 rad."""
    obs, actor, arm = arm_actor['obs'], arm_actor['actor'], arm_actor
    for pub in ('joints', 'ee', 'target'):
        assert obs.wait_subscribers(arm[pub], 1, START_TIMEOUT_S, actor), actor.log()[-3000:]
    far = conv.point_msg(np.array([1e39, 0.0, 0.0]), 'world')
    far_ee = conv.pose_msg(np.array([0.0, 1e39, 0.0]), np.array([1.0, 0, 0, 0]), 'world')
    position = np.zeros(9)
    position[2] = 1e39
    for publish, text in (
            (lambda s: arm['target'].publish(far), 'target has |value| 1e+39 above the limit'),
            (lambda s: arm['ee'].publish(far_ee), 'ee_pose has |value| 1e+39 above the limit'),
            (lambda s: _sensors(arm, s, position=position),
             'joint_states.position has |value| 1e+39')):
        t, sec = time.monotonic(), 500 + len(text)
        count = actor.log().count(text)
        publish(sec)
        assert obs.spin_until(lambda: actor.log().count(text) > count, 30.0), \
            f'no {text!r}:\n' + actor.log()[-3000:]
        assert actor.alive()
    t = time.monotonic()
    _sensors(arm, 900)                                   # a valid frame is still acted on
    assert obs.spin_until(lambda: [m for r, m in arm['commands'] if r > t], 30.0)
    assert actor.alive() and 'Traceback' not in actor.log()
