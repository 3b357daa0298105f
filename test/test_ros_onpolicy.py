"""
An on-policy learner (TRPO) through a real learner process: only its own policy's steps count.

A lone learner with ``algorithm:=trpo`` and a batch of 8 steps gets Trajectory chunks stamped
with policy versions: chunks of another version are dropped and counted (``chunks_stale``)
and raise the step budget by their steps; chunks of the current version fill the batch, whose
completion gives one update and a new published policy version, after which the old version's
chunks are stale in turn.
"""

import time
import uuid

import fault_nodes as fn
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from mpo_ros.ros import common  # noqa: E402
from mpo_ros.ros import conversions as conv  # noqa: E402
from mpo_ros_interfaces.msg import PolicyWeights, Trajectory  # noqa: E402
from std_msgs.msg import Float64MultiArray, Int64  # noqa: E402

pytestmark = pytest.mark.ros

TASK = 'gym:Pendulum-v1'                   # obs 3, act 1


def chunk(seq, version, t=4, seed=0):
    """Return a valid Pendulum Trajectory of ``t`` steps acted by policy ``version``."""
    rng = np.random.default_rng(seed)
    return conv.trajectory_msg(conv.TrajectoryChunk(
        '/test_actor', 0, seq, version, rng.normal(size=(t + 1, 3)),
        rng.uniform(-1, 1, (t, 1)), rng.normal(size=t), np.ones(t), -np.ones(t), seq == 0,
        False, False))


def test_stale_chunks_are_dropped_and_a_full_batch_updates(tmp_path):
    ns = '/op' + uuid.uuid4().hex[:8]
    cmds = fn.node_commands(TASK, ns, [
        f'learner.out_dir:={tmp_path}/run', 'learner.algorithm:=trpo',
        'learner.trpo.batch_size:=8', 'learner.stats_period_s:=0.3', 'learner.resume:=false',
        'learner.network.policy_hidden:=[16,16]', 'learner.network.critic_hidden:=[16,16]'])
    learner = fn.NodeProcess('learner', cmds['learner'], str(tmp_path))
    obs = fn.Observer('onpolicy_observer')
    counters = obs.record(Float64MultiArray, ns + '/learner/counters')
    budgets = obs.record(Int64, ns + '/learner/step_budget', common.LATCHED)
    weights = obs.record(PolicyWeights, ns + '/learner/policy_weights', common.LATCHED)
    pub = obs.publisher(Trajectory, ns + '/trajectories', common.RELIABLE)

    def latest(pred, timeout=60.0):
        """Wait for counters (received from now on) that satisfy ``pred``; return them."""
        since = time.monotonic()
        found = []

        def check():
            found[:] = [fn.counters(m) for r, m in counters if r > since
                        and pred(fn.counters(m))]
            return found
        assert obs.spin_until(check, timeout), learner.log()[-3000:]
        return found[-1]

    try:
        learner.start()
        assert obs.wait_subscribers(pub, 1, 240.0, learner), learner.log()
        assert obs.spin_until(lambda: budgets and weights, 60.0), learner.log()[-3000:]
        assert budgets[-1][1].data == 8 and weights[-1][1].version == 0
        pub.publish(chunk(0, version=3))                      # not the current version 0
        c = latest(lambda c: c['chunks_stale'] == 1)
        assert c['chunks_stored'] == 0 and c['replay_size'] == 0
        assert obs.spin_until(lambda: budgets[-1][1].data == 12, 30.0)   # 4 stale steps
        pub.publish(chunk(1, version=0))
        c = latest(lambda c: c['chunks_stored'] == 1)
        assert c['replay_size'] == 4 and c['learner_step'] == 0
        pub.publish(chunk(2, version=0, seed=1))              # the batch of 8 is complete
        c = latest(lambda c: c['learner_step'] == 1)
        assert c['policy_version'] == 1 and c['replay_size'] == 0
        assert obs.spin_until(lambda: weights[-1][1].version == 1, 30.0)
        assert obs.spin_until(lambda: budgets[-1][1].data == 12 + 8, 30.0)
        pub.publish(chunk(3, version=0, seed=2))              # version 0 is stale now
        c = latest(lambda c: c['chunks_stale'] == 2)
        assert c['chunks_stored'] == 2 and c['replay_size'] == 0 and learner.alive()
    finally:
        obs.close()
        learner.stop()
