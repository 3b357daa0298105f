"""
Actor node: the policy server between a robot (or the bridge) and the learner.

- observes in one of two ways. Without ``task_definition`` it subscribes ``task/step`` (the
  bridge's per-step record for benchmark tasks, see bridge_node). With one (``reach``) it sees
  only what a real arm publishes: ``joint_states`` (joints matched by name to ``joints``),
  ``ee_pose`` (PoseStamped) and ``target`` (PointStamped); a joint state and an end-effector
  pose stamped within ``sync_tolerance_s`` of each other make one frame, from which the task
  definition computes observation, reward and episode end; after ``episode_steps`` frames the
  actor ends the episode and runs its reset routine (``reset.*``: call a Trigger service, or
  drive home with velocity commands; never a teleport of its own);
- samples an action (the mean in evaluation episodes), passes it through the safety layer
  (``safety.*``: velocity and position limits, rate limit; see mpo_ros.core.safety) and
  publishes the command in actuator units on the command topic (std_msgs/Float64MultiArray,
  ros2_control forward command controller style, one value per controlled joint);
- keeps the hardware safe: a stale-sensor watchdog (``safety.sensor_timeout_s``; zero or hold),
  an ``e_stop`` topic (std_msgs/Bool; true latches zero commands until false), ``~/set_active``
  (std_srvs/SetBool; false stops acting with a zero command) and a zero command on shutdown;
- records transitions with the behaviour log-probability of the pre-clip sampled action and
  publishes them as ``Trajectory`` chunks on ``trajectories`` (``chunk_length`` steps, or fewer
  at an episode end);
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
- publishes ``~/timing`` ``[p50_ms, p99_ms, samples, steps_per_s]``: step-receipt to
  command-publish latency and the step rate over the last period.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
import re
import sys
import time

from geometry_msgs.msg import PointStamped, PoseStamped
from mpo_ros import envs
from mpo_ros.core.config import opt, validate_fields, NetworkConfig
from mpo_ros.core.policy import Policy
from mpo_ros.core.safety import SafetyFilter
from mpo_ros.core.tasks import SensorFrame
from mpo_ros.ros import arm
from mpo_ros.ros import common
from mpo_ros.ros import conversions as conv
from mpo_ros.ros.bridge_node import DEFAULT_COMMAND_TOPIC
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


@dataclass
class ActorConfig:
    """Actor node parameters."""

    task: str = opt('gym:Pendulum-v1', 'task id (sizes and actuator limits come from it)')
    seed: int = opt(0, 'policy sampling seed', (0, 2 ** 31 - 1))
    actor_id: str = opt('', 'actor id in trajectories (empty: the node name)')
    command_topic: str = opt(DEFAULT_COMMAND_TOPIC, 'joint command topic (actuator units)')
    chunk_length: int = opt(32, 'transitions per Trajectory message', (1, 100_000))
    eval_every: int = opt(5000, 'training steps between evaluations (0: never)', (0, 10 ** 10))
    eval_episodes: int = opt(5, 'deterministic episodes per evaluation', (1, 1000))
    wait_for_weights: bool = opt(True, 'act only once the learner sent weights')
    throttle: bool = opt(True, "hold commands while over the learner's step budget "
                         '(lockstep bridges; false with a realtime bridge or a robot)')
    timing_period_s: float = opt(2.0, 'seconds between ~/timing messages', (0.1, 3600.0))
    task_definition: str = opt('', "actor-side task from sensor topics ('': the bridge's "
                               'task/step record)', choices=arm.TASK_DEFINITIONS)
    joints: tuple[str, ...] = opt((), 'controlled joints in command order (empty: every '
                                  'actuated joint of the task)')
    ignore_unknown_joints: bool = opt(False, 'accept joint_states with joints the task model '
                                      'does not know (otherwise rejected)')
    joint_states_topic: str = opt('joint_states', 'sensor_msgs/JointState topic')
    ee_pose_topic: str = opt('ee_pose', 'geometry_msgs/PoseStamped end-effector topic')
    target_topic: str = opt('target', 'geometry_msgs/PointStamped target topic')
    sync_tolerance_s: float = opt(0.02, 'max stamp difference of joint state and ee pose in '
                                  'one frame', (0.0, 10.0))
    episode_steps: int = opt(0, "frames per episode (0: the task's time limit)", (0, 10 ** 9))
    latency_log: str = opt('', 'on shutdown write [unix time, receipt-to-command latency s] '
                           'of every command to this .npy file (benchmarks)')

    def __post_init__(self) -> None:
        """Validate."""
        validate_fields(self)


class ActorNode(Node):
    """Policy server and trajectory recorder (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__('actor')
        torch.set_num_threads(1)
        _, cfg = declare_config(self, {'': ActorConfig, 'network.': NetworkConfig,
                                       'reach.': arm.ReachConfig, 'reset.': arm.ResetConfig,
                                       'safety.': arm.SafetyConfig})
        self.cfg: ActorConfig = cfg['']
        self.reset_cfg: arm.ResetConfig = cfg['reset.']
        self.safety_cfg: arm.SafetyConfig = cfg['safety.']
        try:
            env = envs.make(self.cfg.task, seed=self.cfg.seed)
        except envs.UnknownTaskError as exc:
            raise common.StartupError(f"invalid parameter 'task': {exc}") from exc
        self.spec = env.spec
        env.close()
        self.sensors = bool(self.cfg.task_definition)
        try:
            if self.cfg.joints and not self.sensors:
                raise ValueError('joints selects joints for a task_definition; the task/step '
                                 'path drives every actuator')
            self.joints = arm.controlled_joints(self.spec, self.cfg.joints) \
                if self.sensors else list(self.spec.joint_names)
            self.obs_dim, self.act_dim = arm.policy_dims(self.spec, self.cfg.task_definition,
                                                         self.joints)
            driven = self.joints if self.sensors else []     # [] = every actuator, in order
            self.low, self.high = arm.actuator_bounds(self.spec, driven)
            self.safety = SafetyFilter(arm.safety_limits(self.safety_cfg, self.spec, driven))
            self.home = np.asarray(self.reset_cfg.home or [0.0] * len(self.joints), float)
            if self.home.shape != (len(self.joints),):
                raise ValueError(f'reset.home has {self.home.size} values for '
                                 f'{len(self.joints)} joints')
        except ValueError as exc:
            raise common.StartupError(f'invalid parameter: {exc}') from exc
        self.definition = arm.task_definition(self.cfg.task_definition, len(self.joints),
                                              cfg['reach.']) if self.sensors else None
        self.episode_steps = self.cfg.episode_steps or self.spec.max_episode_steps or 1000
        self.known_joints = None if self.cfg.ignore_unknown_joints else \
            list(self.spec.joint_names)
        self.actor_id = self.cfg.actor_id or self.get_fully_qualified_name()
        self.policy: Policy | None = None
        if not self.cfg.wait_for_weights:
            self.policy = Policy(self.obs_dim, self.act_dim, cfg['network.'], self.cfg.seed)
        self.net_cfg: NetworkConfig = cfg['network.']
        self.pub_cmd = self.create_publisher(Float64MultiArray, self.cfg.command_topic,
                                             common.RELIABLE)
        self.pub_traj = self.create_publisher(conv.Trajectory, 'trajectories', common.RELIABLE)
        self.pub_eval = self.create_publisher(Float64, '~/eval_return', 10)
        self.pub_success = self.create_publisher(Float64, '~/eval_success', 10)
        self.pub_evaluation = self.create_publisher(Float64MultiArray, 'evaluation',
                                                    common.RELIABLE)
        self.pub_timing = self.create_publisher(Float64MultiArray, '~/timing', 10)
        if self.sensors:
            self.create_subscription(JointState, self.cfg.joint_states_topic,
                                     self._on_joint_states, common.RELIABLE)
            self.create_subscription(PoseStamped, self.cfg.ee_pose_topic, self._on_ee_pose,
                                     common.RELIABLE)
            self.create_subscription(PointStamped, self.cfg.target_topic, self._on_target,
                                     common.RELIABLE)
            self.reset_client = self.create_client(Trigger, self.reset_cfg.service) \
                if self.reset_cfg.service else None
            self.create_timer(0.5, self._on_reset_timer)
        else:
            self.create_subscription(Float64MultiArray, 'task/step', self._on_step,
                                     common.RELIABLE)
        self.create_subscription(PolicyWeights, 'learner/policy_weights', self._on_weights,
                                 common.LATCHED)
        self.create_subscription(Int64, 'learner/step_budget', self._on_budget, common.LATCHED)
        self.create_subscription(Bool, self.safety_cfg.e_stop_topic, self._on_e_stop, 10)
        self.create_service(GetAction, '~/get_action', self._srv_get_action)
        self.create_service(SetBool, '~/set_active', self._srv_set_active)
        self.create_timer(self.cfg.timing_period_s, self._on_timing)
        if self.safety_cfg.sensor_timeout_s > 0:
            self.create_timer(min(0.1, self.safety_cfg.sensor_timeout_s / 4), self._on_watchdog)
        # acting state
        self.latest: conv.TaskStep | None = None
        self.last_seq = -1
        self.last_command: Float64MultiArray | None = None
        self.last_command_values: np.ndarray | None = None
        self.last_zero_wall = 0.0
        self.pending: tuple[np.ndarray, np.ndarray, float] | None = None  # obs, raw, log_prob
        self.deferred: conv.TaskStep | None = None
        self.budget: int | None = None
        # safety state
        self.e_stopped = False
        self.active = True
        self.last_sensor: float | None = None
        self.watchdog_fired = False
        # sensor frames (task definition)
        self.js: tuple[float, np.ndarray, np.ndarray] | None = None    # stamp, q, qd
        self.ee: tuple[float, np.ndarray] | None = None
        self.target: tuple[float, np.ndarray] | None = None
        self.frame_stamp = -np.inf
        self.frame_q: np.ndarray | None = None
        self.frame_seq = 0
        self.phase = 'wait_start'          # wait_start | episode | reset | halted
        self.ep_steps = 0
        self.last_success = False
        self.last_distance = float('nan')
        self.reset_state = ''              # home | service | wait_frame
        self.reset_started = 0.0
        if self.sensors and self.reset_cfg.mode == 'home':
            # A robot starts wherever it was left: go home before the first episode.
            self.phase, self.reset_state = 'reset', 'home'     # timed from the first frame
        self.reset_stamp = np.inf
        self.reset_future = None
        self.latest_frame: SensorFrame | None = None
        # recording state
        self.env_steps = 0                 # training steps (evaluation steps not counted)
        self.episode_id = -1
        self.chunk_seq = 0
        self.chunk: dict[str, list] = self._empty_chunk([], False)
        self.ep_return = 0.0
        self.train_returns: list[float] = []
        # evaluation state
        self.evaluating = False
        self.eval_returns: list[float] = []
        self.eval_successes: list[bool] = []
        self.eval_distances: list[float] = []       # final end-effector to target distance
        self.next_eval = self.cfg.eval_every
        # timing
        self.latencies: collections.deque[float] = collections.deque(maxlen=100_000)
        self.all_latencies: list[tuple[float, float]] = []     # (unix time, latency s)
        self.window_steps, self.window_start = 0, time.monotonic()
        self._last_warn: dict[str, float] = {}
        source = (f'{self.cfg.task_definition} from {self.cfg.joint_states_topic}, '
                  f'{self.cfg.ee_pose_topic}, {self.cfg.target_topic}, joints {self.joints}'
                  if self.sensors else 'task/step')
        self.get_logger().info(
            f'{self.actor_id}: {self.spec.task}, obs {self.obs_dim} ({source}), act '
            f'{self.act_dim} on {self.resolve_topic_name(self.cfg.command_topic)}, chunk '
            f'{self.cfg.chunk_length}, eval every {self.cfg.eval_every} steps; waiting for '
            f"{'weights' if self.policy is None else 'sensors'}")

    # ------------------------------------------------------------ helpers
    def _warn(self, key: str, text: str) -> None:
        """Log a warning at most every 5 s per kind."""
        now = time.monotonic()
        if now - self._last_warn.get(key, 0.0) > 5.0:
            self.get_logger().warning(text)
            self._last_warn[key] = now

    @staticmethod
    def _empty_chunk(first_obs: list, start: bool) -> dict[str, list]:
        return {'obs': list(first_obs), 'act': [], 'rew': [], 'disc': [], 'logp': [],
                'start': start}

    def _flush(self, end: bool = False, truncated: bool = False) -> None:
        """Publish the recorded chunk (if it holds steps) and start the next from its last obs."""
        c = self.chunk
        if c['act']:
            chunk = conv.TrajectoryChunk(
                self.actor_id, max(self.episode_id, 0), self.chunk_seq,
                self.policy.version if self.policy else 0, np.stack(c['obs']),
                np.stack(c['act']), np.asarray(c['rew']), np.asarray(c['disc']),
                np.asarray(c['logp']), c['start'], end, truncated)
            msg = conv.trajectory_msg(chunk)
            msg.header.stamp = self.get_clock().now().to_msg()
            self.pub_traj.publish(msg)
            self.chunk_seq += 1
        self.chunk = self._empty_chunk(c['obs'][-1:] if not end else [], False)

    def _can_act(self) -> bool:
        if self.policy is None or self._halted():
            return False
        if self.evaluating or not self.cfg.throttle:
            return True
        # Compare the steps the learner has been sent (chunks flushed) with its budget: held
        # steps do not count, so the learner always gets enough to start and catch up.
        sent = self.env_steps - len(self.chunk['act'])
        return self.budget is not None and (self.budget < 0 or sent < self.budget)

    def _publish_command(self, values: np.ndarray) -> None:
        self.last_command_values = np.asarray(values, dtype=np.float64)
        self.last_command = conv.vector_msg(self.last_command_values)
        self.pub_cmd.publish(self.last_command)

    def _publish_zero(self) -> None:
        """Command zero velocity (and let the rate limit start from rest)."""
        self.safety.reset()
        self._publish_command(np.zeros(self.act_dim))
        self.last_zero_wall = time.monotonic()

    def _act(self, step: conv.TaskStep, received: float | None) -> None:
        a = self.policy.act(step.observation, deterministic=self.evaluating)
        command = self.low + 0.5 * (np.clip(a.action, -1.0, 1.0) + 1.0) * (self.high - self.low)
        self._publish_command(self.safety(command, self.frame_q))
        if received is not None:
            latency = time.perf_counter() - received
            self.latencies.append(latency)
            if self.cfg.latency_log:
                self.all_latencies.append((time.time(), latency))
        self.pending = (step.observation, a.raw, a.log_prob)
        self.deferred = None

    def _try_deferred(self) -> None:
        if self.deferred is not None and self._can_act():
            self._act(self.deferred, None)

    # ------------------------------------------------------------ episodes
    def _begin_episode(self, obs: np.ndarray, start: bool) -> None:
        if not self.evaluating and self.cfg.eval_every and self.env_steps >= self.next_eval \
                and self.policy is not None:
            self.evaluating, self.eval_returns = True, []
            self.eval_successes, self.eval_distances = [], []
        self.ep_return = 0.0
        self.pending = None
        if not self.evaluating:
            self.episode_id += 1
            self.chunk = self._empty_chunk([obs], start)

    def _end_episode(self, truncated: bool) -> None:
        if self.evaluating:
            self.eval_returns.append(self.ep_return)
            self.eval_successes.append(self.last_success)
            self.eval_distances.append(self.last_distance)
            if len(self.eval_returns) >= self.cfg.eval_episodes:
                self._finish_evaluation()
        else:
            self._flush(end=True, truncated=truncated)
            self.train_returns.append(self.ep_return)
        self.pending = None

    def _cut_episode(self) -> None:
        """End the running episode early (e-stop, lost sensors): bootstrap, not terminal."""
        if not self.evaluating and self.chunk['act']:
            self._flush(end=True, truncated=True)
        elif self.chunk['obs']:
            self.chunk = self._empty_chunk([], False)
        self.pending = self.deferred = None

    def _finish_evaluation(self) -> None:
        mean, std = float(np.mean(self.eval_returns)), float(np.std(self.eval_returns))
        self.pub_eval.publish(Float64(data=mean))
        self.pub_evaluation.publish(conv.vector_msg(
            [self.env_steps, mean, std, len(self.eval_returns)], 'env_steps,mean,std,episodes'))
        success = ''
        if self.sensors:
            rate = float(np.mean(self.eval_successes))
            self.pub_success.publish(Float64(data=rate))
            success = (f', success {rate:.0%}, final distance '
                       f'{float(np.mean(self.eval_distances)):.3f} m')
        recent = self.train_returns[-10:]
        self.get_logger().info(
            f'eval at {self.env_steps} steps: return {mean:.1f} ± {std:.1f} '
            f'({len(self.eval_returns)} episodes{success}); episodes {len(self.train_returns)}, '
            f"train return {np.mean(recent) if recent else float('nan'):.1f}, policy version "
            f'{self.policy.version if self.policy else 0}')
        self.evaluating = False
        while self.next_eval <= self.env_steps:
            self.next_eval += self.cfg.eval_every

    # ------------------------------------------------------------ task/step path
    def _on_step(self, msg: Float64MultiArray) -> None:
        received = time.perf_counter()
        try:
            step = conv.step_from_msg(msg, self.spec.obs_dim)
        except ValueError as exc:
            self._warn('step', f'task step rejected: {exc}')
            return
        self._sensor_alive()
        if step.sequence == self.last_seq:
            # Lockstep heartbeat: our command may have been sent before the bridge listened.
            if self.pending is not None and self.last_command is not None \
                    and self.deferred is None:
                self.pub_cmd.publish(self.last_command)
            return
        if step.sequence < self.last_seq and not step.episode_start:
            return                                          # stale
        self.last_seq = step.sequence
        self.latest = step
        if self._halted():
            self._hold_zero()
            return
        self._handle_step(step, received)

    def _handle_step(self, step: conv.TaskStep, received: float | None) -> None:
        """Record the transition that ``step`` completes and act on it."""
        self.window_steps += 1
        if step.episode_start:
            if self.pending is not None and not self.evaluating:
                self._flush(end=True, truncated=True)       # reset from outside mid-episode
            self._begin_episode(step.observation, True)
        elif self.pending is None:
            if not self.chunk['obs']:
                self._begin_episode(step.observation, False)   # joined mid-episode
            else:
                self.chunk['obs'][-1:] = [step.observation]     # realtime: stepped without us
        else:
            obs, raw, logp = self.pending
            self.ep_return += step.reward
            if not self.evaluating:
                c = self.chunk
                c['obs'].append(step.observation)
                c['act'].append(raw)
                c['rew'].append(step.reward)
                c['disc'].append(0.0 if step.terminal else 1.0)
                c['logp'].append(logp)
                self.env_steps += 1
            if step.terminal or step.truncated:
                self._end_episode(step.truncated and not step.terminal)
                return                                      # the reset state follows
            if not self.evaluating and len(self.chunk['act']) >= self.cfg.chunk_length:
                self._flush()
        if self._can_act():
            self._act(step, received)
        else:
            self.deferred, self.pending = step, None

    # ------------------------------------------------------------ sensor path
    def _on_joint_states(self, msg: JointState) -> None:
        received = time.perf_counter()
        try:
            q = conv.joint_vector(msg, self.joints, 'position', self.known_joints)
            qd = conv.joint_vector(msg, self.joints, 'velocity', self.known_joints)
        except ValueError as exc:
            self._warn('joints', f'joint state rejected: {exc}')
            return
        self.js = (conv.stamp_seconds(msg.header.stamp), q, qd)
        self._try_frame(received)

    def _on_ee_pose(self, msg: PoseStamped) -> None:
        received = time.perf_counter()
        try:
            self.ee = (conv.stamp_seconds(msg.header.stamp), conv.position_from_pose(msg))
        except ValueError as exc:
            self._warn('ee', f'end-effector pose rejected: {exc}')
            return
        self._try_frame(received)

    def _on_target(self, msg: PointStamped) -> None:
        try:
            self.target = (conv.stamp_seconds(msg.header.stamp), conv.point_from_msg(msg))
        except ValueError as exc:
            self._warn('target', f'target rejected: {exc}')

    def _try_frame(self, received: float) -> None:
        """Act once a joint state and an end-effector pose of one instant are both in."""
        if self.js is None or self.ee is None or self.target is None:
            return
        stamp, q, qd = self.js
        if abs(self.ee[0] - stamp) > self.cfg.sync_tolerance_s:
            return
        if stamp < self.frame_stamp - 1.0:
            self.get_logger().warning('sensor clock jumped back (driver restarted?): new '
                                      'episode')
            self._cut_episode()
            self.phase = 'wait_start' if self.phase != 'halted' else 'halted'
            self.frame_stamp = -np.inf
        if stamp <= self.frame_stamp:
            # Lockstep heartbeat: our command may have been sent before the bridge listened.
            if self.pending is not None and self.last_command is not None \
                    and self.deferred is None and stamp == self.frame_stamp:
                self.pub_cmd.publish(self.last_command)
            return
        self.frame_stamp = stamp
        self._sensor_alive()
        frame = SensorFrame(q, qd, self.ee[1], self.target[1])
        self.latest_frame, self.frame_q = frame, q
        self._on_frame(frame, received)

    def _on_frame(self, frame: SensorFrame, received: float) -> None:
        if self.phase == 'halted':
            self._hold_zero()
            return
        if self.phase == 'reset':
            self._reset_tick(frame)
            return
        obs = self.definition.observation(frame)
        start = self.phase == 'wait_start'
        reward, terminal, truncated = 0.0, False, False
        if start:
            self.phase, self.ep_steps = 'episode', 0
        else:
            self.ep_steps += 1
            reward = self.definition.reward(frame)
            terminal = self.definition.terminal(frame)
            truncated = not terminal and self.ep_steps >= self.episode_steps
            self.last_success = self.definition.success(frame)
            self.last_distance = self.definition.distance(frame)
        self.frame_seq += 1
        self.latest = conv.TaskStep(self.frame_seq, reward, terminal, truncated, start, obs)
        self._handle_step(self.latest, received)
        if terminal or truncated:
            self._begin_reset()

    # ------------------------------------------------------------ reset routine
    def _begin_reset(self) -> None:
        self.phase, self.reset_started = 'reset', time.monotonic()
        self.pending = self.deferred = None
        self._publish_zero()
        if self.reset_cfg.mode == 'home':
            self.reset_state = 'home'
        else:
            self._call_reset_service()

    def _call_reset_service(self) -> None:
        if self.reset_client is None:
            self._finish_reset(self.frame_stamp)
            return
        self.reset_state = 'service'
        if not self.reset_client.service_is_ready():
            self._warn('reset', f'reset service {self.reset_client.srv_name} not available; '
                       'retrying')
            self.reset_future = None
            return
        self.reset_future = self.reset_client.call_async(Trigger.Request())
        self.reset_future.add_done_callback(self._on_reset_done)

    def _on_reset_done(self, future) -> None:
        self.reset_future = None
        result = future.result()
        if result is None or not result.success:
            self._warn('reset', f"reset service failed: {getattr(result, 'message', '')}; "
                       'retrying')
            return
        # Our bridge says which stamp its reset state carries; otherwise take the next frame.
        found = re.search(r'stamp\s*[=:]?\s*([0-9.]+)', result.message)
        self._finish_reset(float(found.group(1)) - 1e-6 if found else self.frame_stamp)

    def _finish_reset(self, after_stamp: float) -> None:
        self.reset_state, self.reset_stamp = 'wait_frame', after_stamp
        frame = self.latest_frame
        if frame is not None and self.frame_stamp > after_stamp:
            self._start_from(frame)

    def _start_from(self, frame: SensorFrame) -> None:
        self.phase, self.reset_state = 'wait_start', ''
        self._on_frame(frame, None)

    def _on_reset_timer(self) -> None:
        """Retry an unavailable reset service and time out even when no frames come."""
        if self.phase != 'reset' or self.reset_state != 'service' or self.reset_future:
            return
        if time.monotonic() - self.reset_started > self.reset_cfg.timeout_s \
                and self.latest_frame is not None:
            self._warn('reset', f'reset service not done after {self.reset_cfg.timeout_s} s; '
                       'starting the episode anyway')
            self._start_from(self.latest_frame)
        else:
            self._call_reset_service()

    def _reset_tick(self, frame: SensorFrame) -> None:
        """One frame of the reset routine."""
        if not self.reset_started:
            self.reset_started = time.monotonic()
        if time.monotonic() - self.reset_started > self.reset_cfg.timeout_s:
            self._warn('reset', f'reset ({self.reset_state}) not done after '
                       f'{self.reset_cfg.timeout_s} s; starting the episode anyway')
            self._start_from(frame)
            return
        if self.reset_state == 'home':
            lim = self.safety.limits
            command, error = arm.home_command(self.home, frame.joint_position,
                                              lim.position_lower, lim.position_upper,
                                              self.reset_cfg.gain)
            if error <= self.reset_cfg.tolerance:
                self._publish_zero()
                self._call_reset_service()
            else:
                self._publish_command(self.safety(command, frame.joint_position))
        elif self.reset_state == 'service':
            if self.reset_future is None:                  # not available before: retry
                self._publish_zero()
                self._call_reset_service()
        elif self.reset_state == 'wait_frame' and self.frame_stamp > self.reset_stamp:
            self._start_from(frame)

    # ------------------------------------------------------------ safety
    def _halted(self) -> bool:
        return self.e_stopped or not self.active

    def _hold_zero(self) -> None:
        """While halted: re-assert the zero command, at most every 0.1 s."""
        if time.monotonic() - self.last_zero_wall > 0.1:
            self._publish_zero()

    def _halt(self, why: str) -> None:
        self.get_logger().warning(f'{why}: zero command; not acting until released')
        self._cut_episode()
        if self.evaluating:
            self.eval_returns.clear()
            self.eval_successes.clear()
            self.eval_distances.clear()
        self.phase = 'halted'
        self._publish_zero()

    def _release(self, why: str) -> None:
        if self._halted():
            return
        self.get_logger().info(f'{why}: acting again')
        if self.sensors:
            self._begin_reset()
        elif self.latest is not None:
            self.phase = 'wait_start'
            self._begin_episode(self.latest.observation, False)
            self.deferred = self.latest
            self._try_deferred()
        else:
            self.phase = 'wait_start'

    def _on_e_stop(self, msg: Bool) -> None:
        if msg.data and not self.e_stopped:
            self.e_stopped = True
            self._halt('e-stop')
        elif not msg.data and self.e_stopped:
            self.e_stopped = False
            self._release('e-stop released')

    def _srv_set_active(self, request: SetBool.Request, response: SetBool.Response
                        ) -> SetBool.Response:
        if not request.data and self.active:
            self.active = False
            self._halt('deactivated')
        elif request.data and not self.active:
            self.active = True
            self._release('activated')
        response.success = True
        response.message = 'active' if self.active else 'inactive (zero command)'
        if self.e_stopped:
            response.message += '; e-stop latched'
        return response

    def _sensor_alive(self) -> None:
        self.last_sensor = time.monotonic()
        if self.watchdog_fired:
            self.watchdog_fired = False
            self.get_logger().info('sensor data back')

    def _on_watchdog(self) -> None:
        """Stale-sensor watchdog: a command must not outlive the data it was computed from."""
        timeout = self.safety_cfg.sensor_timeout_s
        if self.watchdog_fired or self.last_sensor is None or \
                time.monotonic() - self.last_sensor <= timeout:
            return
        if self.deferred is not None or self.last_command_values is None \
                or not np.any(self.last_command_values):
            return      # we hold the step ourselves (step budget), or the arm is at rest
        self.watchdog_fired = True
        if self.safety_cfg.timeout_action == 'zero':
            self._publish_zero()
        self.get_logger().warning(
            f'no sensor data for {timeout} s: '
            f"{'zero command' if self.safety_cfg.timeout_action == 'zero' else 'holding'}")
        self._cut_episode()

    # ------------------------------------------------------------ learner topics
    def _on_weights(self, msg: PolicyWeights) -> None:
        try:
            flat = conv.weights_from_msg(msg)
            obs_dim, act_dim, net = conv.network_from_json(msg.config_json)
            if (obs_dim, act_dim) != (self.obs_dim, self.act_dim):
                raise ValueError(f'weights are for obs {obs_dim} act {act_dim}, the actor has '
                                 f'obs {self.obs_dim} act {self.act_dim}')
            current = self.policy.version if self.policy is not None else -1
            if msg.version <= current and msg.version != 0:
                raise ValueError(f'version {msg.version} is not newer than {current}')
            policy = self.policy
            if policy is None or net != self.net_cfg:
                policy = Policy(obs_dim, act_dim, net, self.cfg.seed)
            policy.load_flat(flat, int(msg.version))
        except ValueError as exc:
            self._warn('weights', f'policy weights rejected: {exc}')
            return
        first = self.policy is None
        self.policy, self.net_cfg = policy, net
        if first:
            self.get_logger().info(f'first policy weights: version {msg.version}')
        self._try_deferred()

    def _on_budget(self, msg: Int64) -> None:
        self.budget = int(msg.data)
        self._try_deferred()

    def _on_timing(self) -> None:
        now = time.monotonic()
        lat = np.asarray(self.latencies) * 1e3
        self.latencies.clear()
        rate = self.window_steps / max(now - self.window_start, 1e-9)
        self.window_steps, self.window_start = 0, now
        p50, p99 = (float(np.percentile(lat, 50)), float(np.percentile(lat, 99))) \
            if lat.size else (float('nan'), float('nan'))
        self.pub_timing.publish(conv.vector_msg([p50, p99, lat.size, rate],
                                                'p50_ms,p99_ms,samples,steps_per_s'))

    def _srv_get_action(self, request: GetAction.Request, response: GetAction.Response
                        ) -> GetAction.Response:
        response.success = False
        if self.policy is None:
            response.message = 'no policy weights yet'
            return response
        if len(request.observation) == 0:
            if self.latest is None:
                response.message = 'no sensor data yet'
                return response
            obs = self.latest.observation
        else:
            obs = np.asarray(request.observation, dtype=np.float32)
        try:
            a = self.policy.act(obs, deterministic=bool(request.deterministic))
        except ValueError as exc:
            response.message = str(exc)
            return response
        response.success = True
        response.message = 'ok'
        response.action = (self.low + 0.5 * (np.clip(a.action, -1.0, 1.0) + 1.0)
                           * (self.high - self.low)).astype(np.float32)
        response.mean = a.mean.astype(np.float32)
        response.stddev = a.stddev.astype(np.float32)
        response.log_prob = float(a.log_prob)
        response.policy_version = int(self.policy.version)
        return response

    def close(self) -> None:
        """Command zero on the way out (the driver holds the last command otherwise)."""
        try:
            self._publish_zero()
            self.pub_cmd.wait_for_all_acked(rclpy.duration.Duration(seconds=1.0))
        except Exception as exc:  # noqa: B902 - shutdown must go on
            print(f'actor: could not send the zero command on shutdown: {exc!r}',
                  file=sys.stderr, flush=True)
        if self.cfg.latency_log:
            np.save(self.cfg.latency_log, np.asarray(self.all_latencies).reshape(-1, 2))


def main(args: list[str] | None = None) -> int:
    """Console entry point ``actor``."""
    return common.run(ActorNode, 'actor', args)


if __name__ == '__main__':
    sys.exit(main())
