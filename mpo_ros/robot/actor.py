"""
The actor's robot side without ROS: steps and sensor frames in, commands and chunks out.

:class:`RobotActor` is what the actor node wraps. It turns the bridge's steps (or synchronised
sensor frames with a task definition) into policy observations, acts, passes every command
through the safety filter, records what was executed (:mod:`mpo_ros.robot.actions`) in
:class:`~mpo_ros.robot.recorder.TransitionRecorder` chunks, runs the reset routine and
evaluations, and keeps the halt latches and the stale-sensor watchdog. Its whole decision state
is one :class:`~mpo_ros.robot.episode.ActorState`.

It talks to the outside only through an :class:`ActorIO` (publish a command or a chunk, report
an evaluation, call the reset service, log) and a ``clock`` (seconds, monotonic), so tests
drive it with plain calls and a fake clock.

With ``command_in_observation`` the policy observation is the task observation followed by the
previous command (the safety filter's last output, normalised): under a rate limit the
executed action depends on it, and with it in the observation each stored transition is Markov.
"""

from __future__ import annotations

import re
import time
from typing import Callable, Protocol

from mpo_ros.core.config import InputLimits, NetworkConfig
from mpo_ros.core.policy import Action, FlatWeights, Policy
from mpo_ros.core.streams import TrajectoryChunk
from mpo_ros.envs import EnvSpec
from mpo_ros.robot import arm
from mpo_ros.robot.actions import ActionMap, executed_action
from mpo_ros.robot.episode import ActorState, Evaluation, EvalResult, Pending, Phase, TaskStep
from mpo_ros.robot.recorder import TransitionRecorder
from mpo_ros.robot.safety import SafetyFilter
from mpo_ros.robot.sensors import SensorSync, SyncKind, SyncResult
from mpo_ros.robot.tasks import SensorFrame
import numpy as np


# Out-of-window task/step sequence numbers in a row after which the actor follows them.
RESYNC_STEPS = 3
UNLIMITED = -1                  # the learner's step budget without a limit


class ActorIO(Protocol):
    """What the robot side needs from its host (the actor node, or a test)."""

    def command(self, values: np.ndarray) -> None:
        """Send these values (actuator units) to the robot."""

    def chunk(self, chunk: TrajectoryChunk) -> None:
        """Send a recorded chunk to the learner."""

    def evaluation(self, result: EvalResult) -> None:
        """Report a finished evaluation."""

    def request_reset(self) -> str:
        """Call the reset service: 'called' (answer via on_reset_result), 'unavailable', 'none'."""

    def log(self, level: str, text: str, key: str = '') -> None:
        """Log at 'info' or 'warning'; a ``key`` rate-limits repeats of one kind."""


