"""Message <-> numpy conversions (mpo_ros.ros.conversions), without spinning any node."""

import math

import numpy as np
import pytest

conv = pytest.importorskip('mpo_ros.ros.conversions')
from mpo_ros.core.config import NetworkConfig  # noqa: E402
from mpo_ros.core.policy import flatten_state, Policy  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

pytestmark = pytest.mark.ros

JOINTS = ('shoulder', 'elbow', 'wrist')


def joint_state(names, positions):
    msg = JointState()
    msg.name = list(names)
    msg.position = [float(p) for p in positions]
    return msg


def test_joint_order_shuffled_lands_on_the_right_joints():
    msg = joint_state(['wrist', 'shoulder', 'elbow'], [3.0, 1.0, 2.0])
    np.testing.assert_array_equal(conv.joint_vector(msg, JOINTS), [1.0, 2.0, 3.0])


@pytest.mark.parametrize('names, values, reason', [
    (['shoulder', 'elbow', 'hip'], [1, 2, 3], 'unknown joints'),
    (['shoulder', 'elbow'], [1, 2], 'missing joints'),
    (['shoulder', 'elbow', 'wrist'], [1, math.nan, 3], 'NaN'),
    (['shoulder', 'elbow', 'wrist'], [1, 2], '3 names but 2'),
    (['shoulder', 'shoulder', 'wrist'], [1, 2, 3], 'duplicated'),
])
def test_bad_joint_states_are_rejected(names, values, reason):
    with pytest.raises(ValueError, match=reason):
        conv.joint_vector(joint_state(names, values), JOINTS)


def test_command_vector_roundtrip_and_rejections():
    msg = conv.vector_msg(np.array([0.5, -1.5]))
    np.testing.assert_array_equal(conv.vector_from_msg(msg, 2), [0.5, -1.5])
    with pytest.raises(ValueError, match='expected 3'):
        conv.vector_from_msg(msg, 3)
    with pytest.raises(ValueError, match='NaN'):
        conv.vector_from_msg(conv.vector_msg(np.array([0.0, np.inf])), 2)


def test_task_step_roundtrip():
    step = conv.TaskStep(7, -1.25, True, False, False, np.array([1, 2, 3], np.float32))
    got = conv.step_from_msg(conv.step_msg(step), 3)
    assert got[:5] == step[:5]
    np.testing.assert_array_equal(got.observation, step.observation)
    with pytest.raises(ValueError, match='expected'):
        conv.step_from_msg(conv.step_msg(step), 4)


def chunk(t=4, obs_dim=3, act_dim=2, end=True):
    rng = np.random.default_rng(0)
    disc = np.ones(t, np.float32)
    disc[-1] = 0.0 if end else 1.0
    return conv.TrajectoryChunk('actor_a', 3, 11, 5, rng.normal(size=(t + 1, obs_dim)),
                                rng.normal(size=(t, act_dim)), rng.normal(size=t), disc,
                                rng.normal(size=t), True, end, False)


def test_trajectory_roundtrip():
    c = chunk()
    got = conv.trajectory_from_msg(conv.trajectory_msg(c), 3, 2)
    assert got.actor_id == 'actor_a' and got.sequence_number == 11 and got.episode_end
    for name in ('observations', 'actions', 'rewards', 'discounts', 'log_probs'):
        np.testing.assert_array_equal(getattr(got, name),
                                      np.asarray(getattr(c, name), np.float32))


def test_trajectory_rejections():
    msg = conv.trajectory_msg(chunk())
    with pytest.raises(ValueError, match='dims'):
        conv.trajectory_from_msg(msg, 4, 2)
    short = conv.trajectory_msg(chunk())
    short.rewards = short.rewards[:-1]
    with pytest.raises(ValueError, match='rewards has 3'):
        conv.trajectory_from_msg(short, 3, 2)
    bad = conv.trajectory_msg(chunk())
    obs = np.asarray(bad.observations)
    obs[2] = np.nan
    bad.observations = obs
    with pytest.raises(ValueError, match='NaN'):
        conv.trajectory_from_msg(bad, 3, 2)
    no_end = conv.trajectory_msg(chunk())
    no_end.episode_end = False
    with pytest.raises(ValueError, match='terminal step without episode_end'):
        conv.trajectory_from_msg(no_end, 3, 2)


def test_policy_weights_roundtrip_into_a_policy():
    net = NetworkConfig(policy_hidden=(8, 8), critic_hidden=(8,))
    source = Policy(3, 2, net, seed=1)
    flat = flatten_state(source.net.state_dict())
    msg = conv.weights_msg(flat, 4, 40, conv.network_json(3, 2, net))
    assert list(msg.offsets)[0] == 0 and sum(msg.ranks) == len(msg.shapes)
    got = conv.weights_from_msg(msg)
    obs_dim, act_dim, net2 = conv.network_from_json(msg.config_json)
    assert (obs_dim, act_dim, net2) == (3, 2, net)
    target = Policy(3, 2, net2, seed=2)
    target.load_flat(got, msg.version)
    obs = np.array([0.1, 0.2, 0.3], np.float32)
    np.testing.assert_allclose(target.act(obs, True).mean, source.act(obs, True).mean)
    assert target.version == 4


def test_policy_weights_defects_are_rejected():
    net = NetworkConfig(policy_hidden=(8,), critic_hidden=(8,))
    flat = flatten_state(Policy(3, 2, net).net.state_dict())
    msg = conv.weights_msg(flat, 1, 1, conv.network_json(3, 2, net))
    corrupt = conv.weights_msg(flat, 1, 1, msg.config_json)
    data = np.asarray(corrupt.data).copy()
    data[0] += 1.0
    corrupt.data = data
    with pytest.raises(ValueError, match='checksum'):
        conv.weights_from_msg(corrupt)
    layout = conv.weights_msg(flat, 1, 1, msg.config_json)
    layout.offsets = [0] + [o + 1 for o in list(layout.offsets)[1:]]
    with pytest.raises(ValueError, match='offset'):
        conv.weights_from_msg(layout)
    with pytest.raises(ValueError, match='config_json'):
        conv.network_from_json('{"obs_dim": 3}')
    with pytest.raises(ValueError, match='layout names differ'):
        Policy(3, 2, NetworkConfig(policy_hidden=(8, 8))).load_flat(
            conv.weights_from_msg(msg), 1)
