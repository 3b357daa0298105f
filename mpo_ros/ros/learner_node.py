"""
Learner node: a buffer + the learner chosen by ``algorithm`` in a thread, versioned weights out.

The learner comes from the registry (:mod:`mpo_ros.core.learners`, ``algorithm`` default
``mpo``) and is reached only through the ``Learner`` protocol: this node never names an
algorithm or one of its metrics.

- subscribes ``trajectories`` (Trajectory from any number of actors). Each message is validated
  (sizes, NaN / inf, flags, per-actor sequence numbers: duplicates and out-of-order chunks are
  rejected with a logged reason; a gap starts a new replay stream so no sequence spans lost
  data) and stored with :meth:`SequenceReplay.add_chunk`, one stream per actor;
- a training thread runs ``Learner.step`` at ``updates_per_step`` updates per received
  environment step once the replay holds ``replay.min_size`` transitions
  (:class:`~mpo_ros.core.schedule.ReplayRatio`). An on-policy learner instead updates once
  per complete batch of steps of its current policy version: chunks of older versions are
  dropped and counted (``chunks_stale``), and every update publishes a new version;
- publishes ``~/policy_weights`` (PolicyWeights, latched; version 0 at start, +1 every
  ``publish_every`` updates), ``~/stats`` (LearnerStats every ``stats_period_s``, with the
  learner's own metrics as ``metric_names`` / ``metric_values``) and
  ``~/step_budget`` (std_msgs/Int64, latched: the number of environment steps actors may send
  before the learner falls more than ``max_update_lag`` updates behind; -1 = unlimited);
- subscribes ``evaluation`` (the actors' ``[env_steps, mean, std, episodes]``) and writes
  ``out_dir/progress.csv`` (every row) and ``learning_curve.png`` (at most every
  ``plot_period_s``, and at the end / on shutdown) like the in-process trainer, and with
  ``max_env_steps`` stops storing steps there, lifts the step budget so actors can finish
  their episode and evaluate, and ends itself after that final evaluation (writing
  ``summary.json``);
- checkpoints everything (the learner's full state: for MPO networks, targets, optimisers,
  temperature and multipliers; the buffer, the replay-ratio schedule, counters, RNG states)
  atomically every ``checkpoint_every_updates`` updates and on SIGINT / SIGTERM into
  ``checkpoint_dir`` as ``checkpoint_<updates>.pt``, keeping the newest
  ``checkpoint_keep`` (``out_dir/checkpoint.pt`` is a hard link to the newest), and on start
  resumes from the newest one that loads (a corrupt or truncated file is skipped with the
  reason logged; ``resume: false`` starts fresh). A resumed learner's first policy version is
  above any version the previous process can have published, so actors accept it at once;
- publishes ``~/counters`` (std_msgs/Float64MultiArray, labelled, with the stats): chunks
  stored, lost (sequence gaps), rejected (invalid or duplicated), stale, evaluations rejected,
  refused (over a ``streams.*`` quota: too many actor ids, over the per-actor rate), replay
  size, env steps, updates, policy version. Values beyond ``limits.*``
  (:class:`~mpo_ros.core.config.InputLimits`) are invalid; ``~/step_budget`` is repeated
  every ``stats_period_s`` so a forged budget does not hold the actors.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
import queue
import re
import sys
import tempfile
import threading
import time
from typing import Any

from mpo_ros import envs
from mpo_ros.core import checkpoint
from mpo_ros.core import learners
from mpo_ros.core.config import check_algorithm, Config, ConfigError, InputLimits, MPOConfig
from mpo_ros.core.config import NetworkConfig, opt, ReplayConfig, StreamConfig, TrainConfig
from mpo_ros.core.config import TRPOConfig
from mpo_ros.core.config import validate_fields
from mpo_ros.core.policy import flatten_state
from mpo_ros.core.streams import chunk_fingerprint, StreamAssigner, TrajectoryChunk
from mpo_ros.robot import arm
from mpo_ros.ros import common
from mpo_ros.ros import conversions as conv
from mpo_ros.ros.parameters import declare_config, ParameterError
from mpo_ros.progress import format_row, ProgressLog, window_means
from mpo_ros_interfaces.msg import LearnerStats, PolicyWeights, Trajectory
import numpy as np
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray, Int64
import torch


@dataclass
class LearnerNodeConfig:
    """Learner node parameters (network / mpo / replay come from the core dataclasses)."""

    task: str = opt('gym:Pendulum-v1', 'task id (observation and action sizes come from it)')
    algorithm: str = opt('mpo', 'learning algorithm, by its registry name')
    seed: int = opt(0, 'learner and replay seed', (0, 2 ** 31 - 1))
    updates_per_step: float = opt(1.0, 'learner updates per received environment step',
                                  (0.0, 100.0))
    publish_every: int = opt(10, 'updates between PolicyWeights messages (K)', (1, 10 ** 9))
    max_update_debt: float = opt(1000.0, 'updates owed beyond this are skipped, so a learner '
                                 'slower than unthrottled actors (a robot) trains on fresh data '
                                 'instead of an ever-growing backlog (0: never skip)',
                                 (0.0, 1e12))
    max_update_lag: float = opt(50.0, 'updates the learner may fall behind before actors '
                                'wait (0: never wait)', (0.0, 1e9))
    stats_period_s: float = opt(2.0, 'seconds between LearnerStats messages', (0.05, 3600.0))
    checkpoint_every_updates: int = opt(5000, 'updates between checkpoints', (1, 10 ** 12))
    out_dir: str = opt('runs/ros', 'directory for progress.csv, learning curve, summary')
    checkpoint_dir: str = opt('', 'directory of checkpoint_<updates>.pt files (empty: '
                              '<out_dir>/checkpoints)')
    checkpoint_keep: int = opt(3, 'newest checkpoints kept in checkpoint_dir', (1, 1000))
    resume: bool = opt(True, 'continue from the newest valid checkpoint in checkpoint_dir '
                       '(false: start fresh)')
    max_env_steps: int = opt(0, 'stop after this many received steps and a final evaluation '
                             '(0: run until stopped)', (0, 10 ** 12))
    final_eval_timeout_s: float = opt(300.0, 'give up waiting for the final evaluation',
                                      (0.0, 1e6))
    plot_period_s: float = opt(30.0, 'redraw learning_curve.png at most this often (always at '
                               'the end and on shutdown; progress.csv gets every row)',
                               (0.0, 1e6))
    torch_threads: int = opt(1, 'torch intra-op threads (the machine is shared)', (1, 256))
    device: str = opt('cpu', 'torch device (cpu, cuda)')
    task_definition: str = opt('', "the actors' task definition (sets the observation size; "
                               "'': the task's own)", choices=arm.DEFINITION_CHOICES)
    joints: tuple[str, ...] = opt((), "the actors' controlled joints (with task_definition; "
                                  'empty: every actuated joint)')
    command_in_observation: bool = opt(False, arm.COMMAND_IN_OBSERVATION_HELP)

    def __post_init__(self) -> None:
        """Validate."""
        validate_fields(self)
        check_algorithm(self.algorithm, 'algorithm')


# ~/counters layout (std_msgs/Float64MultiArray, labelled): chunk counts since the first start
# of this checkpoint_dir, then the current sizes.
COUNTS = ('chunks_stored', 'chunks_lost', 'chunks_rejected', 'chunks_stale',
          'evaluations_rejected', 'chunks_refused')
COUNTERS = (*COUNTS, 'replay_size', 'env_steps', 'learner_step', 'policy_version')
_CHECKPOINT_KEYS = ('config', 'env_steps', 'learner', 'replay')


def _check_device(device: str) -> None:
    """Raise StartupError (one line, naming the parameter) unless ``device`` can be used."""
    try:
        torch.zeros(1, device=torch.device(device))
    except (RuntimeError, AssertionError, TypeError, ValueError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise common.StartupError(f"invalid parameter 'device': {device!r} cannot be used on "
                                  f'this machine ({why}); use device:=cpu') from exc


def _check_writable(path: Path, name: str) -> None:
    """Create ``path`` and write a file in it, or raise StartupError naming the parameter."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise common.StartupError(f"invalid parameter '{name}': cannot write to {path} "
                                  f'({exc.strerror or exc})') from exc