class RobotActor:
    """Policy actor, safety layer, recorder and episode state machine (module docstring)."""

    def __init__(self, cfg: arm.ActorConfig, spec: EnvSpec, reach: arm.ReachConfig,
                 reset: arm.ResetConfig, safety: arm.SafetyConfig, network: NetworkConfig,
                 io: ActorIO, actor_id: str, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        """Build from the node's parameters; ValueError names what does not fit."""
        self.cfg, self.reset_cfg, self.safety_cfg, self.net_cfg = cfg, reset, safety, network
        self.io, self.clock = io, clock
        self.sensors = bool(cfg.task_definition)
        if cfg.joints and not self.sensors:
            raise ValueError('joints selects joints for a task_definition; the task/step '
                             'path drives every actuator')
        if safety.max_delta > 0 and not cfg.command_in_observation:
            raise ValueError('safety.max_delta > 0 makes the executed action depend on the '
                             'previous command: set command_in_observation true (on the '
                             'learner too)')
        self.joints = arm.controlled_joints(spec, cfg.joints) if self.sensors \
            else list(spec.joint_names)
        self.obs_dim, self.act_dim = arm.policy_dims(spec, cfg.task_definition, self.joints,
                                                     cfg.command_in_observation)
        driven = self.joints if self.sensors else []     # [] = every actuator, in order
        self.spec, self.driven = spec, driven
        self.actions = ActionMap(*arm.actuator_bounds(spec, driven))
        self.safety = SafetyFilter(arm.safety_limits(safety, spec, driven))
        self.home = np.asarray(reset.home or [0.0] * len(self.joints), float)
        if self.home.shape != (len(self.joints),):
            raise ValueError(f'reset.home has {self.home.size} values for '
                             f'{len(self.joints)} joints')
        self.definition = arm.task_definition(cfg.task_definition, len(self.joints), reach) \
            if self.sensors else None
        self.episode_steps = cfg.episode_steps or spec.max_episode_steps or 1000
        self.known_joints = None if cfg.ignore_unknown_joints else list(spec.joint_names)
        self.policy = None if cfg.wait_for_weights else \
            Policy(self.obs_dim, self.act_dim, network, cfg.seed)
        self.sync = SensorSync(cfg.sync_tolerance_s)
        self.state = ActorState(Phase.HOMING if self.sensors and reset.mode == 'home'
                                else Phase.WAIT_START)  # a robot starts wherever it was left
        self.recorder = TransitionRecorder(actor_id, cfg.chunk_length, io.chunk,
                                           lambda: self.policy.version if self.policy else 0)
        self.evaluation = Evaluation(cfg.eval_every, cfg.eval_episodes)
        self.train_returns: list[float] = []
        self.budget: int | None = None
        self.last_seq = -1
        self.frame_seq = 0
        self.frame: SensorFrame | None = None           # latest frame
        self.last_command: np.ndarray | None = None
        self.last_zero = -np.inf
        self.last_sensor: float | None = None
        self.watchdog_fired = False
        self.last_success, self.last_distance = False, float('nan')
        self.steps_seen = 0                              # steps handled (the node's step rate)
        self.limits = InputLimits()                      # the node replaces it from limits.*
        self.implausible_steps = 0                       # consecutive out-of-window sequences

    def describe(self, command_topic: str) -> str:
        """One start-up line: what the actor observes, drives and records."""
        c = self.cfg
        source = (f'{c.task_definition} from {c.joint_states_topic}, {c.ee_pose_topic}, '
                  f'{c.target_topic}, joints {self.joints}' if self.sensors else 'task/step')
        return (f'{self.recorder.actor_id}: {self.spec.task}, obs {self.obs_dim} ({source}), '
                f'act {self.act_dim} on {command_topic}, chunk {c.chunk_length}, eval every '
                f'{c.eval_every} steps; waiting for '
                f"{'weights' if self.policy is None else 'sensors'}")

    # ------------------------------------------------------------ observations and commands
    def policy_obs(self, task_obs: np.ndarray) -> np.ndarray:
        """Return the policy's observation: the task's, then the previous command if enabled."""
        if not self.cfg.command_in_observation:
            return np.asarray(task_obs, dtype=np.float32)
        previous = self.actions.to_normalised(self.safety.previous)
        return np.concatenate([task_obs, previous]).astype(np.float32)

    def _send(self, values: np.ndarray) -> None:
        self.last_command = np.asarray(values, dtype=np.float64)
        self.io.command(self.last_command)

    def _zero(self) -> None:
        """Command zero velocity (and let the rate limit start from rest)."""
        self.safety.reset()
        self._send(np.zeros(self.act_dim))
        self.last_zero = self.clock()

    def _hold_zero(self) -> None:
        """While halted: re-assert the zero command, at most every 0.1 s."""
        if self.clock() - self.last_zero > 0.1:
            self._zero()

    def _repeat(self) -> None:
        """Lockstep heartbeat: our command may have been sent before the robot listened."""
        st = self.state
        if st.pending is not None and self.last_command is not None and st.deferred is None:
            self.io.command(self.last_command)

    def _can_act(self) -> bool:
        st = self.state
        if self.policy is None or st.halted:
            return False
        if st.evaluating or not self.cfg.throttle:
            return True
        # Steps the learner has been sent (held steps do not count, so it can always start).
        sent = self.recorder.env_steps - self.recorder.held
        return self.budget is not None and (self.budget < 0 or sent < self.budget)

    def _act(self, obs: np.ndarray) -> None:
        st = self.state
        a = self.policy.act(obs, deterministic=st.evaluating)
        if not np.isfinite(np.concatenate([a.raw, [a.log_prob]])).all():
            # Weights that are finite yet overflow here: never act on or record NaN.
            self.io.log('warning', 'the policy gives a non-finite action for this observation: '
                        'zero command, episode cut', 'nan')
            self._cut_episode()
            self._zero()
            return
        command = self.actions.to_command(a.action)
        q = self.frame.joint_position if self.sensors and self.frame is not None else None
        safe = self.safety(command, q)
        self._send(safe)
        if st.evaluating:                  # not recorded: no log-probability needed
            st.pending = Pending(obs, a.raw, a.log_prob, self.policy.version)
        else:
            done = executed_action(a.raw, a.log_prob, command, safe, self.actions,
                                   lambda action: self.policy.log_prob(obs, action))
            st.pending = Pending(obs, done.action, done.log_prob, self.policy.version)
        st.deferred = None

    def _try_deferred(self) -> None:
        if self.state.deferred is not None and self._can_act():
            self._act(self.state.deferred)

    # ------------------------------------------------------------ episodes
    def _handle(self, step: TaskStep) -> bool:
        """Record the transition that ``step`` completes and act on it; return whether acted."""
        st, rec = self.state, self.recorder
        self.steps_seen += 1
        obs = self.policy_obs(step.observation)
        if step.episode_start:
            if st.pending is not None and not st.evaluating:
                rec.cut()                                   # reset from outside mid-episode
            self._begin_episode(obs, True)
        elif st.pending is None:
            if not rec.in_episode:
                self._begin_episode(obs, False)             # joined mid-episode
            else:
                rec.replace_last(obs)                       # realtime: stepped without us
        else:
            st.episode_return += step.reward
            if not st.evaluating:
                rec.record(st.pending.action, st.pending.log_prob, step.reward, step.terminal,
                           obs, st.pending.version)
            if step.terminal or step.truncated:
                self._end_episode(step.truncated and not step.terminal)
                return False                                # the reset follows
            if not st.evaluating:
                rec.flush_if_full()
        if self._can_act():
            self._act(obs)
            return True
        st.deferred, st.pending = obs, None
        return False

    def _begin_episode(self, obs: np.ndarray, start: bool) -> None:
        st = self.state
        if not st.evaluating and self.policy is not None \
                and self.evaluation.due(self.recorder.env_steps):
            st.evaluating = True
            self.evaluation.clear()
        st.episode_return, st.pending = 0.0, None
        if not st.evaluating:
            self.recorder.begin_episode(obs, start)

    def _end_episode(self, truncated: bool) -> None:
        st = self.state
        if st.evaluating:
            if self.evaluation.add(st.episode_return, self.last_success, self.last_distance):
                st.evaluating = False
                self.io.evaluation(self.evaluation.finish(
                    self.recorder.env_steps, self.sensors, self.train_returns,
                    self.policy.version if self.policy else 0))
        else:
            self.recorder.end_episode(truncated)
            self.train_returns.append(st.episode_return)
        st.pending = None

    def _cut_episode(self) -> None:
        """End the running episode early (e-stop, lost sensors): bootstrap, not terminal."""
        self.recorder.cut()
        self.state.pending = self.state.deferred = None

    # ------------------------------------------------------------ task/step path
    def on_task_step(self, step: TaskStep) -> bool:
        """
        Take the bridge's step record; return whether a command was sent for it.

        A sequence number behind the last one (not an episode start: a restarted bridge) is
        stale, and one more than ``max_sequence_jump`` ahead is implausible: both are ignored,
        so one forged step (sequence 1e15) cannot make every real step look stale. Only
        ``RESYNC_STEPS`` such steps in a row (the bridge really restarted or jumped) move the
        sequence there.
        """
        self._alive()
        if step.sequence == self.last_seq:
            self._repeat()
            return False
        behind = step.sequence < self.last_seq and not step.episode_start
        ahead = self.last_seq >= 0 and step.sequence - self.last_seq > self.cfg.max_sequence_jump
        if behind or ahead:
            self.implausible_steps += 1
            if self.implausible_steps < RESYNC_STEPS:
                if ahead:
                    self.io.log('warning', f'task step sequence {step.sequence} ignored: '
                                f'more than max_sequence_jump {self.cfg.max_sequence_jump} '
                                f'after {self.last_seq}', 'seq')
                return False                                # stale or implausible
            self.io.log('warning', f'task step sequence moved from {self.last_seq} to '
                        f'{step.sequence} for {RESYNC_STEPS} steps: following it', 'resync')
        self.implausible_steps = 0
        self.last_seq = step.sequence
        self.state.latest = step
        if self.state.halted:
            self._hold_zero()
            return False
        return self._handle(step)

    # ------------------------------------------------------------ sensor path
    def on_joint_state(self, stamp: float, position: np.ndarray, velocity: np.ndarray) -> bool:
        """Take a joint state (controlled joints' order); return whether a command was sent."""
        return self._on_sync(self.sync.joint_state(stamp, position, velocity))

    def on_ee_pose(self, stamp: float, position: np.ndarray) -> bool:
        """Take an end-effector position; return whether a command was sent."""
        return self._on_sync(self.sync.ee_pose(stamp, position))

    def on_target(self, stamp: float, position: np.ndarray) -> None:
        """Take the target position."""
        self.sync.target_point(stamp, position)

    def _on_sync(self, result: SyncResult) -> bool:
        if result.kind == SyncKind.REPEAT:
            self._repeat()
        if result.kind != SyncKind.FRAME:
            return False
        if result.clock_jumped:
            self.io.log('warning', 'sensor clock jumped back (driver restarted?): new episode')
            self._cut_episode()
            if self.state.phase != Phase.HALTED:
                self.state.phase = Phase.WAIT_START
        self._alive()
        self.frame = result.frame
        return self._on_frame(result.frame)

    def _on_frame(self, frame: SensorFrame) -> bool:
        st = self.state
        if st.phase == Phase.HALTED:
            self._hold_zero()
            return False
        if st.phase.resetting:
            return self._reset_tick(frame)
        start = st.phase == Phase.WAIT_START
        reward, terminal, truncated = 0.0, False, False
        if start:
            st.phase, st.episode_steps = Phase.EPISODE, 0
        else:
            st.episode_steps += 1
            reward = self.definition.reward(frame)
            terminal = self.definition.terminal(frame)
            truncated = not terminal and st.episode_steps >= self.episode_steps
            self.last_success = self.definition.success(frame)
            self.last_distance = self.definition.distance(frame)
        self.frame_seq += 1
        st.latest = TaskStep(self.frame_seq, reward, terminal, truncated, start,
                             self.definition.observation(frame))
        acted = self._handle(st.latest)
        if terminal or truncated:
            self._begin_reset()
        return acted

    # ------------------------------------------------------------ reset routine
    def _begin_reset(self) -> None:
        st = self.state
        st.phase, st.reset_started = Phase.HOMING, self.clock()
        st.pending = st.deferred = None
        self._zero()
        if self.reset_cfg.mode != 'home':
            self._call_reset_service()

    def _call_reset_service(self) -> None:
        outcome = self.io.request_reset()
        if outcome == 'none':
            self._finish_reset(self.sync.frame_stamp)
            return
        self.state.phase = Phase.RESET_SERVICE
        self.state.reset_in_flight = outcome == 'called'

    def on_reset_result(self, success: bool, message: str) -> None:
        """Take the reset service's answer (a failure is retried)."""
        st = self.state
        st.reset_in_flight = False
        if st.phase != Phase.RESET_SERVICE:
            return                            # halted or restarted meanwhile
        if not success:
            self.io.log('warning', f'reset service failed: {message}; retrying', 'reset')
            return
        # Our bridge says which stamp its reset state carries; otherwise take the next frame.
        found = re.search(r'stamp\s*[=:]?\s*([0-9.]+)', message)
        self._finish_reset(float(found.group(1)) - 1e-6 if found else self.sync.frame_stamp)

    def _finish_reset(self, after_stamp: float) -> None:
        st = self.state
        st.phase, st.reset_stamp = Phase.WAIT_FRAME, after_stamp
        if self.frame is not None and self.sync.frame_stamp > after_stamp:
            self._start_from(self.frame)

    def _start_from(self, frame: SensorFrame) -> bool:
        self.state.phase = Phase.WAIT_START
        return self._on_frame(frame)

    def reset_timer(self) -> None:
        """Retry an unavailable reset service and time out even when no frames come."""
        st = self.state
        if st.phase != Phase.RESET_SERVICE or st.reset_in_flight or st.reset_started is None:
            return
        if self.clock() - st.reset_started > self.reset_cfg.timeout_s and self.frame is not None:
            self.io.log('warning', f'reset service not done after {self.reset_cfg.timeout_s} '
                        's; starting the episode anyway', 'reset')
            self._start_from(self.frame)
        else:
            self._call_reset_service()

    def _reset_tick(self, frame: SensorFrame) -> bool:
        """One frame of the reset routine; return whether an episode action was sent."""
        st = self.state
        if st.reset_started is None:                  # the first home: timed from this frame
            st.reset_started = self.clock()
        if self.clock() - st.reset_started > self.reset_cfg.timeout_s:
            self.io.log('warning', f'reset ({st.phase.value}) not done after '
                        f'{self.reset_cfg.timeout_s} s; starting the episode anyway', 'reset')
            return self._start_from(frame)
        if st.phase == Phase.HOMING:
            lim = self.safety.limits
            command, error = arm.home_command(self.home, frame.joint_position,
                                              lim.position_lower, lim.position_upper,
                                              self.reset_cfg.gain)
            if error <= self.reset_cfg.tolerance:
                self._zero()
                self._call_reset_service()
            else:
                self._send(self.safety(command, frame.joint_position))
        elif st.phase == Phase.RESET_SERVICE:
            if not st.reset_in_flight:                # not available before: retry
                self._zero()
                self._call_reset_service()
        elif self.sync.frame_stamp > st.reset_stamp:  # WAIT_FRAME
            return self._start_from(frame)
        return False

    # ------------------------------------------------------------ safety
    def set_safety(self, safety: arm.SafetyConfig) -> None:
        """
        Apply new safety settings at once: the next command is filtered by them.

        ValueError (nothing changed) if they do not fit the controlled joints, or if a rate
        limit would need ``command_in_observation``. The e-stop topic is fixed at start.
        """
        if safety.max_delta > 0 and not self.cfg.command_in_observation:
            raise ValueError('safety.max_delta > 0 needs command_in_observation (set at start, '
                             'on the learner too)')
        limits = arm.safety_limits(safety, self.spec, self.driven)
        self.safety.limits, self.safety_cfg = limits, safety
        self.io.log('info', f'safety settings changed: max_velocity {limits.max_velocity}, '
                    f'max_delta {limits.max_delta}, sensor_timeout_s {safety.sensor_timeout_s}')

    def set_e_stop(self, on: bool) -> None:
        """E-stop true latches zero commands; false releases (if not also deactivated)."""
        if on == self.state.e_stopped:
            return
        self.state.e_stopped = on
        if on:
            self._halt('e-stop')
        else:
            self._release('e-stop released')

    def set_active(self, on: bool) -> None:
        """Deactivate (zero command, not acting) or activate again."""
        if on == self.state.active:
            return
        self.state.active = on
        if on:
            self._release('activated')
        else:
            self._halt('deactivated')

    def _halt(self, why: str) -> None:
        self.io.log('warning', f'{why}: zero command; not acting until released')
        self._cut_episode()
        if self.state.evaluating:
            self.evaluation.clear()
        self.state.phase = Phase.HALTED
        self._zero()

    def _release(self, why: str) -> None:
        st = self.state
        if st.halted:
            return
        self.io.log('info', f'{why}: acting again')
        if self.sensors:
            self._begin_reset()
            return
        st.phase = Phase.WAIT_START
        if st.latest is not None:
            obs = self.policy_obs(st.latest.observation)
            self._begin_episode(obs, False)
            st.deferred = obs
            self._try_deferred()

    def _alive(self) -> None:
        self.last_sensor = self.clock()
        if self.watchdog_fired:
            self.watchdog_fired = False
            self.io.log('info', 'sensor data back')

    def watchdog(self) -> None:
        """Stale-sensor watchdog: a command must not outlive the data it was computed from."""
        timeout = self.safety_cfg.sensor_timeout_s
        if timeout <= 0 or self.watchdog_fired or self.last_sensor is None \
                or self.clock() - self.last_sensor <= timeout:
            return
        if self.state.deferred is not None or self.last_command is None \
                or not np.any(self.last_command):
            return      # we hold the step ourselves (step budget), or the arm is at rest
        self.watchdog_fired = True
        zero = self.safety_cfg.timeout_action == 'zero'
        if zero:
            self._zero()
        self.io.log('warning', f'no sensor data for {timeout} s: '
                    f"{'zero command' if zero else 'holding'}")
        self._cut_episode()

    # ------------------------------------------------------------ learner and queries
    def load_weights(self, flat: FlatWeights, obs_dim: int, act_dim: int,
                     network: NetworkConfig, version: int) -> None:
        """Apply a learner's weights (ValueError with the reason if they do not fit)."""
        if (obs_dim, act_dim) != (self.obs_dim, self.act_dim):
            raise ValueError(f'weights are for obs {obs_dim} act {act_dim}, the actor has '
                             f'obs {self.obs_dim} act {self.act_dim}')
        current = self.policy.version if self.policy is not None else -1
        if version <= current and version != 0:
            raise ValueError(f'version {version} is not newer than {current}')
        policy = self.policy
        if policy is None or network != self.net_cfg:
            policy = Policy(obs_dim, act_dim, network, self.cfg.seed)
        policy.load_flat(flat, int(version), self.limits.weight, self.limits.observation)
        if self.policy is None:
            self.io.log('info', f'first policy weights: version {version}')
        self.policy, self.net_cfg = policy, network
        self._try_deferred()

    def set_budget(self, budget: int) -> None:
        """Take the learner's step budget (-1: unlimited); ValueError for 0 or below -1."""
        budget = int(budget)
        if budget == 0 or budget < UNLIMITED:
            raise ValueError(f'step budget {budget} is neither -1 (unlimited) nor positive')
        self.budget = budget
        self._try_deferred()

    def query(self, obs: np.ndarray | None, deterministic: bool) -> tuple[Action, np.ndarray]:
        """Answer a policy query: (action, its command in actuator units); ValueError if none."""
        if self.policy is None:
            raise ValueError('no policy weights yet')
        if obs is None:
            if self.state.latest is None:
                raise ValueError('no sensor data yet')
            obs = self.policy_obs(self.state.latest.observation)
        obs = np.asarray(obs, dtype=np.float32)
        if obs.size and np.isfinite(obs).all() \
                and float(np.max(np.abs(obs))) > self.limits.observation:
            raise ValueError(f'observation has |value| {float(np.max(np.abs(obs))):.3g} above '
                             f'the limit {self.limits.observation:g}')
        a = self.policy.act(obs, deterministic=deterministic)
        values = np.concatenate([a.action, a.mean, a.stddev, [a.log_prob]])
        if not np.isfinite(values).all():
            raise ValueError('the policy gives a non-finite action here (NaN or inf); '
                             'not answered')
        return a, self.actions.to_command(a.action)

    def shutdown(self) -> None:
        """Command zero on the way out (the driver holds the last command otherwise)."""
        self._zero()
