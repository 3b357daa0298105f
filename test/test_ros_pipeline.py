"""
The three nodes as real processes, started by ``mpo-ros-launch`` on this run's ROS domain.

One pipeline (Pendulum, small networks, min replay 200) runs for the module; separate plain
rclpy processes (pipeline_client.py) query it: GetAction answers good and bad requests and
keeps running, the learner completes updates and the actor's policy version rises; on SIGINT
everything stops and the learner leaves a checkpoint. Every child has a deadline and is killed
(whole process group) in every case.
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, 'pipeline_client.py')
LAUNCH = os.path.join(os.path.dirname(sys.executable), 'mpo-ros-launch')
CLIENT_TIMEOUT_S = 120.0

pytestmark = pytest.mark.ros

SMALL = ['learner.replay.min_size:=200', 'learner.replay.batch_size:=16',
         'learner.network.policy_hidden:=[32,32]', 'learner.network.critic_hidden:=[32,32]',
         'learner.mpo.num_action_samples:=8', 'learner.publish_every:=5',
         'learner.checkpoint_every_updates:=100000', 'learner.stats_period_s:=0.5',
         'actor.eval_every:=1000', 'actor.eval_episodes:=1']


def start(cmd, log_dir, name):
    """Start ``cmd`` in its own process group with output in files."""
    out = open(os.path.join(log_dir, name + '.out'), 'w+')
    err = open(os.path.join(log_dir, name + '.err'), 'w+')
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, start_new_session=True)
    proc.log_files = (out, err)
    return proc


def stop(proc, grace_s=40.0):
    """SIGINT the process (the launcher forwards it), then SIGKILL its group if it lingers."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)
    return proc.returncode


def output(proc):
    """Return (stdout, stderr) of a process started by start()."""
    texts = []
    for f in proc.log_files:
        f.flush()
        f.seek(0)
        texts.append(f.read())
    return texts


def run_client(mode, namespace, log_dir):
    """Run pipeline_client.py; return its JSON report (fail with its output otherwise)."""
    proc = start([sys.executable, CLIENT, mode, namespace, str(CLIENT_TIMEOUT_S)], log_dir,
                 'client_' + mode)
    try:
        proc.wait(timeout=CLIENT_TIMEOUT_S + 30)
    except subprocess.TimeoutExpired:
        pass
    finally:
        stop(proc, grace_s=5)
    out, err = output(proc)
    lines = out.strip().splitlines()
    report = json.loads(lines[-1]) if lines else {}
    return proc.returncode, report, err


@pytest.fixture(scope='module')
def pipeline(tmp_path_factory):
    """Start bridge + actor + learner through the launcher; stop them at the end."""
    log_dir = str(tmp_path_factory.mktemp('pipeline'))
    namespace = 'p' + uuid.uuid4().hex[:8]
    out_dir = os.path.join(log_dir, 'run')
    cmd = [LAUNCH, 'sim_train', 'task:=gym:Pendulum-v1', 'namespace:=' + namespace,
           'learner.out_dir:=' + out_dir, *SMALL]
    proc = start(cmd, log_dir, 'launcher')
    state = {'proc': proc, 'ns': '/' + namespace, 'log_dir': log_dir, 'out_dir': out_dir}
    try:
        yield state
    finally:
        stop(proc)


def fail_with_logs(pipeline, text):
    """Fail the test showing the launcher's output."""
    out, err = output(pipeline['proc'])
    pytest.fail('{}\n--- launcher stdout:\n{}\n--- stderr:\n{}'.format(
        text, out[-3000:], err[-6000:]))


def test_get_action_from_a_separate_process(pipeline):
    rc, report, err = run_client('get_action', pipeline['ns'], pipeline['log_dir'])
    if rc != 0:
        fail_with_logs(pipeline, 'client exit {}: {}\n{}'.format(rc, report, err[-2000:]))
    got = report['received']
    for key in ('latest', 'valid', 'after'):
        assert got[key]['success'], (key, got[key])
        assert len(got[key]['action']) == 1 and len(got[key]['mean']) == 1
        assert -2.0 <= got[key]['action'][0] <= 2.0      # Pendulum torque limits
    assert not got['wrong_size']['success'] and 'shape' in got['wrong_size']['message']
    assert got['wrong_size']['action'] == []
    assert not got['nan']['success'] and 'NaN' in got['nan']['message']
    assert pipeline['proc'].poll() is None, 'the pipeline died'


def test_learner_updates_and_policy_version_rises(pipeline):
    rc, report, err = run_client('progress', pipeline['ns'], pipeline['log_dir'])
    if rc != 0:
        fail_with_logs(pipeline, 'client exit {}: {}\n{}'.format(rc, report, err[-2000:]))
    got = report['received']
    assert max(got['learner_steps']) > 0
    assert got['versions'][-1] > got['first_version']
    assert got['replay_size'] >= 200


def test_sigint_stops_every_node_and_checkpoints(pipeline):
    proc = pipeline['proc']
    assert proc.poll() is None, 'the pipeline died early'
    time.sleep(1.0)
    code = stop(proc)
    out, err = output(proc)
    assert code == 0, err[-4000:]
    assert 'stopping all nodes' in out
    assert os.path.exists(os.path.join(pipeline['out_dir'], 'checkpoint.pt')), err[-4000:]
    assert os.path.exists(os.path.join(pipeline['out_dir'], 'progress.csv'))


def test_launcher_stops_the_rest_when_a_node_dies(tmp_path):
    """An invalid learner parameter: the learner exits 2 naming it, the launcher stops all."""
    namespace = 'd' + uuid.uuid4().hex[:8]
    proc = start([LAUNCH, 'sim_train', 'namespace:=' + namespace,
                  'learner.mpo.epsilon:=-1.0', 'learner.out_dir:=' + str(tmp_path / 'run')],
                 str(tmp_path), 'launcher')
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        pass
    finally:
        code = stop(proc, grace_s=5)
    out, err = output(proc)
    assert code == 2, out[-2000:] + err[-4000:]
    assert 'mpo.epsilon' in err
    assert 'learner exited with status 2' in out
    assert 'killing' not in out        # bridge and actor stopped on SIGINT


def test_max_env_steps_ends_the_run_with_a_final_evaluation(tmp_path):
    """The learner stops after max_env_steps and the final evaluation; all nodes exit 0."""
    out_dir = tmp_path / 'run'
    proc = start([LAUNCH, 'sim_train', 'namespace:=m' + uuid.uuid4().hex[:8],
                  'learner.out_dir:=' + str(out_dir), 'learner.max_env_steps:=500',
                  'actor.eval_every:=250', *SMALL[:-2]], str(tmp_path), 'launcher')
    try:
        proc.wait(timeout=150)
    except subprocess.TimeoutExpired:
        pass
    finally:
        code = stop(proc, grace_s=5)
    out, err = output(proc)
    assert code == 0, out[-2000:] + err[-4000:]
    assert 'learner exited with status 0' in out
    summary = json.loads((out_dir / 'summary.json').read_text())
    assert summary['env_steps'] >= 500 and summary['updates'] > 0
    assert summary['final_eval_return'] is not None
    assert (out_dir / 'learning_curve.png').exists()
    with open(out_dir / 'progress.csv') as f:
        assert len(f.read().splitlines()) >= 3          # header + evaluations at 250, 500
