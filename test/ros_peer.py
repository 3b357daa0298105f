"""
Child process for the interface round-trip tests (test_interfaces_roundtrip.py).

Usage::

    python ros_peer.py pub KIND TOPIC TIMEOUT     publish sample KIND messages until killed
    python ros_peer.py sub KIND TOPIC TIMEOUT     print the first KIND message as JSON, exit
    python ros_peer.py server SERVICE TIMEOUT     serve GetAction until killed
    python ros_peer.py client SERVICE TIMEOUT     call GetAction once, print the response

KIND is Trajectory, PolicyWeights or LearnerStats. Every mode exits with status 3 when
TIMEOUT seconds pass without success, so a broken transport fails a test instead of hanging
it. The sample values below are plain Python (importing this module does not import rclpy)
and exactly representable in the message field types, so a correct transport returns them
bit for bit.
"""

import json
import math
import struct
import sys
import time
import zlib

TIMEOUT_EXIT = 3


def f32(values):
    """Round ``values`` to the nearest float32 (exactly representable in float32[] fields)."""
    values = list(values)
    return list(struct.unpack('<%df' % len(values), struct.pack('<%df' % len(values), *values)))


# Edge cases for float32 fields: signed zero, largest finite, smallest subnormal, tiny normal.
F32_SPECIALS = f32([-0.0, 3.4028234663852886e38, 1.401298464324817e-45, -1.1754943508222875e-38])
U64_MAX = 2 ** 64 - 1
U32_MAX = 2 ** 32 - 1


def header(sec, nanosec, frame_id=''):
    """Return a std_msgs/Header as a dict."""
    return {'stamp': {'sec': sec, 'nanosec': nanosec}, 'frame_id': frame_id}


def sample_trajectory():
    """Return a Trajectory with T=5, obs_dim=3, act_dim=2 and distinctive values."""
    t, obs_dim, act_dim = 5, 3, 2
    return {
        'header': header(1700000000, 999999999, 'traj_frame'),
        'actor_id': 'actor_7/\u00fc\u03bb',  # non-ASCII survives as UTF-8
        'episode_id': 2 ** 63 + 12345,  # above 2**53: not representable as a double
        'sequence_number': U64_MAX,
        'policy_version': 42,
        'num_steps': t,
        'obs_dim': obs_dim,
        'act_dim': act_dim,
        'observations': f32([(i * 0.37 - 3.3) for i in range((t + 1) * obs_dim - 4)])
        + F32_SPECIALS,
        'actions': f32([math.sin(i) for i in range(t * act_dim)]),
        'rewards': f32([-1.5, 0.0, 2.25, 1e-7, -123456.789]),
        'discounts': [1.0, 1.0, 1.0, 1.0, 0.0],
        'behaviour_log_probs': f32([-0.5 * i - 0.918938 for i in range(t)]),
        'episode_start': True,
        'episode_end': True,
        'truncated': False,
    }


def sample_policy_weights():
    """Return PolicyWeights of a 17-256-256 MLP (70 145 floats, 280 kB: many DDS fragments)."""
    shapes = [(256, 17), (256,), (256, 256), ()]
    names = ['torso.0.weight', 'torso.0.bias', 'torso.2.weight', 'log_scale']
    sizes = [math.prod(s) for s in shapes]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    data = f32([math.sin(0.001 * i) * (1 + i % 7) for i in range(sum(sizes) - 4)]) + F32_SPECIALS
    return {
        'header': header(12, 5),
        'version': 7,
        'learner_step': 2 ** 40 + 3,
        'names': names,
        'ranks': [len(s) for s in shapes],
        'shapes': [d for s in shapes for d in s],
        'offsets': offsets,
        'data': data,
        'checksum': zlib.crc32(struct.pack('<%df' % len(data), *data)),
        'config_json': json.dumps({'obs_dim': 17, 'act_dim': 6, 'hidden': [256, 256],
                                   'activation': 'elu'}),
    }


def sample_learner_stats():
    """Return LearnerStats with float64 values that a float32 transport would corrupt."""
    return {
        'header': header(0, 1),
        'learner_step': 123456789012,
        'env_steps': U64_MAX - 1,
        'updates_per_second': 0.1,
        'replay_size': 1000000,
        'algorithm': 'mpo',
        'metric_names': ['loss/critic', 'loss/policy', 'dual/temperature', 'kl/mean', 'kl/cov',
                         'dual/alpha_mean', 'q/mean'],
        'metric_values': [1e-300, -1.7976931348623157e308, 5e-324, 0.0001234567890123456,
                          -0.0, 3.141592653589793, -98765.4321],
        'policy_version': 2 ** 53 + 1,
    }


SAMPLES = {
    'Trajectory': sample_trajectory,
    'PolicyWeights': sample_policy_weights,
    'LearnerStats': sample_learner_stats,
}