def _check_checkpoint(state: dict[str, Any]) -> None:
    """Raise ValueError unless ``state`` looks like a complete learner checkpoint."""
    missing = [k for k in _CHECKPOINT_KEYS if k not in state]
    if missing:
        raise ValueError(f'missing {missing}')
    if not isinstance(state['learner'], dict) or 'num_steps' not in state['learner']:
        raise ValueError('no learner state')
    if not isinstance(state['replay'], dict) or 'meta' not in state['replay']:
        raise ValueError('no replay state')


class LearnerNode(Node):
    """Replay and MPO learner (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__('learner')
        # Input limits and stream quotas take effect when set (on the next message); every
        # other parameter is read-only at run time.
        _, cfg = declare_config(self, {'': LearnerNodeConfig, 'network.': NetworkConfig,
                                       'mpo.': MPOConfig, 'replay.': ReplayConfig,
                                       'trpo.': TRPOConfig, 'limits.': InputLimits,
                                       'streams.': StreamConfig},
                                live={'limits.': self._set_limits,
                                      'streams.': self._set_stream_limits})
        self.cfg: LearnerNodeConfig = cfg['']
        self.limits: InputLimits = cfg['limits.']
        self.stream_cfg: StreamConfig = cfg['streams.']
        c = self.cfg
        try:
            self.config = Config(network=cfg['network.'], mpo=cfg['mpo.'],
                                 replay=cfg['replay.'], trpo=cfg['trpo.'],
                                 train=TrainConfig(task=c.task, algorithm=c.algorithm,
                                                   seed=c.seed,
                                                   updates_per_step=c.updates_per_step,
                                                   torch_threads=c.torch_threads,
                                                   device=c.device))
        except ConfigError as exc:
            raise ParameterError('network.covariance / mpo.per_dim_kl', str(exc)) from exc
        torch.set_num_threads(c.torch_threads)
        try:
            env = envs.make(c.task, seed=c.seed)
        except envs.UnknownTaskError as exc:
            raise common.StartupError(f"invalid parameter 'task': {exc}") from exc
        self.spec = env.spec
        env.close()
        try:
            obs_dim, act_dim = arm.policy_dims(self.spec, c.task_definition, c.joints,
                                               c.command_in_observation)
        except ValueError as exc:
            raise common.StartupError(f"invalid parameter 'joints': {exc}") from exc
        self.obs_dim, self.act_dim = obs_dim, act_dim
        _check_device(c.device)
        self.out = Path(c.out_dir)
        self.ckpt_dir = Path(c.checkpoint_dir) if c.checkpoint_dir else self.out / 'checkpoints'
        _check_writable(self.out, 'out_dir')
        _check_writable(self.ckpt_dir, 'checkpoint_dir' if c.checkpoint_dir else 'out_dir')
        self.learner = learners.make(c.algorithm, obs_dim, act_dim, self.config, seed=c.seed,
                                     device=c.device)
        if self.learner.data.kind in learners.SIMULATION_ONLY:
            raise ParameterError(self.learner.data.parameter, (
                f'{c.algorithm} asks for {self.learner.data.kind!r} data, collected by saving '
                f'and restoring simulator states: the in-process trainer (mpo-ros-train) only. '
                f'This node learns from actors, and a robot cannot be restored to a past state'))
        self.replay = learners.make_buffer(self.learner.data, obs_dim, act_dim,
                                           self.config.replay.capacity, seed=c.seed)
        self.schedule = learners.make_schedule(
            self.learner.data, c.updates_per_step, self.config.replay.min_size,
            c.max_update_debt, c.max_update_lag)
        self.config_json = conv.network_json(obs_dim, act_dim, self.learner.network)
        # On-policy: every update publishes, and chunks of older versions are dropped.
        self.on_policy = self.learner.data.kind == learners.ON_POLICY
        self.ckpt_path = self.out / 'checkpoint.pt'      # hard link to the newest checkpoint
        self.env_steps = 0
        self.version = 0
        self.train_returns: list[float] = []
        self.counters = dict.fromkeys(COUNTS, 0)
        self.resumed_from: Path | None = None
        if c.resume:
            self._resume()
        else:
            self._set_aside_old_checkpoints()
        self.streams = StreamAssigner(self.replay.next_stream(), self.stream_cfg)
        self.inbox: queue.Queue = queue.Queue()
        self.pub_weights = self.create_publisher(PolicyWeights, '~/policy_weights',
                                                 common.LATCHED)
        self.pub_stats = self.create_publisher(LearnerStats, '~/stats', 10)
        self.pub_budget = self.create_publisher(Int64, '~/step_budget', common.LATCHED)
        self.pub_counters = self.create_publisher(Float64MultiArray, '~/counters', 10)
        self.create_subscription(Trajectory, 'trajectories', self._on_trajectory,
                                 common.RELIABLE)
        self.create_subscription(Float64MultiArray, 'evaluation', self._on_evaluation,
                                 common.RELIABLE)
        self.progress = ProgressLog(self.out, self.learner.metric_names(),
                                    f'{c.algorithm} on {c.task} (ROS)',
                                    resume=self.resumed_from is not None,
                                    plot_period_s=c.plot_period_s)
        if self.progress.dropped:
            self.get_logger().warning(f'{self.progress.dropped} row(s) of progress.csv with '
                                      'non-finite values left out of the learning curve')
        self.start = time.perf_counter()
        self.done = False
        self.exit_code = 0
        self._stop = threading.Event()
        self._last_warn: dict[str, tuple[float, int]] = {}
        self._publish_weights()
        self._last_budget: int | None = None
        self._publish_budget()
        self.thread = threading.Thread(target=self._train_loop, name='mpo-learner', daemon=True)
        data = self.learner.data
        schedule = (f'one update per {data.batch_size} steps of the current policy, weights '
                    'after each' if self.on_policy else
                    f'{c.updates_per_step} updates/step after {self.config.replay.min_size} '
                    f'steps, batch {data.batch_size} x {data.sequence_length}; weights every '
                    f'{c.publish_every} updates')
        self.get_logger().info(
            f'{c.algorithm} on {c.task}: obs {obs_dim}, act {act_dim}; {schedule}; checkpoints '
            f'every {c.checkpoint_every_updates} updates in {self.ckpt_dir}; output {self.out}')
        if c.max_env_steps and self.env_steps >= c.max_env_steps and self.resumed_from:
            self.get_logger().info(
                f'the run in {self.ckpt_dir} is complete ({self.env_steps} env steps >= '
                f'max_env_steps {c.max_env_steps}); nothing to do (resume:=false starts '
                'fresh)')
            self._saved_on_finish = True
            self.done = True
        else:
            self.thread.start()

    # ------------------------------------------------------------ runtime parameters
    def _set_limits(self, limits: InputLimits) -> None:
        """Apply new input limits (the next message is checked against them)."""
        self.limits = limits

    def _set_stream_limits(self, limits: StreamConfig) -> None:
        """Apply new stream quotas (the next chunk is checked against them)."""
        self.stream_cfg = self.streams.limits = limits

    # ------------------------------------------------------------ state
    def _resume(self) -> None:
        """Load the newest valid checkpoint of ``checkpoint_dir`` (if any) into this node."""
        log = self.get_logger()
        path, state = checkpoint.load_latest(
            self.ckpt_dir, validate=_check_checkpoint,
            on_skip=lambda p, why: log.warning(f'checkpoint {p} skipped: {why}'))
        if path is None:
            log.info(f'no checkpoint in {self.ckpt_dir}: starting fresh')
            return
        saved = state.get('algorithm', 'mpo')     # checkpoints before the registry: MPO
        if saved != self.cfg.algorithm:
            raise common.StartupError(
                f'checkpoint {path} was written by algorithm {saved!r}, not '
                f"{self.cfg.algorithm!r}; use algorithm:={saved}, another 'checkpoint_dir', or "
                "'resume:=false'")
        try:
            self.learner.load_state_dict(state['learner'])
            self.replay.load_state_dict(state['replay'])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise common.StartupError(
                f'checkpoint {path} does not fit this configuration ({exc}); use the '
                "configuration it was written with, another 'checkpoint_dir', or "
                "'resume:=false'") from exc
        if 'torch_rng' in state:
            torch.set_rng_state(state['torch_rng'])
        self.env_steps = int(state['env_steps'])
        # Versions only grow: after a crash the old process may have published up to
        # ceil(checkpoint_every_updates / publish_every) versions past the checkpoint.
        saved = int(state.get('policy_version', 0))
        every = state.get('checkpoint_every_updates', state.get('checkpoint_every', 0))
        unseen = 0 if state.get('clean_shutdown', False) else -(
            -int(every) // max(1, int(state.get('publish_every', 1))))
        self.version = saved + unseen + 1
        self.train_returns = [float(x) for x in state.get('train_returns', [])]
        self.counters.update({k: int(v) for k, v in state.get('counters', {}).items()
                              if k in self.counters})
        if 'schedule' in state:
            self.schedule.load_state_dict(state['schedule'])
        self.resumed_from = path
        log.info(f'resumed from {path}: {self.learner.num_steps} updates, {self.env_steps} env '
                 f'steps, {len(self.replay)} stored, policy version {self.version}')

    def _set_aside_old_checkpoints(self) -> None:
        """Move earlier checkpoints into a subfolder when starting fresh (never delete them)."""
        old = checkpoint.list_checkpoints(self.ckpt_dir)
        if old:
            aside = self.ckpt_dir / time.strftime('replaced_%Y%m%d-%H%M%S')
            aside.mkdir(exist_ok=True)
            for path in old:
                path.rename(aside / path.name)
            self.get_logger().info(f'resume is false: {len(old)} earlier checkpoint(s) moved '
                                   f'to {aside}')

    def _save(self, clean_shutdown: bool = False) -> Path:
        """Write a checkpoint of everything (see the module docstring); return its path."""
        state = {'config': self.config.to_dict(), 'env_steps': self.env_steps,
                 'algorithm': self.learner.name, 'policy': self.learner.policy_state(),
                 'learner': self.learner.state_dict(), 'replay': self.replay.state_dict(),
                 'schedule': self.schedule.state_dict(),
                 'policy_version': self.version, 'clean_shutdown': clean_shutdown,
                 'checkpoint_every_updates': self.cfg.checkpoint_every_updates,
                 'publish_every': 1 if self.on_policy else self.cfg.publish_every,
                 'torch_rng': torch.get_rng_state(),
                 'train_returns': [float(x) for x in self.train_returns],
                 'counters': dict(self.counters)}
        return checkpoint.save_rotating(state, self.ckpt_dir, self.learner.num_steps,
                                        self.cfg.checkpoint_keep, link=self.ckpt_path)

    # ------------------------------------------------------------ ROS callbacks (main thread)
    def _warn(self, key: str, text: str, reason: str | None = None) -> None:
        """
        Log ``text``, at most every 5 s per kind of reason (numbers aside).

        Distinct reasons are each logged at once; repeats say how many were not logged. The
        kind is ``reason`` if given (so a flood from many made-up actor ids is one kind).
        """
        key = key + ':' + re.sub(r'\d+', '#', text if reason is None else reason)
        if len(self._last_warn) > 1000:                    # bounded, whatever arrives
            self._last_warn.clear()
        now = time.monotonic()
        last, suppressed = self._last_warn.get(key, (0.0, 0))
        if now - last > 5.0:
            more = f' ({suppressed} more like it not logged)' if suppressed else ''
            self.get_logger().warning(text + more)
            self._last_warn[key] = (now, 0)
        else:
            self._last_warn[key] = (last, suppressed + 1)

    def _on_trajectory(self, msg: Trajectory) -> None:
        try:
            chunk = conv.trajectory_from_msg(msg, self.obs_dim, self.act_dim, self.limits,
                                             self.stream_cfg.max_chunk_steps)
        except ValueError as exc:
            self.counters['chunks_rejected'] += 1
            self._warn('traj', f'trajectory from {msg.actor_id[:64]!r} rejected: {exc}',
                       str(exc))
            return
        lost, refused = self.streams.lost, self.streams.refused
        actor, note = self.streams.assign(chunk.actor_id, chunk.sequence_number,
                                          chunk.episode_start, chunk_fingerprint(chunk),
                                          chunk.actions.shape[0])
        if actor is None:
            kind = 'chunks_refused' if self.streams.refused > refused else 'chunks_rejected'
            self.counters[kind] += 1
            self._warn('seq', f'trajectory from {chunk.actor_id[:64]!r} rejected: {note}', note)
            return
        self.counters['chunks_lost'] += self.streams.lost - lost
        if note:
            self._warn('gap', f'trajectory from {chunk.actor_id!r}: {note}')
        if chunk.episode_start:
            actor.ep_return = 0.0
        actor.ep_return += float(chunk.rewards.sum())
        if chunk.episode_end:
            self.train_returns.append(actor.ep_return)
            actor.ep_return = 0.0
        self.inbox.put(('chunk', actor.stream, chunk))

    def _on_evaluation(self, msg: Float64MultiArray) -> None:
        try:
            steps, mean, std, episodes = conv.evaluation_from_msg(msg, self.limits.eval_return)
        except ValueError as exc:
            self.counters['evaluations_rejected'] += 1
            self._warn('eval', f'evaluation rejected: {exc}')
            return
        self.inbox.put(('eval', steps, (mean, std, episodes)))

    # ------------------------------------------------------------ publishing (any thread)
    def _publish_weights(self) -> None:
        flat = flatten_state(self.learner.policy_state())
        msg = conv.weights_msg(flat, self.version, self.learner.num_steps, self.config_json)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_weights.publish(msg)

    def _collection_over(self) -> bool:
        return bool(self.cfg.max_env_steps and self.env_steps >= self.cfg.max_env_steps)

    def _publish_budget(self, again: bool = False) -> None:
        """
        Publish the step budget when it changed, or ``again`` (every stats period).

        Repeating it overwrites, within a period, a forged budget on the same topic that
        would otherwise hold the actors until the real one next changes (never, if the
        learner waits for their steps).
        """
        # After max_env_steps actors may finish their episode and evaluate freely.
        budget = self.schedule.step_budget(self.learner.num_steps, self._collection_over())
        if budget != self._last_budget or again:
            self.pub_budget.publish(Int64(data=budget))
            self._last_budget = budget

    def _publish_stats(self, window: list[dict], window_s: float) -> None:
        names = self.learner.metric_names()
        means = window_means(window, names)
        msg = LearnerStats()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.learner_step = self.learner.num_steps
        msg.env_steps = self.env_steps
        msg.updates_per_second = len(window) / max(window_s, 1e-9)
        msg.replay_size = len(self.replay)
        msg.policy_version = self.version
        msg.algorithm = self.learner.name
        msg.metric_names = list(names)
        msg.metric_values = [means[k] for k in names]
        self.pub_stats.publish(msg)
        self.pub_counters.publish(conv.vector_msg([float(x) for x in self._counter_values()],
                                                  ','.join(COUNTERS)))

    def _counter_values(self) -> list[int]:
        return [*(self.counters[k] for k in COUNTS), len(self.replay), self.env_steps,
                self.learner.num_steps, self.version]

    # ------------------------------------------------------------ training thread
    def _store(self, stream: int, chunk: TrajectoryChunk) -> float:
        """Add a chunk to the buffer; return the owed updates the debt cap skipped."""
        if self.on_policy and chunk.policy_version != self.version:
            self.counters['chunks_stale'] += 1    # an on-policy learner uses its own steps only
            self.schedule.dropped(chunk.actions.shape[0])
            return 0.0
        self.counters['chunks_stored'] += 1
        if self._collection_over():
            return 0.0      # steps after max_env_steps (actors finishing an episode) are dropped
        t = chunk.actions.shape[0]
        ends = np.zeros(t, bool)
        ends[-1] = chunk.episode_end
        before = len(self.replay)
        self.replay.add_chunk(chunk.observations, chunk.actions, chunk.rewards,
                              chunk.discounts == 0.0, ends, chunk.log_probs, stream)
        self.learner.observe(chunk.observations[:-1])
        self.env_steps += t
        return self.schedule.stored(before, len(self.replay), t)

    def _record(self, steps: int, result: tuple, window: list[dict], window_s: float) -> None:
        mean, std, episodes = result
        recent = self.train_returns[-10:]
        row = self.progress.record({
            'env_steps': steps, 'episodes': len(self.train_returns), 'eval_return': mean,
            'eval_return_std': std,
            'train_return': float(np.mean(recent)) if recent else float('nan'),
            'wall_time': time.perf_counter() - self.start, 'updates': self.learner.num_steps,
            'updates_per_s': len(window) / max(window_s, 1e-9)}, window)
        self._plot(force=False)
        self.get_logger().info(f'{format_row(row, self.learner.log_metrics)} | policy v'
                               f'{self.version}')

    def _plot(self, force: bool) -> None:
        """Draw the learning curve (rate-limited unless ``force``); a failure is only logged."""
        try:
            self.progress.plot(force)
        except (ValueError, OverflowError, OSError) as exc:
            self._warn('plot', f'learning curve not drawn: {exc}')

    def _train_loop(self) -> None:
        try:
            self._train()
        except Exception as exc:  # noqa: B902 - a dead learner thread must stop the node
            if not self.context.ok() or self._stop.is_set():
                return                                 # shutting down: publishers are gone
            self.get_logger().fatal(f'learner thread failed: {exc!r}')
            self.exit_code = 1
            self.done = True
            raise

    def _train(self) -> None:
        c = self.cfg
        stats_window: list[dict] = []
        eval_window: list[dict] = []
        stats_t = eval_t = time.perf_counter()
        final_eval_seen, reached_at = False, None
        while not self._stop.is_set() and self.context.ok():
            try:
                item = self.inbox.get_nowait() if self.schedule.ready() else \
                    self.inbox.get(timeout=0.05)
                while True:                                   # drain everything received
                    kind, a, b = item
                    if kind == 'chunk':
                        if self._store(a, b):
                            self._warn('debt', 'the learner cannot keep up with unthrottled '
                                       f'actors: {self.schedule.skipped:.0f} updates skipped '
                                       'so far (replay ratio below updates_per_step)')
                    else:
                        now = time.perf_counter()
                        self._record(a, b, eval_window, now - eval_t)
                        eval_window, eval_t = [], now
                        # A resumed learner's actor may count from 0: its total decides too.
                        final_eval_seen |= bool(c.max_env_steps and (
                            a >= c.max_env_steps or self.env_steps >= c.max_env_steps))
                    item = self.inbox.get_nowait()
            except queue.Empty:
                pass
            if self.schedule.ready():
                metrics = self.learner.step(self.replay.sample())
                stats_window.append(metrics)
                eval_window.append(metrics)
                self.schedule.take()
                if self.on_policy or self.learner.num_steps % c.publish_every == 0:
                    self.version += 1
                    self._publish_weights()
                if self.learner.num_steps % c.checkpoint_every_updates == 0:
                    self._save()
            self._publish_budget()
            now = time.perf_counter()
            if now - stats_t >= c.stats_period_s:
                self._publish_budget(again=True)
                self._publish_stats(stats_window, now - stats_t)
                stats_window, stats_t = [], now
            if self._collection_over() and not self.schedule.ready():
                reached_at = reached_at or now
                if final_eval_seen or now - reached_at > c.final_eval_timeout_s:
                    self._finish()
                    return

    def _finish(self) -> None:
        """Write checkpoint, curve and summary, then end the node (max_env_steps reached)."""
        self._save()
        self._plot(force=True)
        last = self.progress.rows[-1] if self.progress.rows else {}
        summary = {'task': self.cfg.task, 'algorithm': self.cfg.algorithm, 'seed': self.cfg.seed,
                   'env_steps': self.env_steps,
                   'final_eval_return': last.get('eval_return'),
                   'final_eval_return_std': last.get('eval_return_std'),
                   'updates': self.learner.num_steps, 'policy_version': self.version,
                   'wall_time_s': time.perf_counter() - self.start, 'pipeline': 'ros',
                   **{k: v for k, v in zip(COUNTS, self._counter_values())}}
        (self.out / 'summary.json').write_text(json.dumps(summary, indent=2))
        self.get_logger().info(
            f'done: {self.env_steps} env steps, {self.learner.num_steps} updates, final eval '
            f"return {last.get('eval_return', float('nan')):.1f}; learning curve: "
            f"{(self.out / 'learning_curve.png').resolve()}")
        self._saved_on_finish = True
        self.done = True

    def close(self) -> None:
        """Stop the training thread; checkpoint unless the final one was just written."""
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=30.0)
        if not getattr(self, '_saved_on_finish', False):
            path = self._save(clean_shutdown=True)
            self.get_logger().info(f'checkpoint {path} written at shutdown')
            if self.progress.rows:
                self._plot(force=True)
        self.progress.close()


def main(args: list[str] | None = None) -> int:
    """Console entry point ``learner``."""
    return common.run(LearnerNode, 'learner', args)


if __name__ == '__main__':
    sys.exit(main())
