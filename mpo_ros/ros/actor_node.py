"""
Actor node: the policy server between a robot (or the bridge) and the learner.

A thin ROS shell around :class:`mpo_ros.robot.actor.RobotActor`, which holds the logic:

- observes in one of two ways. Without ``task_definition`` it subscribes ``task/step`` (the
  bridge's per-step record for benchmark tasks, see bridge_node). With one (``reach``) it sees
  only what a real arm publishes: ``joint_states`` (joints matched by name to ``joints``),
  ``ee_pose`` (PoseStamped) and ``target`` (PointStamped); a joint state and an end-effector
  pose stamped within ``sync_tolerance_s`` of each other make one frame, from which the task
  definition computes observation, reward and episode end; after ``episode_steps`` frames the
  actor ends the episode and runs its reset routine (``reset.*``: call a Trigger service, or
  drive home with velocity commands; never a teleport of its own);
- samples an action (the mean in evaluation episodes), passes it through the safety layer
  (``safety.*``: velocity and position limits, rate limit; see mpo_ros.robot.safety) and
  publishes the command in actuator units on the command topic (std_msgs/Float64MultiArray,
  ros2_control forward command controller style, one value per controlled joint);
- keeps the hardware safe: a stale-sensor watchdog (``safety.sensor_timeout_s``; zero or hold),
  an ``e_stop`` topic (std_msgs/Bool; true latches zero commands until false), ``~/set_active``
  (std_srvs/SetBool; false stops acting with a zero command) and a zero command on shutdown;
- records what was executed and publishes it as ``Trajectory`` chunks on ``trajectories``
  (``chunk_length`` steps, or fewer at an episode end): per action dimension the raw pre-clip
  sample where the safety layer changed nothing but the [-1, 1] clip, else the filtered command
  mapped back to the normalised space, with the policy's log-density at that action as the
  behaviour log-probability (mpo_ros.robot.actions). With ``command_in_observation`` (required
  with ``safety.max_delta`` > 0, set alike on the learner) the observation ends with the
  previous command, normalised, so transitions under a rate limit stay Markov;
- applies ``PolicyWeights`` from ``learner/policy_weights`` after checking checksum, layout and
  architecture (rejected with a logged reason otherwise; nothing is unpickled);
- every ``eval_every`` training steps runs ``eval_episodes`` deterministic episodes and publishes
  the mean return on ``~/eval_return`` (std_msgs/Float64) and
  ``[env_steps, mean, std, episodes]`` on ``evaluation`` (std_msgs/Float64MultiArray); with a
  task definition also the fraction of episodes ending in success on ``~/eval_success``;
- respects the learner's ``learner/step_budget`` (std_msgs/Int64, -1: unlimited) so that the
  replay ratio holds however slow the learner is (``throttle``);
- serves ``~/get_action`` (mpo_ros_interfaces/GetAction): an empty observation means the latest
  one; a wrong size or NaN gives success=false with the reason;
- publishes ``~/timing`` ``[p50_ms, p99_ms, samples, steps_per_s]`` (step-receipt to command
  latency, step rate) every period; ``latency_log`` saves every latency on shutdown.
"""

from __future__ import annotations

import sys
import time

from geometry_msgs.msg import PointStamped, PoseStamped
from mpo_ros import envs
from mpo_ros.core.config import InputLimits, NetworkConfig
from mpo_ros.core.streams import TrajectoryChunk
from mpo_ros.robot import arm
from mpo_ros.robot.actor import RobotActor
from mpo_ros.robot.arm import ActorConfig
from mpo_ros.robot.episode import EvalResult
from mpo_ros.robot.telemetry import Latency, Rejections, Throttle
from mpo_ros.ros import common
from mpo_ros.ros import conversions as conv
from mpo_ros.ros.parameters import declare_config
from mpo_ros_interfaces.msg import PolicyWeights
from mpo_ros_interfaces.srv import GetAction
import numpy as np
import rclpy.duration
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray, Int64
from std_srvs.srv import SetBool, Trigger
import torch