def sample_request():
    """Return a GetAction request."""
    return {'observation': f32([0.5, -1.25, 3.0e-3, 1e30]) + F32_SPECIALS,
            'deterministic': True}


def response_for(request):
    """Return the GetAction response the test server gives for ``request`` (a dict)."""
    obs = request['observation']
    return {
        'success': True,
        'message': json.dumps(request, sort_keys=True),
        'action': [-x for x in obs],
        'mean': list(reversed(obs)),
        'stddev': f32([0.1 * (i + 1) for i in range(len(obs))]),
        'log_prob': f32([-3.75 if request['deterministic'] else -1.0])[0],
        'policy_version': U64_MAX - 7,
    }


def to_dict(msg):
    """Convert a ROS message to plain Python (nested dicts, lists) via its field table."""
    out = {}
    for name in msg.get_fields_and_field_types():
        value = getattr(msg, name)
        if hasattr(value, 'get_fields_and_field_types'):
            value = to_dict(value)
        elif not isinstance(value, (str, bytes, bool, int, float)):
            value = list(value)  # array.array, numpy arrays and lists of strings
        out[name] = value
    return out


def fill(msg, values):
    """Set the fields of ``msg`` from a dict, recursing into nested messages."""
    for name, value in values.items():
        if isinstance(value, dict):
            fill(getattr(msg, name), value)
        else:
            setattr(msg, name, value)
    return msg


def emit(payload):
    """Print ``payload`` as one JSON line on stdout (the parent reads the last line)."""
    sys.stdout.write(json.dumps(payload) + '\n')
    sys.stdout.flush()


def message_type(kind):
    """Return the mpo_ros_interfaces message class called ``kind``."""
    import mpo_ros_interfaces.msg
    return getattr(mpo_ros_interfaces.msg, kind)


def qos():
    """Reliable, keep-last-10 QoS (what the nodes use for trajectories and weights)."""
    from rclpy.qos import QoSProfile
    from rclpy.qos import ReliabilityPolicy
    return QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def run_pub(node, kind, topic, deadline):
    """Publish the sample message every 0.1 s once a subscriber matched, until the deadline."""
    import rclpy
    msg = fill(message_type(kind)(), SAMPLES[kind]())
    pub = node.create_publisher(message_type(kind), topic, qos())
    sent = 0
    while time.monotonic() < deadline:
        if pub.get_subscription_count() > 0:
            pub.publish(msg)
            sent += 1
        rclpy.spin_once(node, timeout_sec=0.1)
    emit({'published': sent})
    return 0 if sent else TIMEOUT_EXIT


def run_sub(node, kind, topic, deadline):
    """Print the first received message as JSON."""
    import rclpy
    received = []
    node.create_subscription(message_type(kind), topic, received.append, qos())
    while not received and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    if not received:
        emit({'error': 'no {} message on {} before the timeout'.format(kind, topic)})
        return TIMEOUT_EXIT
    emit({'received': to_dict(received[0])})
    return 0


def run_server(node, service, deadline):
    """Serve GetAction, answering with response_for(request), until the deadline."""
    import rclpy
    from mpo_ros_interfaces.srv import GetAction

    def handle(request, response):
        return fill(response, response_for(to_dict(request)))

    node.create_service(GetAction, service, handle)
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    return 0


def run_client(node, service, deadline):
    """Call GetAction once with sample_request() and print the response as JSON."""
    import rclpy
    from mpo_ros_interfaces.srv import GetAction
    client = node.create_client(GetAction, service)
    while not client.wait_for_service(timeout_sec=0.1):
        if time.monotonic() > deadline:
            emit({'error': 'service {} not available before the timeout'.format(service)})
            return TIMEOUT_EXIT
    future = client.call_async(fill(GetAction.Request(), sample_request()))
    rclpy.spin_until_future_complete(node, future,
                                     timeout_sec=max(0.0, deadline - time.monotonic()))
    if not future.done() or future.result() is None:
        emit({'error': 'no response from {} before the timeout'.format(service)})
        return TIMEOUT_EXIT
    emit({'received': to_dict(future.result())})
    return 0


def main(argv):
    """Run one peer role; return the process exit status."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    mode, args = argv[0], argv[1:]
    deadline = time.monotonic() + float(args[-1])
    rclpy.init()
    node = rclpy.create_node('ros_peer_' + mode)
    try:
        if mode == 'pub':
            return run_pub(node, args[0], args[1], deadline)
        if mode == 'sub':
            return run_sub(node, args[0], args[1], deadline)
        if mode == 'server':
            return run_server(node, args[0], deadline)
        if mode == 'client':
            return run_client(node, args[0], deadline)
        raise SystemExit('unknown mode {!r}'.format(mode))
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
