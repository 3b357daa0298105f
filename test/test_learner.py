"""The learner: determinism, exact resume, checkpointed duals, and learning a known optimum."""

import numpy as np
import pytest
import torch

from mpo_ros.core import checkpoint
from mpo_ros.core.config import MPOConfig, NetworkConfig
from mpo_ros.core.learners.mpo import MPOLearner
from mpo_ros.core.replay import SequenceReplay

SMALL = NetworkConfig(policy_hidden=(32, 32), critic_hidden=(32, 32))


def _replay(seed=0, obs_dim=3, act_dim=2, n=300):
    rng = np.random.default_rng(seed)
    replay = SequenceReplay(obs_dim, act_dim, 1000, seed=seed)
    for k in range(n):
        replay.add(rng.normal(size=obs_dim), rng.normal(size=act_dim), rng.normal(),
                   rng.normal(size=obs_dim), rng.random() < 0.05, (k + 1) % 50 == 0,
                   rng.normal() - 2.0)
    return replay


def _params(learner):
    return torch.cat([p.detach().reshape(-1) for p in
                      list(learner.policy.parameters()) + list(learner.critic.parameters())
                      + [learner.log_temperature, learner.log_alpha_mean,
                         learner.log_alpha_cov]])


@pytest.mark.parametrize('covariance', ['full', 'diagonal'])
def test_step_is_deterministic_given_seed(covariance):
    net = NetworkConfig(policy_hidden=(32, 32), critic_hidden=(32, 32), covariance=covariance)
    batch = _replay().sample(16, 4)
    a, b = (MPOLearner(3, 2, MPOConfig(), net, seed=7) for _ in range(2))
    for _ in range(3):
        ma, mb = a.step(batch), b.step(batch)
    ma.pop('perf/step_time'), mb.pop('perf/step_time')
    assert ma == mb
    assert torch.equal(_params(a), _params(b))
    c = MPOLearner(3, 2, MPOConfig(), net, seed=8)
    assert not torch.equal(_params(a), _params(c))


def test_save_load_continue_equals_never_stopping(tmp_path):
    cfg = MPOConfig(target_update_period=2)
    replay = _replay()
    batches = [replay.sample(16, 4) for _ in range(6)]
    straight = MPOLearner(3, 2, cfg, SMALL, seed=1)
    straight.observe(batches[0].observations)
    for b in batches:
        straight.step(b)

    first = MPOLearner(3, 2, cfg, SMALL, seed=1)
    first.observe(batches[0].observations)
    for b in batches[:3]:
        first.step(b)
    checkpoint.save_atomic({'learner': first.state_dict()}, tmp_path / 'ckpt.pt')
    resumed = MPOLearner(3, 2, cfg, SMALL, seed=999)     # different init, all overwritten
    resumed.load_state_dict(checkpoint.load(tmp_path / 'ckpt.pt')['learner'])
    assert resumed.num_steps == 3
    for b in batches[3:]:
        resumed.step(b)
    assert torch.equal(_params(straight), _params(resumed))
    assert torch.equal(straight.target_critic.head.weight, resumed.target_critic.head.weight)
    assert torch.equal(straight.normalizer.mean, resumed.normalizer.mean)


def test_checkpoint_holds_duals_and_optimiser_state(tmp_path):
    learner = MPOLearner(3, 2, MPOConfig(), SMALL, seed=0)
    batch = _replay().sample(16, 4)
    for _ in range(5):
        learner.step(batch)
    with torch.no_grad():
        learner.log_temperature.fill_(1.234)
        learner.log_alpha_mean.fill_(-2.5)
        learner.log_alpha_cov.fill_(4.0)
    checkpoint.save_atomic(learner.state_dict(), tmp_path / 'c.pt')
    fresh = MPOLearner(3, 2, MPOConfig(), SMALL, seed=0)
    fresh.load_state_dict(checkpoint.load(tmp_path / 'c.pt'))
    assert fresh.log_temperature.item() == pytest.approx(1.234)
    assert fresh.log_alpha_mean.item() == pytest.approx(-2.5)
    assert fresh.log_alpha_cov.item() == pytest.approx(4.0)
    assert fresh.dual_opt.state_dict()['state'][0]['step'] == 5
    assert fresh.num_steps == 5
    # A dual optimiser that is not its own (the known bug) would not hold these three.
    dual_params = {id(p) for g in learner.dual_opt.param_groups for p in g['params']}
    assert dual_params == {id(learner.log_temperature), id(learner.log_alpha_mean),
                           id(learner.log_alpha_cov)}


