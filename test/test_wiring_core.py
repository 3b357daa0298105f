"""
Edge cases of the core modules that surviving mutants showed untested.

Each test names the kind of mutant it kills (mutmut run, bench/results/mutation_core.md):
sampling of diagonal Gaussians, KLs over more than one batch dimension, replay state checks,
and the replay-ratio schedule's boundaries and argument checks.
"""

import numpy as np
import pytest
import torch

from mpo_ros.core.distributions import DiagGaussian, FullGaussian
from mpo_ros.core.replay import SequenceReplay
from mpo_ros.core.schedule import ReplayRatio, UNLIMITED


# ---------------------------------------------------------------------- distributions
def test_diag_sample_moments_shapes_and_dtype():
    """Sample mean + std * eps (not std / eps); one sample without n; the mean's dtype."""
    gen = torch.Generator().manual_seed(0)
    mean = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    std = torch.tensor([[0.5, 2.0, 0.1]], dtype=torch.float64)
    dist = DiagGaussian(mean, std)
    x = dist.sample(4000, generator=gen)
    assert x.shape == (4000, 1, 3) and x.dtype == torch.float64
    torch.testing.assert_close(x.mean(0), mean, atol=0.1, rtol=0)
    torch.testing.assert_close(x.std(0), std, rtol=0.06, atol=0)
    one = dist.sample(generator=gen)
    assert one.shape == (1, 3) and one.dtype == torch.float64


def test_full_sample_without_n_and_dtype():
    gen = torch.Generator().manual_seed(0)
    dist = FullGaussian(torch.zeros(4, 2, dtype=torch.float64),
                        torch.eye(2, dtype=torch.float64).expand(4, 2, 2))
    one = dist.sample(generator=gen)
    assert one.shape == (4, 2) and one.dtype == torch.float64
    assert dist.sample(3, generator=gen).shape == (3, 4, 2)


def test_kls_over_two_batch_dimensions_by_hand():
    """Sum the KLs over the action dimension only, also with batch shape [2, 3]."""
    gen = torch.Generator().manual_seed(1)
    m1, m2 = torch.randn(2, 3, 2, generator=gen), torch.randn(2, 3, 2, generator=gen)
    s1, s2 = torch.rand(2, 3, 2, generator=gen) + 0.5, torch.rand(2, 3, 2, generator=gen) + 0.5
    expected = 0.5 * ((s1 / s2) ** 2 + ((m1 - m2) / s2) ** 2 - 1 - 2 * torch.log(s1 / s2))
    expected = expected.sum(-1)
    torch.testing.assert_close(DiagGaussian(m1, s1).kl(DiagGaussian(m2, s2)), expected)
    full = FullGaussian(m1, torch.diag_embed(s1)).kl(FullGaussian(m2, torch.diag_embed(s2)))
    torch.testing.assert_close(full, expected)


# ---------------------------------------------------------------------- replay state
def _replay():
    replay = SequenceReplay(2, 1, 10, seed=0)
    for k in range(4):
        replay.add(np.full(2, k), np.ones(1), 1.0, np.full(2, k + 1), False, False, -1.0)
    return replay


def test_replay_load_rejects_a_wrong_dtype_with_its_name():
    state = _replay().state_dict()
    state['reward'] = state['reward'].double()             # right shape, wrong dtype
    with pytest.raises(ValueError, match=r'replay field reward: float64 \(4,\) does not fit '
                       r'4 slots of float32 \(\)'):
        _replay().load_state_dict(state)
    state = _replay().state_dict()
    state['obs'] = state['obs'][:, :1]                      # wrong trailing shape
    with pytest.raises(ValueError, match=r'replay field obs: float32 \(4, 1\) does not fit 4 '
                       r'slots of float32 \(2,\)'):
        _replay().load_state_dict(state)


def test_replay_rng_state_is_saved_as_strings():
    """Big integers of the bit generator's state are strings (nested dicts included)."""
    rng_state = _replay().state_dict()['meta']['rng']

    def ints(d):
        return [v for v in d.values() if isinstance(v, int) and not isinstance(v, bool)] + [
            x for v in d.values() if isinstance(v, dict) for x in ints(v)]

    def strings(d):
        return [v for v in d.values() if isinstance(v, str)] + [
            x for v in d.values() if isinstance(v, dict) for x in strings(v)]

    assert ints(rng_state) == []
    assert any(s.isdigit() and int(s) > 2 ** 64 for s in strings(rng_state))


