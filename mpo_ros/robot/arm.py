"""
Configuration of the actor and its robot side, shared with the learner.

Which joints the policy drives, what it observes (and so the policy's sizes, which the learner
must agree on), how episodes reset and what the safety layer allows.

Plain Python and numpy (no rclpy), so the learner, the launchers and tests can import it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpo_ros.core.config import opt, validate_fields
from mpo_ros.envs import EnvSpec
from mpo_ros.robot.safety import SafetyLimits
from mpo_ros.robot.tasks import make_task_definition, ReachTask, TASK_DEFINITIONS
import numpy as np

# Values of the ``task_definition`` parameter: '' (the bridge's task/step record) or a key of
# tasks.TASK_DEFINITIONS, where the definitions are listed.
DEFINITION_CHOICES = ('', *TASK_DEFINITIONS)

# The forward command controller topic of a ros2_control velocity interface.
DEFAULT_COMMAND_TOPIC = 'joint_velocity_controller/commands'

COMMAND_IN_OBSERVATION_HELP = (
    'append the previous executed command (normalised to [-1, 1]) to the observation; needed '
    'with safety.max_delta > 0, whose rate limit makes the executed action depend on it. Set '
    'it alike on actor and learner (it changes the observation size)')


@dataclass
class ReachConfig:
    """Reward of the ``reach`` task definition (defaults: dm_control's Jaco reward)."""

    radius: float = opt(0.05, 'success radius around the target (m)', (0.0, 10.0))
    margin: float = opt(0.05, 'distance beyond the radius where the reward falls to 0.1 (m); '
                        'larger shapes the reward', (0.0, 100.0))

    def __post_init__(self) -> None:
        """Validate."""
        validate_fields(self)


@dataclass
class ResetConfig:
    """How the actor starts a new episode when it decides the last one is over."""

    mode: str = opt('service', 'service: call reset.service; home: drive the joints to '
                    'reset.home with velocity commands (then call reset.service if set)',
                    choices=('service', 'home'))
    service: str = opt('bridge/reset', 'std_srvs/Trigger service to call (empty: none)')
    home: tuple[float, ...] = opt((), 'home position per controlled joint (rad; empty: zeros)')
    tolerance: float = opt(0.05, 'home reached when every joint is this close (rad)',
                           (1e-6, 10.0))
    gain: float = opt(1.0, 'home routine: velocity command per rad of error (1/s)',
                      (1e-3, 100.0))
    timeout_s: float = opt(30.0, 'give up a reset after this long and start anyway',
                           (0.1, 1e6))

    def __post_init__(self) -> None:
        """Validate."""
        validate_fields(self)


@dataclass
class SafetyConfig:
    """Actor safety layer (see :mod:`mpo_ros.robot.safety`)."""

    max_velocity: tuple[float, ...] = opt((), 'speed limit per controlled joint (empty: the '
                                          "task's actuator limits)", (1e-9, 1e9))
    position_lower: tuple[float, ...] = opt((), 'lower position limit per controlled joint '
                                            "(empty: the model's joint ranges)")
    position_upper: tuple[float, ...] = opt((), 'upper position limit per controlled joint '
                                            "(empty: the model's joint ranges)")
    position_margin: float = opt(0.05, 'stop motion towards a position limit this close to it',
                                 (0.0, 10.0))
    max_delta: float = opt(0.0, 'max command change per step (actuator units; 0: off)',
                           (0.0, 1e9))
    sensor_timeout_s: float = opt(1.0, 'stale-sensor watchdog: act after this long without '
                                  'sensor data (0: off)', (0.0, 1e6))
    timeout_action: str = opt('zero', 'on sensor timeout: zero (publish a zero command) or '
                              'hold (publish nothing; the driver holds the last command)',
                              choices=('zero', 'hold'))
    e_stop_topic: str = opt('e_stop', 'std_msgs/Bool: true latches zero commands until false')

    def __post_init__(self) -> None:
        """Validate."""
        validate_fields(self)


@dataclass
class ActorConfig:
    """Actor node parameters (the robot layer reads most of them; see actor_node)."""

    task: str = opt('gym:Pendulum-v1', 'task id (sizes and actuator limits come from it)')
    seed: int = opt(0, 'policy sampling seed', (0, 2 ** 31 - 1))
    actor_id: str = opt('', 'actor id in trajectories (empty: the node name)')
    command_topic: str = opt(DEFAULT_COMMAND_TOPIC, 'joint command topic (actuator units)')
    chunk_length: int = opt(32, 'transitions per Trajectory message (at most the '
                            "learner's streams.max_chunk_steps)", (1, 100_000))
    eval_every: int = opt(5000, 'training steps between evaluations (0: never)', (0, 10 ** 10))
    eval_episodes: int = opt(5, 'deterministic episodes per evaluation', (1, 1000))
    wait_for_weights: bool = opt(True, 'act only once the learner sent weights')
    throttle: bool = opt(True, "hold commands while over the learner's step budget "
                         '(lockstep bridges; false with a realtime bridge or a robot)')
    timing_period_s: float = opt(2.0, 'seconds between ~/timing messages', (0.1, 3600.0))
    task_definition: str = opt('', "actor-side task from sensor topics ('': the bridge's "
                               'task/step record)', choices=DEFINITION_CHOICES)
    joints: tuple[str, ...] = opt((), 'controlled joints in command order (empty: every '
                                  'actuated joint of the task)')
    command_in_observation: bool = opt(False, COMMAND_IN_OBSERVATION_HELP)
    ignore_unknown_joints: bool = opt(False, 'accept joint_states with joints the task model '
                                      'does not know (otherwise rejected)')
    joint_states_topic: str = opt('joint_states', 'sensor_msgs/JointState topic')
    ee_pose_topic: str = opt('ee_pose', 'geometry_msgs/PoseStamped end-effector topic')
    target_topic: str = opt('target', 'geometry_msgs/PointStamped target topic')
    sync_tolerance_s: float = opt(0.02, 'max stamp difference of joint state and ee pose in '
                                  'one frame', (0.0, 10.0))
    episode_steps: int = opt(0, "frames per episode (0: the task's time limit)", (0, 10 ** 9))
    max_sequence_jump: int = opt(1000, 'task/step: a sequence number this far beyond the last '
                                 'one is ignored unless 3 steps in a row agree (a forged one '
                                 'cannot stall the actor)', (1, 2 ** 53))
    latency_log: str = opt('', 'on shutdown write [unix time, receipt-to-command latency s] '
                           'of every command to this .npy file (benchmarks)')

    def __post_init__(self) -> None:
        """Validate."""
        validate_fields(self)


def controlled_joints(spec: EnvSpec, joints: tuple[str, ...] | list[str]) -> list[str]:
    """Return the joints the policy drives: ``joints`` checked against the task, or all."""
    names = list(spec.joint_names)
    wanted = list(joints) or names
    if not wanted:
        raise ValueError(f'{spec.task} has no named joints; set joints')
    unknown = [n for n in wanted if n not in names]
    if names and unknown:
        raise ValueError(f'joints {unknown} are not actuated joints of {spec.task} ({names})')
    if len(set(wanted)) != len(wanted):
        raise ValueError(f'joints {wanted} has duplicates')
    return wanted


def task_definition(name: str, num_joints: int, reach: ReachConfig) -> ReachTask:
    """Build the actor-side task definition ``name``."""
    return make_task_definition(name, num_joints, radius=reach.radius, margin=reach.margin)


def policy_dims(spec: EnvSpec, definition: str, joints: tuple[str, ...] | list[str],
                command_in_observation: bool = False) -> tuple[int, int]:
    """
    Return (observation size, action size) of the policy.

    Without a task definition they are the task's own; with one, the observation is the
    definition's and the action has one value per controlled joint. With
    ``command_in_observation`` the observation ends with the previous command (one value per
    action dimension), which keeps transitions Markov under a rate limit.
    """
    if not definition:
        obs_dim, act_dim = spec.obs_dim, spec.act_dim
    else:
        act_dim = len(controlled_joints(spec, joints))
        obs_dim = make_task_definition(definition, act_dim).obs_dim
    return obs_dim + (act_dim if command_in_observation else 0), act_dim


def actuator_bounds(spec: EnvSpec, joints: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Actuator (low, high) of the controlled joints, in their order."""
    low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)
    if not spec.joint_names or not joints:
        return low, high
    index = [list(spec.joint_names).index(n) for n in joints]
    return low[index], high[index]


def safety_limits(cfg: SafetyConfig, spec: EnvSpec, joints: list[str]) -> SafetyLimits:
    """Per-joint limits from the configuration, defaulting to the task's model."""
    low, high = actuator_bounds(spec, joints)
    n = len(low)

    def per_joint(values: tuple[float, ...], default: np.ndarray, name: str) -> np.ndarray:
        if not values:
            return default
        if len(values) != n:
            raise ValueError(f'safety.{name} has {len(values)} values for {n} joints')
        return np.asarray(values, dtype=np.float64)

    speed = np.maximum(np.abs(low), np.abs(high))
    ranges = dict(zip(spec.joint_names, spec.joint_ranges)) if spec.joint_ranges else {}
    lower = np.array([ranges.get(j, (-np.inf, np.inf))[0] for j in joints] if joints else
                     np.full(n, -np.inf), dtype=np.float64)
    upper = np.array([ranges.get(j, (-np.inf, np.inf))[1] for j in joints] if joints else
                     np.full(n, np.inf), dtype=np.float64)
    return SafetyLimits(max_velocity=per_joint(cfg.max_velocity, speed, 'max_velocity'),
                        position_lower=per_joint(cfg.position_lower, lower, 'position_lower'),
                        position_upper=per_joint(cfg.position_upper, upper, 'position_upper'),
                        position_margin=cfg.position_margin, max_delta=cfg.max_delta)


def home_command(home: np.ndarray, position: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                 gain: float) -> tuple[np.ndarray, float]:
    """
    Velocity command towards ``home`` and the largest remaining error.

    Unlimited (continuous) joints take the short way round.
    """
    error = home - position
    wrap = ~(np.isfinite(lower) & np.isfinite(upper))
    error = np.where(wrap, (error + np.pi) % (2 * np.pi) - np.pi, error)
    return gain * error, float(np.max(np.abs(error))) if error.size else 0.0
