"""
Processes really killed: learner ``kill -9`` and resume, actor killed, bridge killed, SIGTERM.

One pipeline (InvertedPendulum-v5, whose joint_states carry the held command as effort) runs
for the module as three separate node processes on this run's ROS domain, so one can die
while the others keep running (the launcher would stop them all). The bridge runs in
realtime mode (2x real time, 50 steps/s), the way a robot runs: it steps whether or not
anybody commands it, and zeroes the command ``command_timeout_s`` after the last one. The
actor therefore runs with ``throttle:=false`` (the learner's step budget is for lockstep
bridges; with a dead learner a throttled actor would rightly hold still, which would hide
whether it can act on its last policy). Tests run in file order and each leaves all three
nodes running.
"""

import math
import os
import signal
import time
import uuid

import fault_nodes as fn
import pytest

rclpy = pytest.importorskip('rclpy')
from mpo_ros.core import checkpoint  # noqa: E402
from mpo_ros_interfaces.msg import LearnerStats  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

pytestmark = pytest.mark.ros

TASK = 'gym:InvertedPendulum-v5'
OBS = [0.0, 0.01, 0.0, 0.0]
COMMAND_TIMEOUT_S = 0.5
CHECKPOINT_EVERY = 20
START_TIMEOUT_S = 240.0


def _actor_has_watchdog():
    """Whether the actor declares the stale-sensor watchdog parameters."""
    import dataclasses
    try:
        from mpo_ros.robot import arm
        return 'sensor_timeout_s' in {f.name for f in dataclasses.fields(arm.SafetyConfig)}
    except (ImportError, AttributeError):
        return False


HAS_WATCHDOG = _actor_has_watchdog()


def overrides(out_dir):
    """Return the fault pipeline's parameters (small networks, frequent checkpoints)."""
    return [
        'bridge.mode:=realtime', 'bridge.realtime_factor:=2.0',
        f'bridge.command_timeout_s:={COMMAND_TIMEOUT_S}',
        'actor.throttle:=false', 'actor.eval_every:=0', 'actor.chunk_length:=16',
        'learner.replay.min_size:=100', 'learner.replay.batch_size:=16',
        'learner.network.policy_hidden:=[32,32]', 'learner.network.critic_hidden:=[32,32]',
        'learner.mpo.num_action_samples:=8', 'learner.publish_every:=5',
        f'learner.checkpoint_every_updates:={CHECKPOINT_EVERY}', 'learner.checkpoint_keep:=3',
        'learner.stats_period_s:=0.5', 'learner.max_update_lag:=0.0',
        f'learner.out_dir:={out_dir}',
        *(['actor.safety.sensor_timeout_s:=0.5', 'actor.safety.timeout_action:=zero']
          if HAS_WATCHDOG else [])]


@pytest.fixture(scope='module')
def pipe(tmp_path_factory):
    """Start bridge, actor and learner as separate processes, plus an observer."""
    log_dir = str(tmp_path_factory.mktemp('fault_kill'))
    ns = '/k' + uuid.uuid4().hex[:8]
    out_dir = os.path.join(log_dir, 'run')
    cmds = fn.node_commands(TASK, ns, overrides(out_dir))
    nodes = {name: fn.NodeProcess(name, cmd, log_dir) for name, cmd in cmds.items()}
    obs = fn.Observer('fault_kill_observer')
    state = {'ns': ns, 'nodes': nodes, 'obs': obs, 'out_dir': out_dir,
             'ckpt_dir': os.path.join(out_dir, 'checkpoints'),
             'stats': obs.record(LearnerStats, ns + '/learner/stats'),
             'counters': obs.record(Float64MultiArray, ns + '/learner/counters'),
             'commands': obs.record(Float64MultiArray,
                                    ns + '/joint_velocity_controller/commands'),
             'joints': obs.record(JointState, ns + '/joint_states')}
    try:
        for node in nodes.values():
            node.start()
        yield state
    finally:
        obs.close()
        for node in nodes.values():
            node.stop()


def logs(pipe):
    """Return all node output, for failure messages."""
    return '\n'.join(n.all_logs() for n in pipe['nodes'].values())


def stats_since(pipe, t):
    """Return the LearnerStats received after monotonic time ``t``."""
    return [m for r, m in pipe['stats'] if r > t]


def wait_training(pipe, min_updates, since=0.0, timeout=START_TIMEOUT_S):
    """Wait for LearnerStats (received after ``since``) with ``min_updates`` updates."""
    ok = pipe['obs'].spin_until(
        lambda: any(m.learner_step >= min_updates for m in stats_since(pipe, since)), timeout)
    if not ok:
        pytest.fail(f'learner did not reach {min_updates} updates\n{logs(pipe)}')


