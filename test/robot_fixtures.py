"""Shared pieces of the robot-layer tests: a fake host, a fake clock, small specs, a policy."""

import math

from mpo_ros.core.config import NetworkConfig
from mpo_ros.envs import EnvSpec
from mpo_ros.robot.actor import RobotActor
from mpo_ros.robot.arm import ActorConfig, ReachConfig, ResetConfig, SafetyConfig
from mpo_ros.robot.episode import TaskStep
import numpy as np
import torch

NET = NetworkConfig(policy_hidden=(8,), critic_hidden=(8,), covariance='diagonal',
                    normalize_observations=False)
# Task/step path: 3 observations, 2 actuators with asymmetric bounds, no named joints.
LINE = EnvSpec('test:line', 3, 2, (-2.0, 0.0), (2.0, 1.0), (), 0.05, 5)
# Sensor path: two joints, the first continuous, the second limited to [-1, 1].
ARM = EnvSpec('test:arm', 15, 2, (-1.0, -1.0), (1.0, 1.0), ('j1', 'j2'), 0.04, None,
              ((-np.inf, np.inf), (-1.0, 1.0)))
TARGET = np.array([0.5, 0.0, 0.2])


class FakeIO:
    """Records what the robot layer sends out; answers reset requests with ``reset``."""

    def __init__(self, reset: str = 'none') -> None:
        self.commands, self.chunks, self.evals, self.logs = [], [], [], []
        self.reset_answer, self.reset_calls = reset, 0

    def command(self, values):
        self.commands.append(np.array(values, dtype=float))

    def chunk(self, chunk):
        self.chunks.append(chunk)

    def evaluation(self, result):
        self.evals.append(result)

    def request_reset(self):
        self.reset_calls += 1
        return self.reset_answer

    def log(self, level, text, key=''):
        self.logs.append((level, text))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make_actor(spec=LINE, io=None, clock=None, safety=None, reset=None, reach=None, **cfg):
    """Return (RobotActor, io, clock) with a random policy that acts at once."""
    io, clock = io or FakeIO(), clock or Clock()
    base = dict(wait_for_weights=False, throttle=False, eval_every=0, chunk_length=100)
    base.update(cfg)
    actor = RobotActor(ActorConfig(**base), spec, reach or ReachConfig(),
                       reset or ResetConfig(service=''), safety or SafetyConfig(), NET, io,
                       'test_actor', clock)
    return actor, io, clock


def fix_policy(actor, mean, std):
    """Make the actor's policy N(mean, diag(std^2)) at every observation."""
    net = actor.policy.net
    with torch.no_grad():
        net.mean_head.weight.zero_()
        net.mean_head.bias.copy_(torch.tensor(mean, dtype=torch.float32))
        net.diag_head.weight.zero_()
        net.diag_head.bias.copy_(torch.tensor(
            [math.log(math.expm1(s - NET.min_std)) for s in std], dtype=torch.float32))


def gaussian_log_density(x, mean, std):
    """Return log N(x; mean, diag(std^2)), written out by hand."""
    return sum(-0.5 * ((xi - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
               for xi, m, s in zip(x, mean, std))


def step(seq, obs, reward=0.0, terminal=False, truncated=False, start=False):
    """Return a task/step record."""
    return TaskStep(seq, reward, terminal, truncated, start, np.asarray(obs, np.float32))


def frame(actor, stamp, q, ee=TARGET, qd=(0.0, 0.0)):
    """Feed target, joint state and pose of one instant; return whether the actor acted."""
    actor.on_target(stamp, TARGET)
    actor.on_joint_state(stamp, np.asarray(q, float), np.asarray(qd, float))
    return actor.on_ee_pose(stamp, np.asarray(ee, float))