# ---------------------------------------------------------------------- replay-ratio schedule
@pytest.mark.parametrize('args', [(-1.0, 10), (1.0, -1), (1.0, 10, -1.0), (1.0, 10, 0.0, -1.0)])
def test_schedule_rejects_each_negative_argument(args):
    with pytest.raises(ValueError, match='updates_per_step, min_size, max_update_debt and '
                       'max_update_lag must be >= 0'):
        ReplayRatio(*args)


def test_schedule_boundaries():
    """min_size 0 is allowed, learning starts at exactly min_size, small lags still hold."""
    s = ReplayRatio(1.0, 0)
    assert s.learning(0) and s.step_budget(5) == UNLIMITED     # default: actors never held
    s = ReplayRatio(1.0, 10)
    assert s.learning(10) and not s.learning(9)
    s = ReplayRatio(2.0, 10, max_update_lag=0.5)
    assert s.step_budget(3) == 10 + int(3.5 / 2.0)
    assert s.step_budget(3, collection_over=True) == UNLIMITED


# ---------------------------------------------------------------------- learner bookkeeping
def _learner_and_batch(period=3):
    from mpo_ros.core.config import MPOConfig, NetworkConfig
    from mpo_ros.core.learners.mpo import MPOLearner
    rng = np.random.default_rng(0)
    replay = SequenceReplay(3, 2, 100, seed=0)
    for k in range(40):
        replay.add(rng.normal(size=3), rng.normal(size=2), rng.normal(), rng.normal(size=3),
                   k % 13 == 12, k % 17 == 16, -2.0)
    learner = MPOLearner(3, 2, MPOConfig(target_update_period=period),
                         NetworkConfig(policy_hidden=(8,), critic_hidden=(8,)), seed=0)
    return learner, replay.sample(8, 3)


def _flat(net):
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def test_targets_are_copied_exactly_every_period():
    learner, batch = _learner_and_batch(period=3)
    initial = _flat(learner.target_policy), _flat(learner.target_critic)
    for step in range(1, 7):
        learner.step(batch)
        copied = step % 3 == 0
        for target, online, start in ((learner.target_policy, learner.policy, initial[0]),
                                      (learner.target_critic, learner.critic, initial[1])):
            assert torch.equal(_flat(target), _flat(online)) == copied, step
            if step < 3:
                assert torch.equal(_flat(target), start)


def test_metric_names_and_a_float64_batch():
    """Return exactly METRICS from step, converting a float64 batch to float32."""
    learner, batch = _learner_and_batch()
    batch64 = type(batch)(*(np.asarray(x, np.float64) for x in batch))
    metrics = learner.step(batch64)
    assert set(metrics) == set(learner.metric_names())
    assert metrics['grad/critic_norm'] > 0 and metrics['grad/policy_norm'] > 0


def test_learner_configuration_is_wired():
    """Seed default, data request, config, optimiser rates, frozen targets, error text."""
    from mpo_ros.core.config import MPOConfig, NetworkConfig, ReplayConfig
    from mpo_ros.core.learners.base import DataRequest, SEQUENCES
    from mpo_ros.core.learners.mpo import MPOLearner
    net = NetworkConfig(policy_hidden=(8,), critic_hidden=(8,))
    cfg = MPOConfig(policy_lr=3e-4, critic_lr=7e-4, dual_lr=2e-2, sequence_length=5)
    learner = MPOLearner(3, 2, cfg, net, replay=ReplayConfig(batch_size=12))
    seeded = MPOLearner(3, 2, cfg, net, seed=0)
    assert torch.equal(_flat(learner.policy), _flat(seeded.policy))
    assert learner.data == DataRequest(SEQUENCES, 12, 5)
    assert learner.network is net and learner.cfg is cfg
    assert [g['lr'] for g in learner.policy_opt.param_groups] == [3e-4]
    assert [g['lr'] for g in learner.critic_opt.param_groups] == [7e-4]
    assert [g['lr'] for g in learner.dual_opt.param_groups] == [2e-2]
    assert not any(p.requires_grad for net_ in (learner.target_policy, learner.target_critic)
                   for p in net_.parameters())
    with pytest.raises(ValueError, match='^per_dim_kl requires a diagonal policy$'):
        MPOLearner(3, 2, MPOConfig(per_dim_kl=True), net)