def test_learner_kill_9_resumes_from_its_checkpoint(pipe):
    obs, nodes, ns = pipe['obs'], pipe['nodes'], pipe['ns']
    wait_training(pipe, 3 * CHECKPOINT_EVERY)
    assert len(checkpoint.list_checkpoints(pipe['ckpt_dir'])) >= 2
    before = fn.get_action(obs, ns, OBS)
    assert before is not None and before.success, logs(pipe)
    assert before.policy_version > 0

    killed_at = time.monotonic()
    assert nodes['learner'].kill(signal.SIGKILL) == -signal.SIGKILL
    obs.spin_for(4.0)
    # The actor kept acting on its last policy while the learner was dead.
    commands = [m for r, m in pipe['commands'] if r > killed_at + 0.5]
    assert len(commands) >= 40, f'{len(commands)} commands in 3.5 s\n{logs(pipe)}'
    assert nodes['actor'].alive() and nodes['bridge'].alive()
    during = fn.get_action(obs, ns, OBS)
    assert during.success and during.policy_version == before.policy_version
    assert not stats_since(pipe, killed_at + 1.0)                 # really dead

    path, ckpt = checkpoint.load_latest(pipe['ckpt_dir'])
    saved_updates = ckpt['learner']['num_steps']
    saved_replay = ckpt['replay']['meta']['size']
    assert saved_updates >= 3 * CHECKPOINT_EVERY and saved_replay >= 100
    assert not ckpt['clean_shutdown']

    restarted_at = time.monotonic()
    nodes['learner'].start()
    assert obs.spin_until(lambda: stats_since(pipe, restarted_at), START_TIMEOUT_S), logs(pipe)
    first = stats_since(pipe, restarted_at)[0]
    assert first.learner_step >= saved_updates, (first.learner_step, saved_updates)
    assert first.replay_size >= saved_replay, (first.replay_size, saved_replay)
    assert first.env_steps >= ckpt['env_steps']
    assert f'resumed from {path}' in nodes['learner'].log()
    # The resumed learner's versions are above anything the killed one published.
    assert first.policy_version > before.policy_version
    after = None

    def newer_policy():
        nonlocal after
        after = fn.get_action(obs, ns, OBS, timeout=10.0)
        return after is not None and after.success and \
            after.policy_version > before.policy_version

    assert obs.spin_until(newer_policy, 120.0), (before.policy_version, logs(pipe))
    wait_training(pipe, first.learner_step + 2 * CHECKPOINT_EVERY, since=restarted_at)
    grown = stats_since(pipe, restarted_at)[-1]
    assert grown.replay_size > first.replay_size               # new data is stored


def test_actor_killed_bridge_holds_a_zero_command_then_training_goes_on(pipe):
    obs, nodes = pipe['obs'], pipe['nodes']
    t0 = time.monotonic()
    assert obs.spin_until(
        lambda: any(max(abs(e) for e in m.effort) > 1e-6 for r, m in pipe['joints'] if r > t0),
        60.0), 'the actor never commanded anything non-zero\n' + logs(pipe)
    killed_at = time.monotonic()
    nodes['actor'].kill(signal.SIGKILL)
    obs.spin_for(3.0)
    late = [m for r, m in pipe['joints'] if r > killed_at + COMMAND_TIMEOUT_S + 0.5]
    assert len(late) >= 20, 'the bridge stopped publishing\n' + logs(pipe)
    assert all(list(m.effort) == [0.0] for m in late), [list(m.effort) for m in late][:5]
    assert nodes['bridge'].alive() and nodes['learner'].alive()
    assert 'Traceback' not in nodes['bridge'].log()

    stored = stats_since(pipe, killed_at + 1.5)[-1].replay_size
    rejected = fn.counters(pipe['counters'][-1][1])['chunks_rejected']
    restarted_at = time.monotonic()
    nodes['actor'].start()
    assert obs.spin_until(
        lambda: any(m.replay_size > stored + 50 for m in stats_since(pipe, restarted_at)),
        START_TIMEOUT_S), f'no new trajectories after the actor restart\n{logs(pipe)}'
    # The restarted actor's sequence numbers start at 0 again: a new stream, not duplicates.
    assert fn.counters(pipe['counters'][-1][1])['chunks_rejected'] == rejected
    assert 'actor restarted' in nodes['learner'].log()
    assert any(max(abs(e) for e in m.effort) > 1e-6
               for r, m in pipe['joints'] if r > restarted_at)


def test_bridge_killed_actor_survives_and_its_watchdog_zeroes(pipe):
    """Needs the actor's stale-sensor watchdog (``safety.sensor_timeout_s``)."""
    obs, nodes = pipe['obs'], pipe['nodes']
    if not HAS_WATCHDOG:
        pytest.skip('the actor has no safety.sensor_timeout_s watchdog yet')
    t0 = time.monotonic()
    assert obs.spin_until(lambda: [m for r, m in pipe['commands'] if r > t0], 60.0)
    killed_at = time.monotonic()
    nodes['bridge'].kill(signal.SIGKILL)
    obs.spin_for(4.0)
    assert nodes['actor'].alive(), logs(pipe)
    assert nodes['learner'].alive(), logs(pipe)
    after = [list(m.data) for r, m in pipe['commands'] if r > killed_at + 0.2]
    assert after and all(math.isfinite(x) for c in after for x in c)
    assert after[-1] == [0.0], after[-5:]              # the watchdog's zero command
    assert 'no sensor data for 0.5 s: zero command' in nodes['actor'].log()
    assert 'Traceback' not in nodes['actor'].log()
    nodes['bridge'].start()
    t1 = time.monotonic()
    assert obs.spin_until(lambda: any(
        max(abs(e) for e in m.effort) > 1e-6 for r, m in pipe['joints'] if r > t1),
        START_TIMEOUT_S), 'the actor did not resume with a new bridge\n' + logs(pipe)


def test_sigterm_reaches_close_and_writes_a_clean_checkpoint(pipe):
    learner = pipe['nodes']['learner']
    assert learner.alive(), logs(pipe)
    code = learner.kill(signal.SIGTERM, timeout=60.0)
    text = learner.log()
    assert code == 0, text[-3000:]
    assert 'written at shutdown' in text, text[-3000:]
    path, ckpt = checkpoint.load_latest(pipe['ckpt_dir'])
    assert ckpt['clean_shutdown'] is True
    assert os.path.samefile(path, os.path.join(pipe['out_dir'], 'checkpoint.pt'))
    learner.start()           # a clean restart continues at the saved version + 1
    assert fn.wait_for_log(learner, 'resumed from', START_TIMEOUT_S), learner.log()
    assert f"policy version {ckpt['policy_version'] + 1}\n" in learner.log()
