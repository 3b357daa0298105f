"""
Plain rclpy client for the pipeline tests (test_ros_pipeline.py); a separate process.

Usage::

    python pipeline_client.py get_action NAMESPACE TIMEOUT   GetAction: valid, wrong size, NaN
    python pipeline_client.py progress NAMESPACE TIMEOUT     learner updates, policy version up

Prints one JSON line with what it saw and exits 0, or 3 when TIMEOUT seconds pass first.
"""

import json
import math
import sys
import time

TIMEOUT_EXIT = 3


def emit(payload):
    """Print ``payload`` as one JSON line."""
    sys.stdout.write(json.dumps(payload) + '\n')
    sys.stdout.flush()


def call(node, client, observation, deterministic, deadline):
    """Call GetAction; return the response as a dict (None on timeout)."""
    import rclpy
    from mpo_ros_interfaces.srv import GetAction
    request = GetAction.Request()
    request.observation = [float(x) for x in observation]
    request.deterministic = deterministic
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future,
                                     timeout_sec=max(0.0, deadline - time.monotonic()))
    if not future.done() or future.result() is None:
        return None
    r = future.result()
    return {'success': r.success, 'message': r.message, 'action': list(r.action),
            'mean': list(r.mean), 'stddev': list(r.stddev), 'log_prob': r.log_prob,
            'policy_version': r.policy_version}


def wait_service(client, deadline):
    """Wait for the service; return False on timeout."""
    while not client.wait_for_service(timeout_sec=0.2):
        if time.monotonic() > deadline:
            return False
    return True


def run_get_action(node, ns, deadline):
    """Exercise /actor/get_action with good and bad requests."""
    from mpo_ros_interfaces.srv import GetAction
    client = node.create_client(GetAction, ns + '/actor/get_action')
    if not wait_service(client, deadline):
        emit({'error': 'get_action not available'})
        return TIMEOUT_EXIT
    out = {}
    # The actor answers success=false until the learner's first weights arrive.
    while time.monotonic() < deadline:
        out['latest'] = call(node, client, [], False, deadline)
        if out['latest'] and out['latest']['success']:
            break
        time.sleep(0.2)
    out['valid'] = call(node, client, [0.1, -0.2, 0.3], True, deadline)
    out['wrong_size'] = call(node, client, [0.1, 0.2], False, deadline)
    out['nan'] = call(node, client, [0.1, math.nan, 0.3], False, deadline)
    out['after'] = call(node, client, [0.5, 0.5, 0.5], False, deadline)
    emit({'received': out})
    return 0


def run_progress(node, ns, deadline):
    """Wait for LearnerStats with learner_step > 0 and a rising actor policy version."""
    import rclpy
    from mpo_ros_interfaces.msg import LearnerStats
    from mpo_ros_interfaces.srv import GetAction
    stats = []
    node.create_subscription(LearnerStats, ns + '/learner/stats', stats.append, 10)
    client = node.create_client(GetAction, ns + '/actor/get_action')
    versions = []
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.2)
        if client.service_is_ready():
            r = call(node, client, [], False, deadline)
            if r and r['success']:
                versions.append(r['policy_version'])
        steps = [s.learner_step for s in stats]
        if steps and max(steps) > 0 and len(set(versions)) >= 2 and versions[-1] > versions[0]:
            emit({'received': {'learner_steps': steps[-5:], 'versions': versions[-5:],
                               'first_version': versions[0],
                               'replay_size': stats[-1].replay_size,
                               'env_steps': stats[-1].env_steps}})
            return 0
        time.sleep(0.3)
    emit({'error': 'no progress', 'learner_steps': [s.learner_step for s in stats][-5:],
          'versions': versions[-5:]})
    return TIMEOUT_EXIT


def main(argv):
    """Run one client role; return the exit status."""
    import rclpy
    mode, ns, timeout = argv[0], argv[1].rstrip('/'), float(argv[2])
    deadline = time.monotonic() + timeout
    rclpy.init()
    node = rclpy.create_node('pipeline_client_' + mode)
    try:
        return {'get_action': run_get_action, 'progress': run_progress}[mode](
            node, ns, deadline)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