class ActorNode(Node):
    """Policy server and trajectory recorder (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__('actor')
        torch.set_num_threads(1)
        # Safety settings and input limits take effect when set (on the next message); every
        # other parameter is read-only at run time.
        _, cfg = declare_config(self, {'': ActorConfig, 'network.': NetworkConfig,
                                       'reach.': arm.ReachConfig, 'reset.': arm.ResetConfig,
                                       'safety.': arm.SafetyConfig, 'limits.': InputLimits},
                                live={'safety.': lambda c: self.robot.set_safety(c),
                                      'limits.': self._set_limits},
                                read_only=('safety.e_stop_topic',))
        self.cfg: ActorConfig = cfg['']
        self.reset_cfg: arm.ResetConfig = cfg['reset.']
        safety: arm.SafetyConfig = cfg['safety.']
        try:
            env = envs.make(self.cfg.task, seed=self.cfg.seed)
        except envs.UnknownTaskError as exc:
            raise common.StartupError(f"invalid parameter 'task': {exc}") from exc
        spec = env.spec
        env.close()
        self.task_obs_dim = spec.obs_dim            # size of the bridge's task/step observation
        self.actor_id = self.cfg.actor_id or self.get_fully_qualified_name()
        self.throttle = Throttle()
        self.rejections = Rejections(self.throttle)
        self.latency = Latency(keep_all=bool(self.cfg.latency_log))
        self.reset_client = None
        try:
            self.robot = RobotActor(self.cfg, spec, cfg['reach.'], self.reset_cfg, safety,
                                    cfg['network.'], self, self.actor_id)
        except ValueError as exc:
            raise common.StartupError(f'invalid parameter: {exc}') from exc
        self.robot.limits = cfg['limits.']
        pub, vector = self.create_publisher, Float64MultiArray
        self.pub_cmd = pub(vector, self.cfg.command_topic, common.RELIABLE)
        self.pub_traj = pub(conv.Trajectory, 'trajectories', common.RELIABLE)
        self.pub_eval = pub(Float64, '~/eval_return', 10)
        self.pub_success = pub(Float64, '~/eval_success', 10)
        self.pub_evaluation = pub(vector, 'evaluation', common.RELIABLE)
        self.pub_timing = pub(vector, '~/timing', 10)
        if self.robot.sensors:
            self.create_subscription(JointState, self.cfg.joint_states_topic,
                                     self._on_joint_states, common.RELIABLE)
            self.create_subscription(PoseStamped, self.cfg.ee_pose_topic, self._on_ee_pose,
                                     common.RELIABLE)
            self.create_subscription(PointStamped, self.cfg.target_topic, self._on_target,
                                     common.RELIABLE)
            if self.reset_cfg.service:
                self.reset_client = self.create_client(Trigger, self.reset_cfg.service)
            self.create_timer(0.5, self.robot.reset_timer)
        else:
            self.create_subscription(Float64MultiArray, 'task/step', self._on_step,
                                     common.RELIABLE)
        self.create_subscription(PolicyWeights, 'learner/policy_weights', self._on_weights,
                                 common.LATCHED)
        self.create_subscription(Int64, 'learner/step_budget', self._on_budget, common.LATCHED)
        self.create_subscription(Bool, safety.e_stop_topic,
                                 lambda msg: self.robot.set_e_stop(bool(msg.data)), 10)
        self.create_service(GetAction, '~/get_action', self._srv_get_action)
        self.create_service(SetBool, '~/set_active', self._srv_set_active)
        self.create_timer(self.cfg.timing_period_s, self._on_timing)
        # Always running, so a sensor_timeout_s set at run time applies (0.1 s resolution).
        self.create_timer(min(0.1, safety.sensor_timeout_s / 4) if safety.sensor_timeout_s > 0
                          else 0.1, self.robot.watchdog)
        self.get_logger().info(self.robot.describe(
            self.resolve_topic_name(self.cfg.command_topic)))

    # ------------------------------------------------------------ RobotActor's outputs
    def log(self, level: str, text: str, key: str = '') -> None:
        """Log; with a ``key``, a warning at most every 5 s per key."""
        if key and not self.throttle.allow(key):
            return
        if level == 'info':           # one call site per severity (rclpy requires it)
            self.get_logger().info(text)
        else:
            self.get_logger().warning(text)

    def command(self, values: np.ndarray) -> None:
        """Publish these values (actuator units) on the command topic."""
        self.pub_cmd.publish(conv.vector_msg(values))

    def chunk(self, chunk: TrajectoryChunk) -> None:
        """Publish a recorded chunk as a Trajectory."""
        msg = conv.trajectory_msg(chunk)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_traj.publish(msg)

    def evaluation(self, r: EvalResult) -> None:
        """Publish and log an evaluation."""
        self.pub_eval.publish(Float64(data=r.mean))
        self.pub_evaluation.publish(conv.vector_msg(
            [r.env_steps, r.mean, r.std, r.episodes], 'env_steps,mean,std,episodes'))
        success = ''
        if r.success_rate is not None:
            self.pub_success.publish(Float64(data=r.success_rate))
            success = f', success {r.success_rate:.0%}, final distance {r.final_distance:.3f} m'
        self.get_logger().info(
            f'eval at {r.env_steps} steps: return {r.mean:.1f} ± {r.std:.1f} ({r.episodes} '
            f'episodes{success}); episodes {r.train_episodes}, train return '
            f'{r.train_return:.1f}, policy version {r.policy_version}')

    def request_reset(self) -> str:
        """Call the reset service; its answer goes to RobotActor.on_reset_result."""
        if self.reset_client is None:
            return 'none'
        if not self.reset_client.service_is_ready():
            self.log('warning', f'reset service {self.reset_client.srv_name} not available; '
                     'retrying', 'reset')
            return 'unavailable'
        future = self.reset_client.call_async(Trigger.Request())
        future.add_done_callback(lambda f: self.robot.on_reset_result(
            f.result() is not None and f.result().success,
            getattr(f.result(), 'message', '')))
        return 'called'

    def _set_limits(self, limits: InputLimits) -> None:
        """Apply new input limits (the next message is checked against them)."""
        self.robot.limits = limits

    # ------------------------------------------------------------ inputs
    def _reject(self, kind: str, text: str) -> None:
        """Count a rejected input of ``kind`` and log why (each reason at most every 5 s)."""
        line = self.rejections.reject(kind, text)
        if line:
            self.get_logger().warning(line)

    def _on_step(self, msg: Float64MultiArray) -> None:
        received = time.perf_counter()
        try:
            step = conv.step_from_msg(msg, self.task_obs_dim, self.robot.limits)
        except ValueError as exc:
            self._reject('step', f'task step rejected: {exc}')
            return
        self.latency.acted(received, self.robot.on_task_step(step))

    def _on_joint_states(self, msg: JointState) -> None:
        received = time.perf_counter()
        try:
            q = conv.joint_vector(msg, self.robot.joints, 'position', self.robot.known_joints,
                                  self.robot.limits.joint_position)
            qd = conv.joint_vector(msg, self.robot.joints, 'velocity', self.robot.known_joints,
                                   self.robot.limits.joint_velocity)
        except ValueError as exc:
            self._reject('joints', f'joint state rejected: {exc}')
            return
        stamp = conv.stamp_seconds(msg.header.stamp)
        self.latency.acted(received, self.robot.on_joint_state(stamp, q, qd))

    def _on_ee_pose(self, msg: PoseStamped) -> None:
        received = time.perf_counter()
        try:
            position = conv.position_from_pose(msg, bound=self.robot.limits.position)
        except ValueError as exc:
            self._reject('ee', f'end-effector pose rejected: {exc}')
            return
        stamp = conv.stamp_seconds(msg.header.stamp)
        self.latency.acted(received, self.robot.on_ee_pose(stamp, position))

    def _on_target(self, msg: PointStamped) -> None:
        try:
            self.robot.on_target(conv.stamp_seconds(msg.header.stamp),
                                 conv.point_from_msg(msg, bound=self.robot.limits.position))
        except ValueError as exc:
            self._reject('target', f'target rejected: {exc}')

    def _on_weights(self, msg: PolicyWeights) -> None:
        try:
            obs_dim, act_dim, net = conv.network_from_json(msg.config_json)
            self.robot.load_weights(conv.weights_from_msg(msg), obs_dim, act_dim, net,
                                    int(msg.version))
        except ValueError as exc:
            self._reject('weights', f'policy weights rejected: {exc}')

    def _on_budget(self, msg: Int64) -> None:
        try:
            self.robot.set_budget(msg.data)
        except ValueError as exc:
            self._reject('budget', f'step budget rejected: {exc}')

    def _srv_set_active(self, request: SetBool.Request, response: SetBool.Response
                        ) -> SetBool.Response:
        self.robot.set_active(bool(request.data))
        response.success = True
        response.message = 'active' if self.robot.state.active else 'inactive (zero command)'
        if self.robot.state.e_stopped:
            response.message += '; e-stop latched'
        return response

    def _srv_get_action(self, request: GetAction.Request, response: GetAction.Response
                        ) -> GetAction.Response:
        obs = np.asarray(request.observation, np.float32) if len(request.observation) else None
        try:
            a, command = self.robot.query(obs, bool(request.deterministic))
        except ValueError as exc:
            response.success, response.message = False, str(exc)
            return response
        response.success, response.message = True, 'ok'
        response.action = command.astype(np.float32)
        response.mean = a.mean.astype(np.float32)
        response.stddev = a.stddev.astype(np.float32)
        response.log_prob = float(a.log_prob)
        response.policy_version = int(self.robot.policy.version)
        return response

    def _on_timing(self) -> None:
        self.pub_timing.publish(conv.vector_msg(self.latency.report(self.robot.steps_seen),
                                                'p50_ms,p99_ms,samples,steps_per_s'))

    def close(self) -> None:
        """Command zero on the way out (the driver holds the last command otherwise)."""
        try:
            self.robot.shutdown()
            self.pub_cmd.wait_for_all_acked(rclpy.duration.Duration(seconds=1.0))
        except Exception as exc:  # noqa: B902 - shutdown must go on
            print(f'actor: could not send the zero command on shutdown: {exc!r}',
                  file=sys.stderr, flush=True)
        if self.cfg.latency_log:
            self.latency.save(self.cfg.latency_log)


def main(args: list[str] | None = None) -> int:
    """Console entry point ``actor``."""
    return common.run(ActorNode, 'actor', args)


if __name__ == '__main__':
    sys.exit(main())
