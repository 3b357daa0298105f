"""
Message <-> numpy conversions, the only place message layouts are interpreted.

Every ``*_from_msg`` function validates what arrived (names, sizes, finiteness, magnitudes
against :class:`~mpo_ros.core.config.InputLimits`, integer ranges, checksums, bounded JSON) and
raises ValueError with a reason on any defect, so a node can log the reason and drop the
message instead of storing garbage or crashing. Nothing here spins or touches a node.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Sequence
import zlib

from mpo_ros.core.config import InputLimits, NetworkConfig
from mpo_ros.core.policy import FlatWeights
from mpo_ros.core.streams import TrajectoryChunk
from mpo_ros.robot.episode import TaskStep
from mpo_ros_interfaces.msg import PolicyWeights, Trajectory
import numpy as np
from geometry_msgs.msg import PointStamped, PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension

# Layout of the bridge's ``task/step`` message (std_msgs/Float64MultiArray):
#   data = [sequence, reward, terminal, truncated, episode_start, obs_0 .. obs_{O-1}]
STEP_HEADER = ('sequence', 'reward', 'terminal', 'truncated', 'episode_start')

# Integers carried in float64 are exact up to 2**53; sequence numbers beyond are refused.
MAX_EXACT_INTEGER = 2 ** 53
# Plausible ranges of the integers of an 'evaluation' message.
MAX_EVAL_STEPS = 10 ** 15
MAX_EVAL_EPISODES = 10 ** 6
# Trajectory.actor_id: a node name, not a payload.
MAX_ACTOR_ID = 256
# PolicyWeights.config_json: a small architecture description.
MAX_JSON_BYTES = 65536
MAX_JSON_DEPTH = 8
MAX_DIM = 10 ** 6                      # obs_dim / act_dim in config_json
MAX_TENSORS = 10_000                   # entries of a PolicyWeights layout
MAX_RANK = 8


def _finite(name: str, x: np.ndarray, bound: float | None = None) -> np.ndarray:
    """Return ``x`` if every entry is finite (and ``|x| <= bound``), else raise ValueError."""
    if not np.isfinite(x).all():
        raise ValueError(f'{name} contains NaN or inf')
    if bound is not None and x.size and float(np.max(np.abs(x))) > bound:
        raise ValueError(f'{name} has |value| {float(np.max(np.abs(x))):.3g} above the limit '
                         f'{bound:g}')
    return x


def _integer(name: str, value: float, low: int, high: int) -> int:
    """Return ``value`` as an int if it is a whole number in [low, high], else ValueError."""
    if not (math.isfinite(value) and value == int(value) and low <= value <= high):
        raise ValueError(f'{name} {float(value)!r} is not an integer in [{low}, {high}]')
    return int(value)


# ---------------------------------------------------------------- joints and commands
def joint_vector(msg: JointState, joint_names: Sequence[str], field: str = 'position',
                 known: Sequence[str] | None = None, bound: float | None = None
                 ) -> np.ndarray:
    """
    Return ``msg.<field>`` reordered to ``joint_names``, matched by name (never by index).

    The message may list joints in any order and may carry extra joints only if they are in
    ``known`` (default: ``joint_names``; None-like empty means only those): an unknown or
    missing name, a duplicated name, a length mismatch or a NaN / inf value (or one above
    ``bound``) in the wanted joints raise ValueError.
    """
    names = list(msg.name)
    values = np.asarray(getattr(msg, field), dtype=np.float64)
    if values.shape != (len(names),):
        raise ValueError(f'joint_states: {len(names)} names but {values.size} {field} values')
    if len(set(names)) != len(names):
        raise ValueError('joint_states: duplicated joint names')
    unknown = sorted(set(names) - set(joint_names) - set(known or ()))
    if unknown:
        raise ValueError(f'joint_states: unknown joints {unknown}')
    missing = [n for n in joint_names if n not in names]
    if missing:
        raise ValueError(f'joint_states: missing joints {missing}')
    index = {n: i for i, n in enumerate(names)}
    return _finite(f'joint_states.{field}', values[[index[n] for n in joint_names]], bound)


def joint_state_msg(joint_names: Sequence[str], position: np.ndarray, velocity: np.ndarray,
                    effort: np.ndarray | None = None) -> JointState:
    """Build a JointState (the caller sets the header stamp)."""
    msg = JointState()
    msg.name = list(joint_names)
    msg.position = np.asarray(position, dtype=np.float64)
    msg.velocity = np.asarray(velocity, dtype=np.float64)
    if effort is not None:
        msg.effort = np.asarray(effort, dtype=np.float64)
    return msg


def vector_msg(values: np.ndarray, label: str = '') -> Float64MultiArray:
    """Wrap a 1-D vector (a joint command, an observation) in a Float64MultiArray."""
    values = np.asarray(values, dtype=np.float64).ravel()
    msg = Float64MultiArray()
    if label:
        msg.layout.dim = [MultiArrayDimension(label=label, size=values.size,
                                              stride=values.size)]
    msg.data = values
    return msg


def vector_from_msg(msg: Float64MultiArray, size: int, what: str = 'command',
                    bound: float | None = None) -> np.ndarray:
    """Return the vector in ``msg``; wrong length, NaN / inf or ``|x| > bound`` raise."""
    values = np.asarray(msg.data, dtype=np.float64)
    if values.shape != (size,):
        raise ValueError(f'{what} has {values.size} values, expected {size}')
    return _finite(what, values, bound)


def evaluation_from_msg(msg: Float64MultiArray, max_return: float
                        ) -> tuple[int, float, float, int]:
    """
    Decode an ``evaluation`` message ``[env_steps, mean, std, episodes]``.

    ``env_steps`` must be an integer in [0, 10^15], ``episodes`` one in [1, 10^6], ``|mean|``
    and ``std`` (>= 0) at most ``max_return``: anything else raises ValueError, so no absurd
    row reaches progress.csv or the plot.
    """
    steps, mean, std, episodes = vector_from_msg(msg, 4, 'evaluation')
    if abs(mean) > max_return or not 0.0 <= std <= max_return:
        raise ValueError(f'evaluation return {mean:.3g} ± {std:.3g} outside the limit '
                         f'{max_return:g} (std must be >= 0)')
    return (_integer('evaluation env_steps', steps, 0, MAX_EVAL_STEPS), float(mean),
            float(std), _integer('evaluation episodes', episodes, 1, MAX_EVAL_EPISODES))


# ---------------------------------------------------------------- geometry
def point_msg(position: np.ndarray, frame_id: str) -> PointStamped:
    """Build a PointStamped (the caller sets the stamp)."""
    msg = PointStamped()
    msg.header.frame_id = frame_id
    msg.point.x, msg.point.y, msg.point.z = (float(v) for v in position)
    return msg


def pose_msg(position: np.ndarray, quat_wxyz: np.ndarray, frame_id: str) -> PoseStamped:
    """Build a PoseStamped from a position and a (w, x, y, z) quaternion."""
    msg = PoseStamped()
    msg.header.frame_id = frame_id
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in position)
    q.w, q.x, q.y, q.z = (float(v) for v in quat_wxyz)
    return msg


def point_from_msg(msg: PointStamped, what: str = 'target', bound: float | None = None
                   ) -> np.ndarray:
    """Return the point as a 3-vector; NaN / inf or a coordinate above ``bound`` raise."""
    return _finite(what, np.array([msg.point.x, msg.point.y, msg.point.z], dtype=np.float64),
                   bound)


def position_from_pose(msg: PoseStamped, what: str = 'ee_pose', bound: float | None = None
                       ) -> np.ndarray:
    """Return the pose's position as a 3-vector; NaN / inf or above ``bound`` raise."""
    p = msg.pose.position
    return _finite(what, np.array([p.x, p.y, p.z], dtype=np.float64), bound)


