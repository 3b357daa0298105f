r"""
Stand-in for a ros2_control robot driver, for the arm tests (test_ros_arm.py).

Speaks only what a real arm's driver stack speaks: ``/joint_states`` (JointState, in its own
joint order, stamped with wall time) from a joint_state_broadcaster, a forward velocity
controller taking ``/<controller>/commands`` (Float64MultiArray, one value per controller
joint, in the controller's ``joints`` order), an end-effector pose on ``/ee_pose`` (computed
from the joints by a made-up forward kinematics) and a target on ``/target``. Velocities are
integrated at ``--rate`` Hz, and the last command is held, as the real controller does.

    python standin_driver.py --controller-joints a b c --publish-order c a b \\
        [--extra-joints f1] [--initial 0 0 0] [--frozen] [--rate 50]

Every command received is printed as ``CMD <wall time> <values...>`` for the test to read.
"""

import argparse
import math
import sys
import time


def main():
    """Run the stand-in driver until SIGINT."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--controller-joints', nargs='+', required=True)
    parser.add_argument('--publish-order', nargs='+', required=True)
    parser.add_argument('--extra-joints', nargs='*', default=[])
    parser.add_argument('--initial', nargs='*', type=float, default=[])
    parser.add_argument('--controller', default='joint_velocity_controller')
    parser.add_argument('--frozen', action='store_true', help='ignore commands (no motion)')
    parser.add_argument('--rate', type=float, default=50.0)
    args = parser.parse_args()

    import rclpy
    from geometry_msgs.msg import PointStamped, PoseStamped
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    joints = args.controller_joints
    q = {n: 0.0 for n in joints}
    for name, value in zip(joints, args.initial):
        q[name] = value
    v = {n: 0.0 for n in joints}
    rclpy.init()
    node = Node('standin_driver')
    pub_js = node.create_publisher(JointState, '/joint_states', 10)
    pub_ee = node.create_publisher(PoseStamped, '/ee_pose', 10)
    pub_target = node.create_publisher(PointStamped, '/target', 10)

    def on_command(msg):
        values = list(msg.data)
        print('CMD', f'{time.time():.6f}', *[f'{x:.9g}' for x in values], flush=True)
        if len(values) != len(joints):
            return                      # the real controller rejects a wrong size too
        for name, value in zip(joints, values):
            v[name] = value

    node.create_subscription(Float64MultiArray, f'/{args.controller}/commands', on_command, 10)
    dt = 1.0 / args.rate

    def tick():
        if not args.frozen:
            for name in joints:
                q[name] += v[name] * dt
        stamp = node.get_clock().now().to_msg()
        ee = PoseStamped()
        ee.header.stamp, ee.header.frame_id = stamp, 'base_link'
        ee.pose.position.x = 0.3 + 0.1 * math.cos(sum(q.values()))
        ee.pose.position.y = 0.1 * math.sin(sum(q.values()))
        ee.pose.position.z = 0.2
        ee.pose.orientation.w = 1.0
        pub_ee.publish(ee)
        target = PointStamped()
        target.header.stamp, target.header.frame_id = stamp, 'base_link'
        target.point.x, target.point.y, target.point.z = 0.35, 0.0, 0.2
        pub_target.publish(target)
        js = JointState()
        js.header.stamp = stamp
        js.name = list(args.publish_order) + list(args.extra_joints)
        js.position = [q[n] for n in args.publish_order] + [0.5] * len(args.extra_joints)
        js.velocity = [v[n] for n in args.publish_order] + [0.0] * len(args.extra_joints)
        js.effort = [0.0] * len(js.name)
        pub_js.publish(js)

    node.create_timer(dt, tick)
    print('READY', flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