def test_duals_are_floored_and_step_time_is_a_duration():
    from mpo_ros.core.config import MPOConfig
    learner, batch = _learner_and_batch()
    state = learner.state_dict()
    for k in ('log_temperature', 'log_alpha_mean', 'log_alpha_cov'):
        state[k] = torch.full_like(state[k], -100.0)
    learner.load_state_dict(state)
    floor = np.log(1e-8)
    for p in (learner.log_temperature, learner.log_alpha_mean, learner.log_alpha_cov):
        assert p.item() == pytest.approx(floor)
    assert 0.0 <= learner.step(batch)['perf/step_time'] < 60.0
    assert isinstance(MPOConfig().grad_clip, float)


def test_gradients_are_clipped_below_one_too():
    """grad_clip 0.1 clips (the stored gradients keep the clipped norm after the step)."""
    from mpo_ros.core.config import MPOConfig, NetworkConfig
    from mpo_ros.core.learners.mpo import MPOLearner
    _, batch = _learner_and_batch()
    learner = MPOLearner(3, 2, MPOConfig(grad_clip=0.1),
                         NetworkConfig(policy_hidden=(8,), critic_hidden=(8,)), seed=0)
    metrics = learner.step(batch)
    assert metrics['grad/critic_norm'] > 0.1
    norm = torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1)
                                               for p in learner.critic.parameters()]))
    assert norm.item() == pytest.approx(0.1, rel=1e-4)


# ---------------------------------------------------------------------- losses
def test_e_step_dual_ignores_masked_states():
    """The temperature loss of e_step averages over valid states only (by hand)."""
    from mpo_ros.core.losses.mpo import e_step
    q = torch.tensor([[0.0, 50.0, 1.0], [1.0, -50.0, 3.0]], dtype=torch.float64)
    mask = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    eta, eps = 1.5, 0.1
    lse = [np.log(np.mean(np.exp(q[:, s].numpy() / eta))) for s in (0, 2)]
    expected = eta * eps + eta * np.mean(lse)
    res = e_step(q, torch.tensor(eta, dtype=torch.float64), eps, mask)
    assert res.loss_temperature.item() == pytest.approx(expected, rel=1e-12)


def test_per_dim_kls_without_mask_and_the_diagonal_check():
    from mpo_ros.core.losses.mpo import decoupled_kls, m_step
    old = DiagGaussian(torch.zeros(3, 2, dtype=torch.float64),
                       torch.ones(3, 2, dtype=torch.float64))
    mean = torch.tensor([[0.1, 0.0], [0.3, 0.0], [0.2, 0.4]], dtype=torch.float64)
    new = DiagGaussian(mean, torch.ones(3, 2, dtype=torch.float64))
    res = m_step(old, new, torch.zeros(2, 3, 2, dtype=torch.float64),
                 torch.full((2, 3), 0.5, dtype=torch.float64), torch.ones(2), torch.ones(2),
                 0.1, 1e-4, per_dim=True)
    per_dim = (0.5 * mean ** 2).mean(0)                        # [D], mean over states
    assert res.stats['kl_mean_max_dim'].item() == pytest.approx(per_dim.max().item())
    assert res.stats['kl_mean'].item() == pytest.approx(per_dim.sum().item())
    full = FullGaussian(torch.zeros(1, 2), torch.eye(2)[None])
    with pytest.raises(ValueError, match='^per-dimension KL needs diagonal Gaussians$'):
        decoupled_kls(full, full, per_dim=True)


# ---------------------------------------------------------------------- replay bookkeeping
def test_replay_counters_defaults_and_zero_padding():
    with pytest.raises(ValueError, match='^capacity must be positive$'):
        SequenceReplay(2, 1, 0)
    one = SequenceReplay(2, 1, 1)
    assert one.next_stream() == 0
    one.add(np.zeros(2), np.ones(1), 1.0, np.ones(2), True, False, -1.0, stream=3)
    one.add(np.zeros(2), np.ones(1), 1.0, np.ones(2), True, False, -1.0, stream=3)
    assert (one.added, one.size, one.next_stream()) == (2, 1, 4)
    replay = SequenceReplay(2, 1, 50, batch_size=6, sequence_length=3)
    for k in range(6):
        replay.add(np.full(2, k), np.full(1, 5.0), 2.0, np.full(2, k + 1), k == 2, False, -3.0)
    batch = replay.sample()
    assert batch.rewards.shape == (3, 6)
    pad = batch.mask == 0
    assert pad.any()
    for x in (batch.rewards, batch.discounts, batch.log_probs, batch.actions[..., 0]):
        assert (x[pad] == 0).all()