def stamp_seconds(stamp) -> float:
    """Return a builtin_interfaces/Time as float seconds."""
    return stamp.sec + 1e-9 * stamp.nanosec


# ---------------------------------------------------------------- task steps
def step_msg(step: TaskStep) -> Float64MultiArray:
    """Encode a bridge step (layout labels document the fields for ``ros2 topic echo``)."""
    obs = np.asarray(step.observation, dtype=np.float64).ravel()
    msg = Float64MultiArray()
    msg.layout.dim = [MultiArrayDimension(label=','.join(STEP_HEADER), size=len(STEP_HEADER),
                                          stride=len(STEP_HEADER) + obs.size),
                      MultiArrayDimension(label='observation', size=obs.size, stride=obs.size)]
    head = [float(step.sequence), float(step.reward), float(step.terminal),
            float(step.truncated), float(step.episode_start)]
    msg.data = np.concatenate([np.asarray(head), obs])
    return msg


def step_from_msg(msg: Float64MultiArray, obs_dim: int, limits: InputLimits | None = None
                  ) -> TaskStep:
    """
    Decode ``task/step``; ValueError on any defect.

    Wrong size, NaN / inf, an observation or reward beyond ``limits``, a sequence that is not
    an integer in [0, 2^53] or flags other than 0 / 1 are refused.
    """
    limits = limits or InputLimits()
    data = np.asarray(msg.data, dtype=np.float64)
    n = len(STEP_HEADER)
    if data.shape != (n + obs_dim,):
        raise ValueError(f'task step has {data.size} values, expected {n} + obs_dim {obs_dim}')
    _finite('task step', data)
    seq = data[0]
    if seq < 0 or seq != int(seq) or seq > MAX_EXACT_INTEGER:
        raise ValueError(f'task step sequence {seq} is not an integer in [0, 2^53]')
    if not np.isin(data[2:n], (0.0, 1.0)).all():
        raise ValueError(f'task step flags {data[2:n].tolist()} must be 0 or 1')
    _finite('task step reward', data[1:2], limits.reward)
    obs = _finite('task step observation', data[n:], limits.observation)
    return TaskStep(int(seq), float(data[1]), bool(data[2]), bool(data[3]), bool(data[4]),
                    obs.astype(np.float32))


