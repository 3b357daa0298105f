"""
mpo_ros_interfaces over real DDS: every field survives a trip between two processes exactly.

Each test starts two child processes (test/ros_peer.py) in the ROS domain conftest.py chose for
this run: a publisher and a subscriber for each message type, a GetAction server and a client
for the service. The receiving side prints what arrived as JSON; floats are compared by their
exact bit pattern (float.hex), so a lossy conversion or a signed-zero flip fails the test.
Children have their own deadlines and are killed (whole process group) in every case.
"""

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
import ros_peer

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, 'ros_peer.py')
CHILD_TIMEOUT_S = 40.0  # a child gives up (exit 3) after this
WAIT_S = CHILD_TIMEOUT_S + 20.0  # the test kills a child that is still running after this

pytestmark = pytest.mark.ros


def exact(value):
    """Map floats to float.hex recursively: compares bits, so -0.0 != 0.0 and no rounding hides."""
    if isinstance(value, float):
        return value.hex()
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exact(v) for v in value]
    return value


def start(log_dir, *args):
    """Start ros_peer.py in its own process group, output to files (no pipe can fill up)."""
    name = '_'.join(args[:1])
    out = open(os.path.join(log_dir, name + '.out'), 'w+')
    err = open(os.path.join(log_dir, name + '.err'), 'w+')
    proc = subprocess.Popen(
        [sys.executable, PEER, *args, str(CHILD_TIMEOUT_S)],
        stdout=out, stderr=err, text=True, start_new_session=True)
    proc.log_files = (out, err)
    return proc


def stop(proc, grace_s=5.0):
    """Ask ``proc`` to exit (SIGINT), then kill its process group if it lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=grace_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=grace_s)


def output_of(proc):
    """Return (stdout, stderr) of a stopped peer."""
    texts = []
    for f in proc.log_files:
        f.seek(0)
        texts.append(f.read())
        f.close()
    return texts


def run_pair(log_dir, receiver_args, sender_args):
    """
    Run a receiving and a sending peer; return what the receiver reported as 'received'.

    The receiver starts first. Both are stopped in every case; a failure shows the output of
    both.
    """
    procs = []
    try:
        procs.append(start(log_dir, *receiver_args))
        procs.append(start(log_dir, *sender_args))
        try:
            procs[0].wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            pass
    finally:
        for proc in procs:
            stop(proc)
    outputs = [(proc.args[2], proc.returncode, *output_of(proc)) for proc in procs]
    _, rc, out, _ = outputs[0]
    lines = out.strip().splitlines()
    report = json.loads(lines[-1]) if lines else {}
    if rc != 0 or 'received' not in report:
        pytest.fail('\n'.join('--- peer {} (exit {})\nstdout:\n{}\nstderr:\n{}'.format(
            name, code, o[-2000:], e[-4000:]) for name, code, o, e in outputs))
    return report['received']


def unique_name(kind):
    """Return a topic / service name no other test (or test run) uses."""
    return '/mpo_ros_test_{}_{}'.format(kind.lower(), uuid.uuid4().hex[:12])


def assert_same_fields(got, expected):
    """Assert that ``got`` has exactly the fields and bit-exact values of ``expected``."""
    assert sorted(got) == sorted(expected)
    for field in expected:
        assert exact(got[field]) == exact(expected[field]), 'field {!r} differs'.format(field)


@pytest.mark.parametrize('kind', sorted(ros_peer.SAMPLES))
def test_message_roundtrip(kind, tmp_path):
    topic = unique_name(kind)
    got = run_pair(str(tmp_path), ('sub', kind, topic), ('pub', kind, topic))
    assert_same_fields(got, ros_peer.SAMPLES[kind]())


def test_get_action_service_roundtrip(tmp_path):
    service = unique_name('get_action')
    got = run_pair(str(tmp_path), ('client', service), ('server', service))
    request = ros_peer.sample_request()
    assert_same_fields(got, ros_peer.response_for(request))
    # The server echoes the request it decoded: it must equal what the client sent.
    assert exact(json.loads(got['message'])) == exact(request)


def test_samples_are_distinctive():
    """Guard the guard: samples hold values a lossy transport would change."""
    traj = ros_peer.sample_trajectory()
    assert traj['episode_id'] > 2 ** 53 and traj['sequence_number'] == 2 ** 64 - 1
    assert len(traj['observations']) == (traj['num_steps'] + 1) * traj['obs_dim']
    assert len(traj['actions']) == traj['num_steps'] * traj['act_dim']
    assert exact(-0.0) != exact(0.0)
    weights = ros_peer.sample_policy_weights()
    assert len(weights['data']) == weights['offsets'][-1] + 1  # last tensor is a scalar
    assert sum(weights['ranks']) == len(weights['shapes'])
