"""
Bridge node: a simulated task standing in for a robot driver.

Runs any task of :mod:`mpo_ros.envs` and speaks what a ros2_control robot speaks:

- publishes ``joint_states`` (sensor_msgs/JointState; actuated joints by name, positions and
  velocities from MuJoCo, the held command as effort; only for tasks with joints); for arm
  reach tasks (``manip:reach_*``) also ``target`` (geometry_msgs/PointStamped) and ``ee_pose``
  (geometry_msgs/PoseStamped, the tool centre point: what tf gives on hardware), all in frame
  ``frame_id`` and stamped with the same sim time; ``task/observation``
  (std_msgs/Float64MultiArray, the task's observation vector), ``task/step``
  (std_msgs/Float64MultiArray ``[sequence, reward, terminal, truncated, episode_start, obs...]``,
  the per-step record a learning actor needs; benchmark rewards have no robot equivalent) and
  ``/clock`` (sim time: control_dt per step, never reset);
- subscribes the command topic (std_msgs/Float64MultiArray in actuator units, one value per
  joint of ``command_joints`` in that order, as a ros2_control forward command controller
  with that ``joints`` list takes it; actuators not listed get zero);
- serves ``~/reset`` (std_srvs/Trigger), ``~/pause`` (std_srvs/SetBool) and ``~/step``
  (std_srvs/Trigger, one step with the held command while paused).

Modes: ``lockstep`` steps physics once per received command, then publishes the new state
(re-publishing the current state every ``heartbeat_s`` until a command comes, so a late actor
still finds it); ``realtime`` steps on a timer at control_dt / realtime_factor, holding the last
command, zeroing it after ``command_timeout_s`` without commands. An episode that ends is
published (terminal/truncated set) and followed at once by the reset state
(``episode_start`` set). With ``auto_reset`` false the bridge behaves like a robot: no time
limit, no reset unless ``~/reset`` is called (the actor's reset routine decides). Sim time
advances by control_dt per step and per reset, so every published state has its own stamp.
"""

from __future__ import annotations

from dataclasses import dataclass
import sys
import time

from builtin_interfaces.msg import Time
from geometry_msgs.msg import PointStamped, PoseStamped
from mpo_ros import envs
from mpo_ros.envs.dmc_env import arm_sites
from mpo_ros.core.config import opt, validate_fields
from mpo_ros.robot.arm import DEFAULT_COMMAND_TOPIC
from mpo_ros.ros import common
from mpo_ros.ros import conversions as conv
from mpo_ros.ros.parameters import declare_config
import numpy as np
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger


@dataclass
class BridgeConfig:
    """Bridge node parameters."""

    task: str = opt('gym:Pendulum-v1', 'task id: gym:<Id>, dmc:<domain>-<task>, manip:<name>')
    seed: int = opt(0, 'environment seed', (0, 2 ** 31 - 1))
    mode: str = opt('lockstep', 'lockstep: step per command; realtime: fixed rate',
                    choices=('lockstep', 'realtime'))
    command_topic: str = opt(DEFAULT_COMMAND_TOPIC,
                             'joint command topic (Float64MultiArray, actuator units)')
    realtime_factor: float = opt(1.0, 'realtime mode: sim seconds per wall second', (1e-3, 1e3))
    command_timeout_s: float = opt(0.5, 'realtime mode: zero the command after this long '
                                   'without one (0: hold forever)', (0.0, 1e6))
    heartbeat_s: float = opt(1.0, 'lockstep mode: re-publish the state this often while no '
                             'command arrives', (0.01, 1e6))
    command_joints: tuple[str, ...] = opt((), 'joints the command vector drives, in order (empty: '
                                          'every actuated joint in model order)')
    auto_reset: bool = opt(True, 'reset when an episode ends (false: no time limit, reset only '
                           'through ~/reset, as a robot)')
    frame_id: str = opt('world', 'frame of target and ee_pose')

    def __post_init__(self) -> None:
        """Validate."""
        validate_fields(self)