# ---------------------------------------------------------------- trajectories
def trajectory_msg(chunk: TrajectoryChunk) -> Trajectory:
    """Encode a chunk (the caller sets the header stamp)."""
    obs = np.asarray(chunk.observations, dtype=np.float32)
    act = np.asarray(chunk.actions, dtype=np.float32)
    msg = Trajectory()
    msg.actor_id = chunk.actor_id
    msg.episode_id = int(chunk.episode_id)
    msg.sequence_number = int(chunk.sequence_number)
    msg.policy_version = int(chunk.policy_version)
    msg.num_steps = act.shape[0]
    msg.obs_dim = obs.shape[1]
    msg.act_dim = act.shape[1]
    msg.observations = obs.ravel()
    msg.actions = act.ravel()
    msg.rewards = np.asarray(chunk.rewards, dtype=np.float32)
    msg.discounts = np.asarray(chunk.discounts, dtype=np.float32)
    msg.behaviour_log_probs = np.asarray(chunk.log_probs, dtype=np.float32)
    msg.episode_start = bool(chunk.episode_start)
    msg.episode_end = bool(chunk.episode_end)
    msg.truncated = bool(chunk.truncated)
    return msg


def trajectory_from_msg(msg: Trajectory, obs_dim: int, act_dim: int,
                        limits: InputLimits | None = None, max_steps: int | None = None
                        ) -> TrajectoryChunk:
    """
    Decode and validate a Trajectory against the expected sizes and ``limits``.

    A chunk longer than ``max_steps`` is refused before its arrays are read; so are an
    actor id longer than 256 characters and observations, actions or rewards beyond
    ``limits`` (which also keeps every value inside float32).
    """
    limits = limits or InputLimits()
    t = int(msg.num_steps)
    if t < 1:
        raise ValueError('trajectory has num_steps < 1')
    if max_steps is not None and t > max_steps:
        raise ValueError(f'trajectory has {t} steps, more than max_chunk_steps {max_steps}')
    if len(msg.actor_id) > MAX_ACTOR_ID:
        raise ValueError(f'trajectory actor_id has {len(msg.actor_id)} characters (at most '
                         f'{MAX_ACTOR_ID})')
    if (msg.obs_dim, msg.act_dim) != (obs_dim, act_dim):
        raise ValueError(f'trajectory dims obs {msg.obs_dim} act {msg.act_dim}, expected '
                         f'obs {obs_dim} act {act_dim}')
    arrays = {}
    bounds = {'observations': limits.observation, 'actions': limits.action,
              'rewards': limits.reward}
    for name, shape in (('observations', (t + 1, obs_dim)), ('actions', (t, act_dim)),
                        ('rewards', (t,)), ('discounts', (t,)), ('behaviour_log_probs', (t,))):
        x = np.asarray(getattr(msg, name), dtype=np.float32)
        if x.size != int(np.prod(shape)):
            raise ValueError(f'trajectory {name} has {x.size} values, expected {shape}')
        arrays[name] = _finite(f'trajectory {name}', x.reshape(shape), bounds.get(name))
    if not np.isin(arrays['discounts'], (0.0, 1.0)).all():
        raise ValueError('trajectory discounts must be 0 or 1')
    if (arrays['discounts'][:-1] == 0.0).any():
        raise ValueError('trajectory has a terminal step before its last step')
    if arrays['discounts'][-1] == 0.0 and not msg.episode_end:
        raise ValueError('trajectory ends in a terminal step without episode_end')
    if msg.truncated and not msg.episode_end:
        raise ValueError('trajectory is truncated without episode_end')
    return TrajectoryChunk(msg.actor_id, int(msg.episode_id), int(msg.sequence_number),
                           int(msg.policy_version), arrays['observations'], arrays['actions'],
                           arrays['rewards'], arrays['discounts'],
                           arrays['behaviour_log_probs'], bool(msg.episode_start),
                           bool(msg.episode_end), bool(msg.truncated))


# ---------------------------------------------------------------- policy weights
def network_json(obs_dim: int, act_dim: int, network: NetworkConfig) -> str:
    """Describe the policy architecture for PolicyWeights.config_json."""
    net = {k: list(v) if isinstance(v, tuple) else v
           for k, v in dataclasses.asdict(network).items()}
    return json.dumps({'obs_dim': obs_dim, 'act_dim': act_dim, 'network': net},
                      sort_keys=True)