def test_critic_learns_retrace_targets_not_plain_returns():
    """
    The critic converges to the fixed point of the Retrace targets.

    With a constant reward r and continuation g, Q converges to r / (1 - g) at every state
    of a truncated (never terminal) chain; a terminal every step gives Q = r instead.
    """
    for terminal, expected in ((False, 1.0 / (1 - 0.5)), (True, 1.0)):
        replay = SequenceReplay(2, 1, 5000, seed=0)
        rng = np.random.default_rng(0)
        for k in range(2000):
            replay.add(rng.normal(size=2), rng.normal(size=1), 1.0, rng.normal(size=2),
                       terminal, (k + 1) % 40 == 0, -1.0)
        learner = MPOLearner(2, 1, MPOConfig(discount=0.5, target_update_period=20,
                                             critic_lr=3e-3), SMALL, seed=0)
        for _ in range(400):
            m = learner.step(replay.sample(32, 3))
        assert m['q/target_mean'] == pytest.approx(expected, abs=0.1)
        q = learner.critic(torch.randn(64, 2), torch.rand(64, 1) * 2 - 1)
        assert q.mean().item() == pytest.approx(expected, abs=0.15)


def test_policy_improves_on_a_bandit():
    """
    The policy mean moves to the optimum of a one-step bandit.

    One-step episodes with reward -(a - 0.5)^2: the mean action must approach 0.5, and the
    E-step temperature adapts so the realised KL of the weights tracks epsilon.
    """
    learner = MPOLearner(1, 1, MPOConfig(epsilon=0.1, epsilon_mean=0.01,
                                         target_update_period=10),
                         NetworkConfig(policy_hidden=(16,), critic_hidden=(32, 32),
                                       normalize_observations=False), seed=0)
    replay = SequenceReplay(1, 1, 20000, seed=0)
    obs = np.zeros(1, np.float32)
    for it in range(600):
        with torch.no_grad():
            dist = learner.policy(torch.from_numpy(obs)[None])
        a = dist.sample(64, generator=learner.generator)[:, 0]
        lp = dist.log_prob(a[:, None])[:, 0]
        for ai, li in zip(a.numpy(), lp.numpy()):
            r = -float((np.clip(ai[0], -1, 1) - 0.5) ** 2)
            replay.add(obs, ai, r, obs, True, False, float(li))
        m = learner.step(replay.sample(64, 1))
    mean = learner.policy(torch.zeros(1, 1)).mean.item()
    assert mean == pytest.approx(0.5, abs=0.1)
    assert m['kl/q_uniform'] == pytest.approx(0.1, abs=0.05)


def test_per_dim_requires_diagonal():
    with pytest.raises(ValueError, match='diagonal'):
        MPOLearner(3, 2, MPOConfig(per_dim_kl=True), SMALL)
    learner = MPOLearner(3, 2, MPOConfig(per_dim_kl=True),
                         NetworkConfig(policy_hidden=(8,), critic_hidden=(8,),
                                       covariance='diagonal'))
    assert learner.log_alpha_mean.shape == (2,)
    assert np.isfinite(learner.step(_replay().sample(8, 2))['loss/policy'])


