"""
Actor node: the policy server between a robot (or the bridge) and the learner.

- subscribes ``task/step`` (the bridge's per-step record, see bridge_node), builds the
  observation, samples an action (the mean in evaluation episodes) and publishes the command in
  actuator units on the command topic (std_msgs/Float64MultiArray, ros2_control style);
- records transitions with the behaviour log-probability of the pre-clip sampled action and
  publishes them as ``Trajectory`` chunks on ``trajectories`` (``chunk_length`` steps, or fewer
  at an episode end);
- applies ``PolicyWeights`` from ``learner/policy_weights`` after checking checksum, layout and
  architecture (rejected with a logged reason otherwise; nothing is unpickled);
- every ``eval_every`` training steps runs ``eval_episodes`` deterministic episodes and publishes
  the mean return on ``~/eval_return`` (std_msgs/Float64) and
  ``[env_steps, mean, std, episodes]`` on ``evaluation`` (std_msgs/Float64MultiArray);
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
import sys
import time

from mpo_ros import envs
from mpo_ros.core.config import _f, _validate_fields, NetworkConfig
from mpo_ros.core.policy import Policy
from mpo_ros.ros import common
from mpo_ros.ros import conversions as conv
from mpo_ros.ros.bridge_node import DEFAULT_COMMAND_TOPIC
from mpo_ros.ros.parameters import declare_config
from mpo_ros_interfaces.msg import PolicyWeights
from mpo_ros_interfaces.srv import GetAction
import numpy as np
from rclpy.node import Node
from std_msgs.msg import Float64, Float64MultiArray, Int64
import torch


@dataclass
class ActorConfig:
    """Actor node parameters."""

    task: str = _f('gym:Pendulum-v1', 'task id (sizes and actuator limits come from it)')
    seed: int = _f(0, 'policy sampling seed', (0, 2 ** 31 - 1))
    actor_id: str = _f('', 'actor id in trajectories (empty: the node name)')
    command_topic: str = _f(DEFAULT_COMMAND_TOPIC, 'joint command topic (actuator units)')
    chunk_length: int = _f(32, 'transitions per Trajectory message', (1, 100_000))
    eval_every: int = _f(5000, 'training steps between evaluations (0: never)', (0, 10 ** 10))
    eval_episodes: int = _f(5, 'deterministic episodes per evaluation', (1, 1000))
    wait_for_weights: bool = _f(True, 'act only once the learner sent weights')
    throttle: bool = _f(True, "hold commands while over the learner's step budget "
                        '(lockstep bridges; false with a realtime bridge or a robot)')
    timing_period_s: float = _f(2.0, 'seconds between ~/timing messages', (0.1, 3600.0))

    def __post_init__(self) -> None:
        """Validate."""
        _validate_fields(self)


class ActorNode(Node):
    """Policy server and trajectory recorder (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__('actor')
        torch.set_num_threads(1)
        _, cfg = declare_config(self, {'': ActorConfig, 'network.': NetworkConfig})
        self.cfg: ActorConfig = cfg['']
        try:
            env = envs.make(self.cfg.task, seed=self.cfg.seed)
        except envs.UnknownTaskError as exc:
            raise common.StartupError(f"invalid parameter 'task': {exc}") from exc
        self.spec = env.spec
        env.close()
        self.actor_id = self.cfg.actor_id or self.get_fully_qualified_name()
        self.policy: Policy | None = None
        if not self.cfg.wait_for_weights:
            self.policy = Policy(self.spec.obs_dim, self.spec.act_dim, cfg['network.'],
                                 self.cfg.seed)
        self.net_cfg: NetworkConfig = cfg['network.']
        self.pub_cmd = self.create_publisher(Float64MultiArray, self.cfg.command_topic,
                                             common.RELIABLE)
        self.pub_traj = self.create_publisher(conv.Trajectory, 'trajectories', common.RELIABLE)
        self.pub_eval = self.create_publisher(Float64, '~/eval_return', 10)
        self.pub_evaluation = self.create_publisher(Float64MultiArray, 'evaluation',
                                                    common.RELIABLE)
        self.pub_timing = self.create_publisher(Float64MultiArray, '~/timing', 10)
        self.create_subscription(Float64MultiArray, 'task/step', self._on_step, common.RELIABLE)
        self.create_subscription(PolicyWeights, 'learner/policy_weights', self._on_weights,
                                 common.LATCHED)
        self.create_subscription(Int64, 'learner/step_budget', self._on_budget, common.LATCHED)
        self.create_service(GetAction, '~/get_action', self._srv_get_action)
        self.create_timer(self.cfg.timing_period_s, self._on_timing)
        # acting state
        self.latest: conv.TaskStep | None = None
        self.last_seq = -1
        self.last_command: Float64MultiArray | None = None
        self.pending: tuple[np.ndarray, np.ndarray, float] | None = None  # obs, raw, log_prob
        self.deferred: conv.TaskStep | None = None
        self.budget: int | None = None
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
        self.next_eval = self.cfg.eval_every
        # timing
        self.latencies: collections.deque[float] = collections.deque(maxlen=100_000)
        self.window_steps, self.window_start = 0, time.monotonic()
        self._last_warn: dict[str, float] = {}
        self.get_logger().info(
            f'{self.actor_id}: {self.spec.task}, obs {self.spec.obs_dim}, act '
            f'{self.spec.act_dim}, chunk {self.cfg.chunk_length}, eval every '
            f'{self.cfg.eval_every} steps; waiting for '
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
        if self.policy is None:
            return False
        if self.evaluating or not self.cfg.throttle:
            return True
        # Compare the steps the learner has been sent (chunks flushed) with its budget: held
        # steps do not count, so the learner always gets enough to start and catch up.
        sent = self.env_steps - len(self.chunk['act'])
        return self.budget is not None and (self.budget < 0 or sent < self.budget)

    def _act(self, step: conv.TaskStep, received: float | None) -> None:
        a = self.policy.act(step.observation, deterministic=self.evaluating)
        self.last_command = conv.vector_msg(self.spec.scale_action(a.action))
        self.pub_cmd.publish(self.last_command)
        if received is not None:
            self.latencies.append(time.perf_counter() - received)
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
        self.ep_return = 0.0
        self.pending = None
        if not self.evaluating:
            self.episode_id += 1
            self.chunk = self._empty_chunk([obs], start)

    def _end_episode(self, truncated: bool) -> None:
        if self.evaluating:
            self.eval_returns.append(self.ep_return)
            if len(self.eval_returns) >= self.cfg.eval_episodes:
                self._finish_evaluation()
        else:
            self._flush(end=True, truncated=truncated)
            self.train_returns.append(self.ep_return)
        self.pending = None

    def _finish_evaluation(self) -> None:
        mean, std = float(np.mean(self.eval_returns)), float(np.std(self.eval_returns))
        self.pub_eval.publish(Float64(data=mean))
        self.pub_evaluation.publish(conv.vector_msg(
            [self.env_steps, mean, std, len(self.eval_returns)], 'env_steps,mean,std,episodes'))
        recent = self.train_returns[-10:]
        self.get_logger().info(
            f'eval at {self.env_steps} steps: return {mean:.1f} ± {std:.1f} '
            f'({len(self.eval_returns)} episodes); episodes {len(self.train_returns)}, train '
            f"return {np.mean(recent) if recent else float('nan'):.1f}, policy version "
            f'{self.policy.version if self.policy else 0}')
        self.evaluating = False
        while self.next_eval <= self.env_steps:
            self.next_eval += self.cfg.eval_every

    # ------------------------------------------------------------ callbacks
    def _on_step(self, msg: Float64MultiArray) -> None:
        received = time.perf_counter()
        try:
            step = conv.step_from_msg(msg, self.spec.obs_dim)
        except ValueError as exc:
            self._warn('step', f'task step rejected: {exc}')
            return
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

    def _on_weights(self, msg: PolicyWeights) -> None:
        try:
            flat = conv.weights_from_msg(msg)
            obs_dim, act_dim, net = conv.network_from_json(msg.config_json)
            if (obs_dim, act_dim) != (self.spec.obs_dim, self.spec.act_dim):
                raise ValueError(f'weights are for obs {obs_dim} act {act_dim}, the task has '
                                 f'obs {self.spec.obs_dim} act {self.spec.act_dim}')
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
        response.action = self.spec.scale_action(a.action).astype(np.float32)
        response.mean = a.mean.astype(np.float32)
        response.stddev = a.stddev.astype(np.float32)
        response.log_prob = float(a.log_prob)
        response.policy_version = int(self.policy.version)
        return response


def main(args: list[str] | None = None) -> int:
    """Console entry point ``actor``."""
    return common.run(ActorNode, 'actor', args)


if __name__ == '__main__':
    sys.exit(main())