def _stamp(seconds: float) -> Time:
    """Sim time as a stamp; rounding to whole nanoseconds first, so 2.9999999999 gives 3 s."""
    sec, nanosec = divmod(int(round(seconds * 1e9)), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def joint_reader(env: envs.Env):
    """
    Return a callable giving (qpos, qvel) of the actuated joints, or None without MuJoCo.

    The MuJoCo data is looked up on every call: dm_control's composer environments may build
    a new Physics at reset, and a reader holding the old one would report a frozen arm.
    """
    inner = getattr(env, 'env', None)

    def model_data():
        physics = getattr(inner, 'physics', None)
        if physics is not None:                      # dm_control
            return physics.model, physics.data
        unwrapped = getattr(inner, 'unwrapped', None)   # gymnasium MuJoCo
        return getattr(unwrapped, 'model', None), getattr(unwrapped, 'data', None)

    model, data = model_data()
    if model is None or data is None or not env.spec.joint_names:
        return None
    joints = np.asarray(model.actuator_trnid)[:, 0]
    qadr = np.asarray(model.jnt_qposadr)[joints]
    vadr = np.asarray(model.jnt_dofadr)[joints]

    def read() -> tuple[np.ndarray, np.ndarray]:
        data = model_data()[1]
        return np.array(data.qpos)[qadr], np.array(data.qvel)[vadr]
    return read


class BridgeNode(Node):
    """Simulator bridge (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__('bridge')
        _, cfg = declare_config(self, {'': BridgeConfig})
        self.cfg: BridgeConfig = cfg['']
        try:
            self.env = envs.make(self.cfg.task, seed=self.cfg.seed)
        except envs.UnknownTaskError as exc:
            raise common.StartupError(f"invalid parameter 'task': {exc}") from exc
        self.spec = self.env.spec
        if not self.cfg.auto_reset:
            self.env.disable_time_limit()
        self.low = np.asarray(self.spec.action_low)
        self.high = np.asarray(self.spec.action_high)
        names = list(self.spec.joint_names)
        wanted = list(self.cfg.command_joints) or names
        unknown = [n for n in wanted if n not in names]
        if unknown or len(set(wanted)) != len(wanted):
            raise common.StartupError(
                f"invalid parameter 'command_joints': {wanted} must be distinct actuated "
                f'joints of {self.cfg.task} ({names})')
        self.command_index = np.array([names.index(n) for n in wanted] if names else
                                      range(self.spec.act_dim), dtype=int)
        self.read_joints = joint_reader(self.env)
        self.read_sites = arm_sites(self.env) if self.cfg.task.startswith('manip:') else None
        self.pub_joints = self.create_publisher(JointState, 'joint_states', 10) \
            if self.read_joints else None
        self.pub_target = self.create_publisher(PointStamped, 'target', 10) \
            if self.read_sites else None
        self.pub_ee = self.create_publisher(PoseStamped, 'ee_pose', 10) \
            if self.read_sites else None
        self.pub_obs = self.create_publisher(Float64MultiArray, 'task/observation', 10)
        self.pub_step = self.create_publisher(Float64MultiArray, 'task/step', common.RELIABLE)
        self.pub_clock = self.create_publisher(Clock, '/clock', 10)
        self.create_subscription(Float64MultiArray, self.cfg.command_topic, self._on_command,
                                 common.RELIABLE)
        self.create_service(Trigger, '~/reset', self._srv_reset)
        self.create_service(SetBool, '~/pause', self._srv_pause)
        self.create_service(Trigger, '~/step', self._srv_step)
        self.sim_time = 0.0
        self.sequence = 0
        self.steps = 0
        self.paused = False
        self.zero_command = np.clip(np.zeros(self.spec.act_dim), self.low, self.high)
        self.command = self.zero_command.copy()               # actuator units, every actuator
        self.last_command_wall = time.monotonic()
        self.last_publish_wall = time.monotonic()
        self.awaiting_command = True
        self._last_warn = 0.0
        self._reset()
        if self.cfg.mode == 'realtime':
            period = self.spec.control_dt / self.cfg.realtime_factor
            self.create_timer(period, self._on_tick)
        else:
            self.create_timer(min(self.cfg.heartbeat_s, 0.25), self._on_heartbeat)
        self.get_logger().info(
            f'{self.cfg.task} in {self.cfg.mode} mode: obs {self.spec.obs_dim}, act '
            f'{self.spec.act_dim}, joints {list(self.spec.joint_names)}, control_dt '
            f'{self.spec.control_dt}; commands on '
            f'{self.resolve_topic_name(self.cfg.command_topic)}')

    # ------------------------------------------------------------ physics
    def _normalise(self, command: np.ndarray) -> np.ndarray:
        span = np.where(self.high > self.low, self.high - self.low, 1.0)
        return 2.0 * (command - self.low) / span - 1.0

    def _publish(self, step: conv.TaskStep) -> None:
        stamp = _stamp(self.sim_time)
        self.pub_clock.publish(Clock(clock=stamp))
        if self.read_sites is not None:
            ee, quat, target = self.read_sites()
            msg = conv.pose_msg(ee, quat, self.cfg.frame_id)
            msg.header.stamp = stamp
            self.pub_ee.publish(msg)
            msg = conv.point_msg(target, self.cfg.frame_id)
            msg.header.stamp = stamp
            self.pub_target.publish(msg)
        if self.pub_joints is not None:
            pos, vel = self.read_joints()
            msg = conv.joint_state_msg(self.spec.joint_names, pos, vel, self.command)
            msg.header.stamp = stamp
            self.pub_joints.publish(msg)
        self.pub_obs.publish(conv.vector_msg(step.observation, 'observation'))
        self.pub_step.publish(conv.step_msg(step))
        self.last_step = step
        self.last_publish_wall = time.monotonic()

    def _reset(self) -> None:
        if self.steps or self.sequence:
            self.sim_time += self.spec.control_dt     # a reset takes a control period
        obs = self.env.reset()
        self._publish(conv.TaskStep(self.sequence, 0.0, False, False, True, obs))

    def _step(self) -> None:
        """Advance physics one control step with the held command, publish, auto-reset."""
        result = self.env.step(self._normalise(self.command))
        self.sim_time += self.spec.control_dt
        self.sequence += 1
        self.steps += 1
        self._publish(conv.TaskStep(self.sequence, result.reward, result.terminal,
                                    result.truncated, False, result.observation))
        if (result.terminal or result.truncated) and self.cfg.auto_reset:
            self.sequence += 1
            self._reset()

    # ------------------------------------------------------------ callbacks
    def _warn(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last_warn > 5.0:
            self.get_logger().warning(text)
            self._last_warn = now

    def _on_command(self, msg: Float64MultiArray) -> None:
        try:
            command = conv.vector_from_msg(msg, len(self.command_index), 'command')
        except ValueError as exc:
            self._warn(f'command rejected: {exc}')
            return
        full = self.zero_command.copy()
        full[self.command_index] = command
        self.command = np.clip(full, self.low, self.high)
        self.last_command_wall = time.monotonic()
        if self.cfg.mode == 'lockstep' and not self.paused:
            self._step()

    def _on_heartbeat(self) -> None:
        """Lockstep: re-send the current state if no command followed it (late subscriber)."""
        if not self.paused and time.monotonic() - self.last_publish_wall > self.cfg.heartbeat_s:
            self._publish(self.last_step)

    def _on_tick(self) -> None:
        if self.paused:
            return
        timeout = self.cfg.command_timeout_s
        if timeout > 0 and time.monotonic() - self.last_command_wall > timeout:
            self.command = self.zero_command.copy()
        self._step()

    def _srv_reset(self, request: Trigger.Request, response: Trigger.Response
                   ) -> Trigger.Response:
        self.sequence += 1
        self._reset()
        response.success = True
        response.message = f'reset; sequence {self.sequence}; stamp {self.sim_time:.9f}'
        return response

    def _srv_pause(self, request: SetBool.Request, response: SetBool.Response
                   ) -> SetBool.Response:
        self.paused = bool(request.data)
        response.success, response.message = True, 'paused' if self.paused else 'running'
        return response

    def _srv_step(self, request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        if not self.paused:
            response.success, response.message = False, 'step needs a paused bridge'
            return response
        self._step()
        response.success, response.message = True, f'stepped; sequence {self.sequence}'
        return response

    def close(self) -> None:
        """Release the simulator."""
        self.env.close()


def main(args: list[str] | None = None) -> int:
    """Console entry point ``bridge``."""
    return common.run(BridgeNode, 'bridge', args)


if __name__ == '__main__':
    sys.exit(main())