def _json_depth(text: str) -> int:
    """Return the deepest bracket nesting of JSON ``text`` (brackets in strings ignored)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == '\\':
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in '[{':
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ']}':
            depth -= 1
    return deepest


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f'number {text[:20]} is not finite')
    return value


def _no_constant(text: str) -> float:
    raise ValueError(f'{text} is not allowed')


def network_from_json(text: str) -> tuple[int, int, NetworkConfig]:
    """
    Parse config_json with limits; ValueError on any defect, never another exception.

    At most 64 KiB and 8 levels of nesting (checked before parsing), no NaN / Infinity and no
    number that overflows a float, ``obs_dim`` / ``act_dim`` integers in [1, 10^6], and a
    ``network`` object that NetworkConfig accepts.
    """
    if len(text) > MAX_JSON_BYTES:
        raise ValueError(f'bad config_json: {len(text)} characters (at most {MAX_JSON_BYTES})')
    if _json_depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f'bad config_json: nested deeper than {MAX_JSON_DEPTH} levels')
    try:
        data = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
        if not isinstance(data, dict) or not isinstance(data.get('network'), dict):
            raise ValueError('expected an object with a "network" object')
        dims = []
        for key in ('obs_dim', 'act_dim'):
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not 1 <= value <= MAX_DIM:
                raise ValueError(f'{key} {str(value)[:20]} is not an integer in [1, {MAX_DIM}]')
            dims.append(value)
        return dims[0], dims[1], NetworkConfig(**data['network'])
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError,
            OverflowError) as exc:
        raise ValueError(f'bad config_json: {str(exc)[:200]}') from exc


def weights_msg(flat: FlatWeights, version: int, learner_step: int, config_json: str
                ) -> PolicyWeights:
    """Encode flat weights with the layout documented in PolicyWeights.msg."""
    sizes = [int(np.prod(s, dtype=np.int64)) for s in flat.shapes]
    msg = PolicyWeights()
    msg.version = int(version)
    msg.learner_step = int(learner_step)
    msg.names = list(flat.names)
    msg.ranks = [len(s) for s in flat.shapes]
    msg.shapes = [int(d) for s in flat.shapes for d in s]
    msg.offsets = [int(x) for x in np.concatenate([[0], np.cumsum(sizes)[:-1]])] \
        if sizes else []
    msg.data = np.asarray(flat.data, dtype='<f4')
    msg.checksum = int(flat.checksum)
    msg.config_json = config_json
    return msg


def weights_from_msg(msg: PolicyWeights) -> FlatWeights:
    """
    Decode PolicyWeights into FlatWeights after checking layout and checksum.

    Names, shapes against a concrete network are checked later by Policy.load_flat.
    """
    data = np.asarray(msg.data, dtype='<f4')
    if data.size == 0:
        raise ValueError('no weights (empty data)')
    if zlib.crc32(data.tobytes()) != msg.checksum:
        raise ValueError('checksum mismatch')
    names, ranks = list(msg.names), [int(r) for r in msg.ranks]
    offsets, dims = [int(o) for o in msg.offsets], [int(d) for d in msg.shapes]
    if not (len(names) == len(ranks) == len(offsets)):
        raise ValueError(f'layout lengths differ: {len(names)} names, {len(ranks)} ranks, '
                         f'{len(offsets)} offsets')
    if len(names) > MAX_TENSORS or any(not 0 <= r <= MAX_RANK for r in ranks):
        raise ValueError(f'layout of {len(names)} tensors with ranks up to '
                         f'{max(ranks, default=0)} (at most {MAX_TENSORS} of rank {MAX_RANK})')
    if sum(ranks) != len(dims):
        raise ValueError(f'shapes has {len(dims)} entries, ranks need {sum(ranks)}')
    if any(not 0 <= d <= data.size for d in dims):
        raise ValueError(f'a shape entry is outside [0, {data.size}] (the data size)')
    shapes, start, pos = [], 0, 0
    for name, rank, offset in zip(names, ranks, offsets):
        shape = tuple(dims[start:start + rank])
        start += rank
        if offset != pos:
            raise ValueError(f'{name}: offset {offset}, expected {pos}')
        pos += math.prod(shape)          # exact: no int64 wrap-around
        shapes.append(shape)
        if pos > data.size:
            raise ValueError(f'layout covers more than the {data.size} values of data')
    if pos != data.size:
        raise ValueError(f'layout covers {pos} values, data has {data.size}')
    _finite('weights', data)
    return FlatWeights(names, shapes, data.astype(np.float32), int(msg.checksum))
