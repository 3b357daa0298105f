"""
Helpers for the fault tests (test_fault_*.py): node processes to kill and an in-test observer.

``NodeProcess`` starts one node executable exactly as ``mpo-ros-launch`` would (same YAML,
same ``-p`` overrides, its own namespace), in its own process group with its output in a
file, and can kill it with any signal and restart it with the same command. ``Observer`` is a
plain rclpy node in the test process (own context, so it coexists with other tests) that
records what it subscribes to with receipt times and calls services.
"""

import os
import signal
import subprocess
import time

from mpo_ros.ros import launcher


def node_commands(task, namespace, overrides):
    """Return {node name: argv} for the pipeline with ``<node>.<param>:=value`` overrides."""
    values, extra = launcher.parse([f'task:={task}', f'namespace:={namespace}', *overrides])
    return dict(launcher.commands(values, extra))


class NodeProcess:
    """One node process that can be killed and restarted."""

    def __init__(self, name, cmd, log_dir):
        self.name, self.cmd, self.log_dir = name, list(cmd), log_dir
        self.proc = None
        self.runs = 0
        self.log_path = None

    def start(self, extra_args=()):
        """Start (or restart) the node; each run logs to its own file."""
        self.runs += 1
        self.log_path = os.path.join(self.log_dir, f'{self.name}_{self.runs}.log')
        log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(self.cmd + list(extra_args), stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def alive(self):
        """Return True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL, timeout=60.0):
        """Send ``sig`` to the node's process group and wait; return its exit status."""
        if self.alive():
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=10)

    def stop(self):
        """SIGINT, then SIGKILL if it lingers (cleanup)."""
        if self.proc is None:
            return None
        if self.alive():
            self.kill(signal.SIGINT, timeout=30.0)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.proc.wait(timeout=10)

    def log(self, run=None):
        """Return the output of run ``run`` (default: the current one)."""
        path = self.log_path if run is None else os.path.join(
            self.log_dir, f'{self.name}_{run}.log')
        with open(path, errors='replace') as f:
            return f.read()

    def all_logs(self):
        """Return the output of every run, labelled (for failure messages)."""
        return '\n'.join(f'--- {self.name} run {i}:\n{self.log(i)[-3000:]}'
                         for i in range(1, self.runs + 1))


def wait_for_log(node, text, timeout):
    """Wait until ``text`` appears in the node's current log; return whether it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in node.log():
            return True
        time.sleep(0.2)
    return text in node.log()


class Observer:
    """Records messages (with monotonic receipt times) and calls services, in the test."""

    def __init__(self, name):
        import rclpy
        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received = {}

    def record(self, msg_type, topic, qos=10):
        """Subscribe ``topic``; messages land in ``self.received[topic]`` as (t, msg)."""
        box = self.received.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic,
                                      lambda m: box.append((time.monotonic(), m)), qos)
        return box

    def publisher(self, msg_type, topic, qos=10):
        """Return a publisher on ``topic``."""
        return self.node.create_publisher(msg_type, topic, qos)

    def spin_until(self, predicate, timeout):
        """Spin until ``predicate()`` is true or the timeout; return its last value."""
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def spin_for(self, seconds):
        """Spin for ``seconds``."""
        self.spin_until(lambda: False, seconds)

    def call(self, srv_type, name, request, timeout=60.0):
        """Call a service; return the response or None on timeout."""
        client = self.node.create_client(srv_type, name)
        try:
            if not self.spin_until(client.service_is_ready, timeout):
                return None
            future = client.call_async(request)
            self.spin_until(future.done, timeout)
            return future.result() if future.done() else None
        finally:
            self.node.destroy_client(client)

    def wait_subscribers(self, pub, count=1, timeout=60.0, process=None):
        """Wait until ``pub`` has ``count`` matched subscriptions (or ``process`` died)."""
        self.spin_until(lambda: pub.get_subscription_count() >= count or (
            process is not None and not process.alive()), timeout)
        return pub.get_subscription_count() >= count

    def close(self):
        """Destroy the node and shut the context down."""
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


def get_action(observer, ns, obs, timeout=30.0):
    """Call ``<ns>/actor/get_action`` with ``obs``; return the response or None."""
    from mpo_ros_interfaces.srv import GetAction
    request = GetAction.Request()
    request.observation = [float(x) for x in obs]
    request.deterministic = True
    return observer.call(GetAction, ns + '/actor/get_action', request, timeout)


def counters(msg):
    """Decode the learner's ``~/counters`` message into a dict."""
    labels = msg.layout.dim[0].label.split(',')
    return dict(zip(labels, [int(x) for x in msg.data]))
