"""
TRPO's vine estimator (Sec. 5.2): simulator snapshots, the collector, the surrogate, the runners.

Each check compares with values obtained independently of the code under test: restored
continuations against an untouched copy of the same environment, rollout rewards against a
replay of the logged actions in plain Python on a tiny deterministic environment written here,
Q estimates and the self-normalised surrogate against numbers worked out by hand, common random
numbers against the whitened noise recovered from the logged actions.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mpo_ros import envs
from mpo_ros.core import learners
from mpo_ros.core.config import Config, ConfigError, NetworkConfig, TRPOConfig
from mpo_ros.core.learners.base import DataRequest
from mpo_ros.core.losses import trpo
from mpo_ros.core.policy import Policy
from mpo_ros.trainer import main
from mpo_ros.vine import VineCollector


# ---------------------------------------------------------------- a tiny deterministic env
class Line(envs.Snapshots):
    """
    A point on a line: x <- x + a, reward x after the move; terminal at |x| >= 2.5, time limit.

    Observations [x, t / 10]; actions are used as given (the box is [-1, 1]). Every step is logged
    as (episode, t, x before, action) for the tests.
    """

    def __init__(self, limit=8):
        self.spec = envs.EnvSpec('line', 2, 1, (-1.0,), (1.0,), (), 0.1, limit)
        self.limit = limit
        self.x, self.t = 0.0, 0
        self.log = []
        self.resets = 0

    def reset(self):
        self.resets += 1
        self.x, self.t = 0.1 * (self.resets % 3), 0
        self._new_episode()
        return self._obs()

    def _obs(self):
        return np.array([self.x, 0.1 * self.t], np.float32)

    def step(self, action):
        a = float(self.spec.scale_action(action)[0])
        self.log.append((self._episode, self.t, self.x, a))
        self.x += a
        self.t += 1
        terminal = abs(self.x) >= 2.5
        return envs.Step(self._obs(), self.x, terminal, self.t >= self.limit and not terminal)

    def _save_state(self):
        return (self.x, self.t)

    def _load_state(self, state):
        self.x, self.t = state

    def close(self):
        pass

    def disable_time_limit(self):
        self.limit = 10 ** 9


def _line_reward_replay(x, t, actions, limit, horizon):
    """Rewards and alive flags of one rollout from (x, t), by hand: the rules of ``Line``."""
    rewards, alive = np.zeros(horizon), np.zeros(horizon, bool)
    for h, a in enumerate(actions):
        x += a
        t += 1
        rewards[h], alive[h] = x, True
        if abs(x) >= 2.5 or t >= limit:
            break
    return rewards, alive


def _policy(obs_dim=2, act_dim=1, seed=0, init_std=0.2):
    net = NetworkConfig(policy_hidden=(8,), critic_hidden=(8,), init_std=init_std,
                        normalize_observations=False)
    policy = Policy(obs_dim, act_dim, net, seed=seed)
    with torch.no_grad():                 # a mean that depends on the state
        for p in policy.net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(7)))
    return policy, net


REQUEST = DataRequest(learners.VINE, batch_size=5, sequence_length=4, actions_per_state=3,
                      trunk_steps=20, parameter='trpo.estimator')


def _collect(seed=0):
    """
    One collect() on Line; returns (env, policy, batch, trunk log, rollout logs).

    The rollout logs are the steps taken inside each ``branch`` call, split into its K
    rollouts (each starts from the saved state; later steps have a larger t).
    """
    env = Line()
    policy, _ = _policy()
    collector = VineCollector(env, policy, REQUEST, seed=seed)
    inside, branch = [], collector.branch

    def spy(obs, first):
        begin = len(env.log)
        out = branch(obs, first)
        inside.append((begin, len(env.log)))
        return out

    collector.branch = spy
    begin = len(env.log)
    batch = collector.collect()
    rollouts, skip = [], set()
    for a, b in inside:
        runs = []
        for entry in env.log[a:b]:
            if entry[:3] == env.log[a][:3]:
                runs.append([])
            runs[-1].append(entry)
        rollouts.append(runs)
        skip.update(range(a, b))
    trunk = [e for i, e in enumerate(env.log[begin:], begin) if i not in skip]
    return env, policy, batch, trunk, rollouts


def test_rollout_rewards_and_q_values_by_hand():
    env, policy, batch, trunk, rollouts = _collect()
    n, k, h = REQUEST.batch_size, REQUEST.actions_per_state, REQUEST.sequence_length
    assert batch.observations.shape == (n, 2) and batch.actions.shape == (n, k, 1)
    assert batch.rewards.shape == batch.alive.shape == (n, k, h)
    assert batch.trunk_steps == 20 and batch.trunk_observations.shape == (20, 2)
    assert len(trunk) == 20 and len(rollouts) == n and all(len(r) == k for r in rollouts)
    assert batch.branch_steps == sum(len(run) for runs in rollouts for run in runs)
    gamma = 0.9
    q = trpo.vine_q_values(torch.as_tensor(batch.rewards), torch.as_tensor(batch.alive), gamma)
    for i, runs in enumerate(rollouts):
        _, t, x, _ = runs[0][0]
        assert batch.observations[i] == pytest.approx([x, 0.1 * t])
        # The trunk's own step from this state takes the first of the K actions.
        trunk_step = next(e for e in trunk if e[:3] == runs[0][0][:3])
        assert trunk_step[3] == pytest.approx(float(np.clip(batch.actions[i, 0, 0], -1, 1)))
        for j, run in enumerate(runs):
            actions = [step[3] for step in run]
            assert actions[0] == pytest.approx(float(np.clip(batch.actions[i, j, 0], -1, 1)))
            rewards, alive = _line_reward_replay(x, t, actions, env.limit, h)
            np.testing.assert_allclose(batch.rewards[i, j], rewards, rtol=1e-6)
            np.testing.assert_array_equal(batch.alive[i, j], alive)
            by_hand = sum(gamma ** s * r for s, r in enumerate(rewards[:alive.sum()]))
            assert float(q[i, j]) == pytest.approx(by_hand, rel=1e-6)
    assert batch.alive[:, :, 0].all()


def test_q_values_and_surrogate_by_hand():
    rewards = torch.tensor([[[1.0, 2.0, 3.0], [1.0, 5.0, 7.0]]])         # [1, 2, 3]
    alive = torch.tensor([[[True, True, True], [True, False, False]]])
    q = trpo.vine_q_values(rewards, alive, 0.5)
    assert q.tolist() == [[1.0 + 1.0 + 0.75, 1.0]]
    # Eq. 16: sum_k w_k Q_k / sum_k w_k with weights pi / pi_old = 1, 2, 1.
    old = torch.tensor([[-1.0, -2.0, -0.5]])
    new = old + torch.log(torch.tensor([[1.0, 2.0, 1.0]]))
    q3 = torch.tensor([[1.0, 4.0, 7.0]])
    assert float(trpo.vine_surrogate(new, old, q3)) == pytest.approx((1 + 8 + 7) / 4)
    # Averaged over states; at pi = pi_old it is the mean Q of each state.
    two = trpo.vine_surrogate(torch.zeros(2, 3), torch.zeros(2, 3),
                              torch.tensor([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]]))
    assert float(two) == pytest.approx((2.0 + 20.0) / 2)


def test_surrogate_gradient_is_the_per_state_baseline_policy_gradient():
    """At pi = pi_old: grad L = mean_n 1/K sum_k grad log pi(a_nk) (Q_nk - mean_k Q_nk)."""
    torch.manual_seed(0)
    theta = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    q = torch.randn(2, 3, dtype=torch.float64) * 5 + 100     # a large common offset
    log_prob = theta * 1.0                                    # d log pi / d theta = 1
    trpo.vine_surrogate(log_prob, log_prob.detach(), q).backward()
    expected = (q - q.mean(1, keepdim=True)) / 3 / 2
    torch.testing.assert_close(theta.grad, expected)


def test_common_random_numbers_are_shared_across_the_k_rollouts():
    env, policy, batch, _, rollouts = _collect(seed=3)
    noises = []
    for runs in rollouts:
        per_rollout = []
        for run in runs:
            eps = []
            for (_, t, x, a) in run[1:]:                 # the continuation steps
                dist = policy.net(torch.tensor([x, 0.1 * t], dtype=torch.float32))
                assert abs(a) < 1, 'an action clipped by the env hides its noise'
                eps.append(float((a - dist.mean[0]) / dist.scale_tril[0, 0]))
            per_rollout.append(eps)
        shortest = min(len(e) for e in per_rollout)
        for eps in per_rollout[1:]:
            np.testing.assert_allclose(eps[:shortest], per_rollout[0][:shortest], atol=1e-5)
        if shortest:
            noises.append(per_rollout[0][0])
    assert len(noises) >= 3, 'rollouts that continue (not stopped by the time limit)'
    assert len(set(np.round(noises, 6))) == len(noises), 'fresh numbers for every state'
    # The K first actions differ: sampled, not common.
    assert all(len(set(first)) == REQUEST.actions_per_state for first in batch.actions[..., 0])


def test_trunk_is_the_plain_rollout_of_the_policy():
    """Branching leaves no trace: the trunk is what the policy does without any rollouts."""
    env, policy, batch, _, _ = _collect(seed=1)
    plain_env, (plain_policy, _) = Line(), _policy()
    obs, trunk = plain_env.reset(), []
    for _ in range(20):
        trunk.append(obs)
        step = plain_env.step(plain_policy.act(obs).action)
        obs = plain_env.reset() if step.terminal or step.truncated else step.observation
    np.testing.assert_array_equal(batch.trunk_observations, np.array(trunk))


def test_learner_step_moves_towards_the_better_actions():
    """On Line, larger actions earn more: the vine update raises the mean action."""
    cfg = Config(network=NetworkConfig(policy_hidden=(8,), critic_hidden=(8,),
                                       normalize_observations=False),
                 trpo=TRPOConfig(estimator='vine', batch_size=40, vine_states=20,
                                 vine_actions=4, vine_rollout_length=4))
    learner = learners.make('trpo', 2, 1, cfg, seed=0)
    assert learner.data == DataRequest(learners.VINE, 20, 4, 4, 40, 'trpo.estimator')
    policy = Policy(2, 1, learner.network, seed=0)
    policy.load_state(learner.policy_state())
    collector = VineCollector(Line(limit=100), policy, learner.data, seed=0)
    batch = collector.collect()
    probe = torch.tensor(batch.observations)
    with torch.no_grad():
        before = float(learner.policy(probe).mean.mean())
    metrics = learner.step(batch)
    assert set(metrics) == set(learner.metric_names())
    assert set(learner.log_metrics) <= set(metrics)
    assert metrics['perf/line_search_accepted'] == 1.0
    assert 0 < metrics['kl/policy'] <= cfg.trpo.max_kl
    assert metrics['loss/surrogate_gain'] > 0
    with torch.no_grad():
        assert float(learner.policy(probe).mean.mean()) > before + 0.01
    assert metrics['perf/branch_steps'] == batch.alive.sum()


def test_vine_configuration_is_validated():
    assert TRPOConfig().estimator == 'single_path'
    with pytest.raises(ConfigError, match='estimator'):
        TRPOConfig(estimator='tree')
    with pytest.raises(ConfigError, match='vine_states'):
        TRPOConfig(estimator='vine', batch_size=10, vine_states=11)
    with pytest.raises(ConfigError, match='vine_actions'):
        TRPOConfig(estimator='vine', vine_actions=1)
    with pytest.raises(ValueError, match='actions_per_state'):
        DataRequest(learners.VINE, 5, 4, actions_per_state=1, trunk_steps=10)
    assert learners.VINE in learners.SIMULATION_ONLY


# ---------------------------------------------------------------- simulator snapshots
def _run(env, actions):
    out = []
    for a in actions:
        step = env.step(a)
        out.append(step)
        if step.terminal or step.truncated:
            out.append(env.reset())
    return out


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray):                   # a reset's first observation
            assert x.tobytes() == y.tobytes()
        else:
            assert x.observation.tobytes() == y.observation.tobytes()
            assert (x.reward, x.terminal, x.truncated) == (y.reward, y.terminal, y.truncated)


@pytest.mark.parametrize('task, before, after', [
    ('gym:InvertedPendulum-v5', 3, 40),     # terminal, reset within the continuation
    ('gym:Ant-v5', 5, 20),                  # reads positions computed before the last step
    ('gym:Pendulum-v1', 190, 30),           # the time limit (200 steps), a reset, its RNG
    ('dmc:cartpole-swingup', 995, 10),      # the suite's step limit (1000 steps)
])
def test_restore_then_step_is_bit_identical_to_the_original_continuation(task, before, after):
    rng = np.random.default_rng(0)
    original, restored = envs.make(task, seed=4), envs.make(task, seed=4)
    dim = original.spec.act_dim
    actions = rng.uniform(-1, 1, (before + after, dim))
    original.reset()
    restored.reset()
    _run(original, actions[:before])
    _run(restored, actions[:before])
    snap = restored.snapshot()
    for _ in range(2):                      # wander off (not past the episode), come back
        for a in rng.uniform(-1, 1, (7, dim)):
            if restored.step(a).terminal:
                break
        # What a task with noisy steps does: draw from the env's RNG (the continuation
        # crosses a reset, which draws from it too).
        inner = restored.env.unwrapped if task.startswith('gym:') else restored.env.task
        (inner.np_random if task.startswith('gym:') else inner.random).standard_normal(3)
        restored.restore(snap)
    _same(_run(restored, actions[before:]), _run(original, actions[before:]))


def test_snapshot_errors_are_clear():
    env = envs.make('gym:Pendulum-v1', seed=0)
    with pytest.raises(ValueError, match='reset'):
        env.snapshot()
    env.reset()
    snap = env.snapshot()
    env.reset()
    with pytest.raises(ValueError, match='episode'):
        env.restore(snap)
    with pytest.raises(ValueError, match='not a snapshot'):
        envs.make('gym:Pendulum-v1', seed=0).restore(snap)
    jaco = envs.make('manip:reach_site_features', seed=0)
    jaco.reset()
    with pytest.raises(envs.SnapshotUnsupported, match='composer'):
        jaco.snapshot()


# ---------------------------------------------------------------- runners
def test_trainer_runs_vine_end_to_end(tmp_path):
    out = tmp_path / 'vine'
    rc = main(['--algorithm', 'trpo', '--trpo.estimator', 'vine',
               '--task', 'gym:InvertedPendulum-v5', '--steps', '3000', '--seed', '2',
               '--out', str(out), '--eval_every', '1000', '--eval_episodes', '1',
               '--final_eval_episodes', '2', '--trpo.batch_size', '200',
               '--trpo.vine_states', '10', '--trpo.vine_actions', '3',
               '--trpo.vine_rollout_length', '10',
               '--network.policy_hidden', '16', '--network.critic_hidden', '16'])
    assert rc == 0
    rows = list(csv.DictReader(open(out / 'progress.csv')))
    steps = [int(r['env_steps']) for r in rows]
    assert len(rows) >= 3 and steps == sorted(steps) and steps[-1] >= 3000
    # Every simulator step counts: trunk steps plus rollout steps, update by update (a row
    # holds the means over the updates since the previous row).
    updates, total = 0, 0.0
    for r in rows:
        assert float(r['perf/trunk_steps']) == 200
        assert 0 < float(r['perf/branch_steps']) <= 10 * 3 * 10
        new = int(r['updates']) - updates
        total += new * (200 + float(r['perf/branch_steps']))
        updates = int(r['updates'])
        assert int(r['env_steps']) == pytest.approx(total)
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['env_steps'] == steps[-1] and summary['updates'] == updates
    assert (out / 'checkpoint.pt').exists()


def test_trainer_refuses_vine_on_a_task_that_cannot_restore(tmp_path, capsys):
    rc = main(['--algorithm', 'trpo', '--trpo.estimator', 'vine', '--task',
               'manip:reach_site_features', '--steps', '100', '--trpo.batch_size', '200',
               '--network.policy_hidden', '8', '--network.critic_hidden', '8',
               '--out', str(tmp_path)])
    assert rc == 2
    assert 'composer' in capsys.readouterr().err


@pytest.mark.ros
def test_learner_node_refuses_vine_at_start():
    pytest.importorskip('rclpy')
    exe = os.path.join(os.path.dirname(sys.executable), 'learner')
    proc = subprocess.run([exe, '--ros-args', '-p', 'algorithm:=trpo',
                           '-p', 'trpo.estimator:=vine'],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "invalid parameter 'trpo.estimator'" in proc.stderr
    assert 'robot cannot be restored' in proc.stderr