def test_critic_evaluates_the_target_policy_off_policy():
    """
    The critic learns Q of the target policy from behaviour data, not plain n-step returns.

    One state, reward clip(a, -1, 1), gamma 0.5, never terminal. Behaviour b = N(0.5, 0.5^2),
    target pi = N(0, 0.5^2) (the learner's initial policy, frozen by a negligible learning
    rate). Then V_pi = E_pi[clip(a)] / (1 - gamma) = 0 and Q_pi(a) = clip(a), so Q(0.5) = 0.5.
    A critic regressed on plain 3-step returns of b's rewards (a bug seen in public MPOs) ends
    near 0.5 + 0.5 * 0.46 + 0.25 * 0.46 + ... instead (checked: that mutant fails here).
    """
    rng = np.random.default_rng(0)
    net = NetworkConfig(policy_hidden=(16,), critic_hidden=(32, 32), init_std=0.5,
                        normalize_observations=False)
    learner = MPOLearner(1, 1, MPOConfig(discount=0.5, policy_lr=1e-7, critic_lr=2e-3,
                                         target_update_period=25, sequence_length=3,
                                         num_action_samples=10), net, seed=0)
    with torch.no_grad():
        pi = learner.policy(torch.zeros(1, 1))
    assert abs(pi.mean.item()) < 0.01 and pi.stddev.item() == pytest.approx(0.5, rel=1e-3)
    replay = SequenceReplay(1, 1, 20000, seed=0)
    obs = np.zeros(1, np.float32)
    a = rng.normal(0.5, 0.5, size=20000)
    log_b = -0.5 * ((a - 0.5) / 0.5) ** 2 - np.log(0.5) - 0.5 * np.log(2 * np.pi)
    for k in range(20000):
        replay.add(obs, a[k:k + 1], float(np.clip(a[k], -1, 1)), obs, False,
                   (k + 1) % 100 == 0, float(log_b[k]))
    for _ in range(800):
        learner.step(replay.sample(32, 3))
    with torch.no_grad():
        q = learner.critic(torch.zeros(3, 1), torch.tensor([[-0.5], [0.0], [0.5]]))
    torch.testing.assert_close(q, torch.tensor([-0.5, 0.0, 0.5]), atol=0.12, rtol=0)


@pytest.mark.parametrize('cap', [50.0, None])
def test_multipliers_stop_at_max_multiplier(cap):
    # Bounds no Adam step can meet (KL 0 only at the target's own parameters): the multipliers
    # rise every step; without a cap they pass any bound, with one they stop exactly there.
    cfg = MPOConfig(epsilon_mean=1e-8, epsilon_cov=1e-10, dual_lr=0.5,
                    target_update_period=10 ** 6, init_alpha_mean=10.0, init_alpha_cov=10.0,
                    max_multiplier=cap if cap else 1e12)
    learner = MPOLearner(3, 2, cfg, SMALL, seed=0)
    replay = _replay()
    for _ in range(25):
        metrics = learner.step(replay.sample(16, 4))
    alphas = [learner.log_alpha_mean.exp().item(), learner.log_alpha_cov.exp().item()]
    if cap:
        assert alphas == pytest.approx([cap, cap], rel=1e-5)
        assert metrics['dual/alpha_cov'] <= cap * (1 + 1e-5)
    else:
        assert min(alphas) > 1e3


def test_loading_an_uncapped_checkpoint_applies_the_cap():
    old = MPOLearner(3, 2, MPOConfig(max_multiplier=1e12), SMALL, seed=0)
    with torch.no_grad():
        old.log_alpha_cov.fill_(40.0)          # e^40 ~ 2.4e17, as a pre-cap run reached
    capped = MPOLearner(3, 2, MPOConfig(max_multiplier=1e6), SMALL, seed=0)
    capped.load_state_dict(old.state_dict())
    assert capped.log_alpha_cov.exp().item() == pytest.approx(1e6, rel=1e-5)
