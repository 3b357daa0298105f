"""The bridge node as a real process: realtime stepping on a timer, pause / step / reset."""

import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from mpo_ros.ros import conversions as conv  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

pytestmark = pytest.mark.ros
BRIDGE = os.path.join(os.path.dirname(sys.executable), 'bridge')


@pytest.fixture
def realtime_bridge(tmp_path):
    """Start a realtime Pendulum bridge (4x real time) in a fresh namespace."""
    ns = '/b' + uuid.uuid4().hex[:8]
    log = open(tmp_path / 'bridge.log', 'w+')
    proc = subprocess.Popen([BRIDGE, '--ros-args', '-r', '__ns:=' + ns, '-p', 'mode:=realtime',
                             '-p', 'realtime_factor:=4.0', '-p', 'command_timeout_s:=0.0'],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('bridge_test', context=context)
    try:
        yield ns, node, proc, log
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def spin_until(node, predicate, timeout):
    """Spin ``node`` until ``predicate()`` or the timeout; return the predicate's value."""
    executor = rclpy.executors.SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    executor.remove_node(node)
    return predicate()


def call(node, srv_type, name, request, timeout=60.0):
    """Call a service and return the response (fails the test on timeout)."""
    client = node.create_client(srv_type, name)
    assert spin_until(node, client.service_is_ready, timeout), name + ' not available'
    future = client.call_async(request)
    assert spin_until(node, future.done, timeout), name + ' did not answer'
    return future.result()


def test_realtime_steps_on_its_own_and_obeys_pause_step_reset(realtime_bridge):
    ns, node, proc, log = realtime_bridge
    steps = []
    node.create_subscription(Float64MultiArray, ns + '/task/step',
                             lambda m: steps.append(conv.step_from_msg(m, 3)), 100)
    # Pendulum: dt 0.05 s, 4x real time -> about 80 steps/s with no command at all.
    if not spin_until(node, lambda: len(steps) >= 20, 90.0):
        log.seek(0)
        pytest.fail('no realtime steps:\n' + log.read()[-3000:])
    seqs = [s.sequence for s in steps]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert call(node, SetBool, ns + '/bridge/pause', SetBool.Request(data=True)).success
    spin_until(node, lambda: False, 0.5)                 # let in-flight steps arrive
    paused_at = len(steps)
    spin_until(node, lambda: False, 1.0)
    assert len(steps) == paused_at, 'the bridge kept stepping while paused'
    assert call(node, Trigger, ns + '/bridge/step', Trigger.Request()).success
    assert spin_until(node, lambda: len(steps) == paused_at + 1, 10.0)
    assert steps[-1].sequence == steps[-2].sequence + 1
    assert call(node, Trigger, ns + '/bridge/reset', Trigger.Request()).success
    assert spin_until(node, lambda: steps[-1].episode_start, 10.0)
    assert np.isfinite(steps[-1].observation).all()
    assert call(node, SetBool, ns + '/bridge/pause', SetBool.Request(data=False)).success
    resumed_at = len(steps)
    assert spin_until(node, lambda: len(steps) >= resumed_at + 10, 30.0)
    assert proc.poll() is None
