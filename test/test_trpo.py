"""
TRPO maths and learner, each against a value computed independently of the code under test.

Conjugate gradient against ``numpy.linalg.solve``; Fisher-vector products against an explicit
Fisher matrix ``mean_x J^T M J`` from per-sample Jacobians; trust region and surrogate against
``torch.distributions``; advantages against numbers worked out by hand.
"""

import math

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal
from torch.func import functional_call

from mpo_ros.core import learners
from mpo_ros.core.config import Config, NetworkConfig, TRPOConfig
from mpo_ros.core.learners.trpo import TRPOLearner
from mpo_ros.core.losses import trpo
from mpo_ros.core.networks import PolicyNetwork
from mpo_ros.core.onpolicy import OnPolicyBuffer
from mpo_ros.core.policy import Policy
from mpo_ros.trainer import build_parser

TINY = dict(policy_hidden=(4,), critic_hidden=(4,), normalize_observations=False)


def _tiny_policy(covariance, obs_dim=3, act_dim=2, seed=0):
    torch.manual_seed(seed)
    net = PolicyNetwork(obs_dim, act_dim, NetworkConfig(covariance=covariance, **TINY)).double()
    with torch.no_grad():            # heads away from their near-zero initialisation
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


def _torch_dist(dist):
    """Return the same Gaussian as a torch.distributions object (independent densities, KLs)."""
    return MultivariateNormal(dist.mean, scale_tril=dist.scale_tril)


# ---------------------------------------------------------------- conjugate gradient
def test_conjugate_gradient_solves_damped_spd_system_like_numpy():
    rng = np.random.default_rng(0)
    n, damping = 12, 0.1
    q = rng.normal(size=(n, n))
    a = q @ q.T / n + 1e-3 * np.eye(n)                       # SPD, moderately conditioned
    b = rng.normal(size=n)
    expected = np.linalg.solve(a + damping * np.eye(n), b)
    at = torch.as_tensor(a)
    calls = []

    def matvec(v):
        calls.append(1)
        return at @ v

    result = trpo.conjugate_gradient(matvec, torch.as_tensor(b), iterations=3 * n,
                                     damping=damping)
    np.testing.assert_allclose(result.x.numpy(), expected, rtol=1e-7, atol=1e-9)
    assert result.residual < 1e-5 and len(calls) == result.iterations <= 3 * n
    # A budget of k products uses at most k, and the residual shrinks with it.
    short = trpo.conjugate_gradient(matvec, torch.as_tensor(b), iterations=2, damping=damping)
    assert short.iterations == 2 and short.residual > result.residual


def test_conjugate_gradient_stops_on_non_positive_curvature():
    b = torch.tensor([1.0, 0.0])
    result = trpo.conjugate_gradient(lambda v: -v, b, iterations=5)     # negative definite
    assert torch.equal(result.x, torch.zeros(2))


# ---------------------------------------------------------------- Fisher-vector product
def _explicit_fisher(net, obs, covariance):
    """mean_x J(x)^T M(x) J(x): J = d(distribution parameters)/d theta, M their Fisher."""
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    sizes = [math.prod(s) for s in shapes]

    def dist_params(flat_theta, x):
        parts = torch.split(flat_theta, sizes)
        params = {n: t.reshape(s) for n, t, s in zip(names, parts, shapes)}
        d = functional_call(net, params, (x,))
        if covariance == 'diagonal':
            return torch.cat([d.mean, d.std])
        rows, cols = torch.tril_indices(d.dim, d.dim)
        return torch.cat([d.mean, d.scale_tril[rows, cols]])

    fisher = torch.zeros(theta.numel(), theta.numel(), dtype=torch.float64)
    for x in obs:
        jac = torch.autograd.functional.jacobian(lambda t: dist_params(t, x), theta)
        phi = dist_params(theta, x).detach()
        k = net.act_dim
        if covariance == 'diagonal':
            std = phi[k:]
            m = torch.diag(torch.cat([1.0 / std ** 2, 2.0 / std ** 2]))   # N(mu, sigma^2)
        else:
            m = _full_gaussian_param_fisher(phi, k)
        fisher += jac.T @ m @ jac
    return fisher / obs.shape[0]


def _full_gaussian_param_fisher(phi, k):
    """Hessian at phi' = phi of KL(N(phi) || N(phi')) in closed form with inverse and logdet."""
    rows, cols = torch.tril_indices(k, k)

    def unpack(p):
        tril = torch.zeros(k, k, dtype=p.dtype)
        tril = tril.index_put((rows, cols), p[k:])
        return p[:k], tril @ tril.T

    mu0, s0 = unpack(phi)

    def kl(p):
        mu1, s1 = unpack(p)
        inv = torch.linalg.inv(s1)
        diff = mu1 - mu0
        return 0.5 * (torch.trace(inv @ s0) + diff @ inv @ diff - k
                      + torch.logdet(s1) - torch.logdet(s0))

    return torch.autograd.functional.hessian(kl, phi)


@pytest.mark.parametrize('covariance', ['diagonal', 'full'])
def test_fisher_vector_product_matches_explicit_fisher(covariance):
    net = _tiny_policy(covariance)
    obs = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    params = list(net.parameters())
    old = net(obs).detach()
    fvp = trpo.fisher_vector_product(trpo.mean_kl(old, net(obs)), params)
    fisher = _explicit_fisher(net, obs, covariance)
    assert torch.allclose(fisher, fisher.T, atol=1e-10)
    for seed in range(3):
        v = torch.randn(fisher.shape[0], dtype=torch.float64,
                        generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(fvp(v), fisher @ v, rtol=1e-8, atol=1e-10)
    # The scale parameters are optimised variables: their block of F is not zero.
    names = [n for n, _ in net.named_parameters()]
    sizes = [p.numel() for p in params]
    start = sum(sizes[:names.index('diag_head.weight')])
    block = slice(start, start + sizes[names.index('diag_head.weight')])
    assert fisher[block, block].abs().max() > 1e-3


# ---------------------------------------------------------------- step length, line search
def test_step_length_hits_the_kl_bound_and_guards_degenerate_curvature():
    s = torch.tensor([1.0, 2.0])
    a = torch.tensor([[2.0, 0.0], [0.0, 0.5]])
    beta = trpo.step_length(s, a @ s, max_kl=0.01)
    assert beta == pytest.approx(math.sqrt(2 * 0.01 / 4.0))            # s^T A s = 2 + 2
    assert 0.5 * beta ** 2 * float(s @ a @ s) == pytest.approx(0.01)
    for bad in (torch.zeros(2), -s, torch.full((2,), float('nan'))):
        assert trpo.step_length(s, bad, 0.01) == 0.0


def _params():
    g = torch.Generator().manual_seed(3)
    return [torch.randn(2, 3, generator=g, requires_grad=True),
            torch.randn(4, generator=g, requires_grad=True)]


def test_failed_line_search_restores_parameters_bit_exactly():
    params = _params()
    before = [p.detach().clone() for p in params]
    step = torch.full((10,), 0.1234567)
    tried = []

    def never_better():
        tried.append(float(params[1][0]))
        return -1.0, 0.0                       # surrogate 0 -> -1: never an improvement

    result = trpo.line_search(params, step, never_better, 0.0, 0.01, 0.8, 10)
    assert not result.accepted and result.backtracks == 10 and result.fraction == 0.0
    assert len(set(tried)) == 10                                   # it did move the parameters
    assert all(torch.equal(p, b) for p, b in zip(params, before))


def test_line_search_requires_the_measured_kl_within_the_bound():
    params = _params()
    start = torch.cat([p.detach().reshape(-1) for p in params])
    step = torch.ones(10)

    def evaluate():                 # surrogate always better; KL = |theta - theta_old|^2 / 2
        d = torch.cat([p.detach().reshape(-1) for p in params]) - start
        return 1.0, 0.5 * float(d @ d)

    # KL at fraction f: 5 f^2; bound 0.9 needs f^2 <= 0.18: 0.8^k first at k = 4 (0.168).
    result = trpo.line_search(params, step, evaluate, 0.0, 0.9, 0.8, 10)
    assert result.accepted and result.backtracks == 4
    assert result.fraction == pytest.approx(0.8 ** 4) and result.kl <= 0.9
    now = torch.cat([p.detach().reshape(-1) for p in params])
    torch.testing.assert_close(now, start + 0.8 ** 4 * step)
    # Surrogate better but the KL never within the bound: rejected and restored.
    params = _params()
    before = [p.detach().clone() for p in params]
    result = trpo.line_search(params, step, lambda: (1.0, 1.0), 0.0, 0.01, 0.8, 10)
    assert not result.accepted and all(torch.equal(p, b) for p, b in zip(params, before))


# ---------------------------------------------------------------- one natural-gradient update
@pytest.mark.parametrize('covariance', ['diagonal', 'full'])
def test_update_improves_surrogate_within_the_measured_kl_bound(covariance):
    net = _tiny_policy(covariance)
    g = torch.Generator().manual_seed(5)
    obs = torch.randn(256, 3, dtype=torch.float64, generator=g)
    with torch.no_grad():
        old = net(obs).detach()
        actions = old.sample(generator=g)
    adv = -(actions - 0.5).square().sum(-1)                   # better near a = 0.5
    adv = (adv - adv.mean()) / adv.std()
    ref_old = _torch_dist(old)
    old_logp = ref_old.log_prob(actions)
    max_kl = 0.01
    result = trpo.natural_gradient_step(
        list(net.parameters()),
        lambda: trpo.surrogate(net(obs).log_prob(actions), old_logp, adv),
        lambda: trpo.mean_kl(old, net(obs)), max_kl, 10, 0.1, 0.8, 10)
    assert result.search.accepted
    with torch.no_grad():
        new = _torch_dist(net(obs))
        kl = torch.distributions.kl_divergence(ref_old, new).mean()
        gain = ((new.log_prob(actions) - old_logp).exp() * adv).mean() - adv.mean()
    assert 0.1 * max_kl < kl <= max_kl * (1 + 1e-9)
    assert gain > 0 and float(gain) == pytest.approx(result.search.surrogate_gain, rel=1e-9)
    assert float(kl) == pytest.approx(result.search.kl, rel=1e-9)


# ---------------------------------------------------------------- advantages
def _hand_batch():
    """Seven steps: terminal after 3, time-limit truncation after 2, then 2 cut by the batch."""
    buffer = OnPolicyBuffer(1, 1, batch_size=7)
    rewards = [1.0, 2.0, 3.0, 0.0, 4.0, -1.0, 1.0]
    terminal = [False, False, True, False, False, False, False]
    truncated = [False, False, False, False, True, False, False]
    for t in range(7):
        buffer.add(np.array([float(t)]), np.zeros(1), rewards[t], np.array([t + 0.5]),
                   terminal[t], truncated[t], 0.0)
    return buffer.sample()


def test_gae_by_hand_with_terminal_truncation_and_batch_cut():
    batch = _hand_batch()
    assert batch.terminals.tolist() == [False, False, True, False, False, False, False]
    assert batch.segment_ends.tolist() == [False, False, True, False, True, False, True]
    # Within a segment V(s_{t+1}) is the next step's V(s_t); 100 follows the terminal.
    values = torch.tensor([0.5, 1.0, 2.0, 1.0, 2.0, 0.0, 2.0])
    next_values = torch.tensor([1.0, 2.0, 100.0, 2.0, 8.0, 2.0, 4.0])
    args = (torch.as_tensor(batch.rewards), values, next_values,
            torch.as_tensor(batch.terminals), torch.as_tensor(batch.segment_ends))
    # gamma 0.5, lambda 0.5 (gamma lambda = 0.25); deltas by hand:
    #   terminal segment: d2 = 3 - 2 = 1, d1 = 2 + 0.5*2 - 1 = 2, d0 = 1 + 0.5*1 - 0.5 = 1
    #   truncated:        d4 = 4 + 0.5*8 - 2 = 6 (bootstraps), d3 = 0 + 0.5*2 - 1 = 0
    #   batch cut:        d6 = 1 + 0.5*4 - 2 = 1 (bootstraps), d5 = -1 + 0.5*2 - 0 = 0
    # A_t = d_t + 0.25 A_{t+1} within a segment:
    out = trpo.gae(*args, discount=0.5, lam=0.5)
    expected = [1 + 0.25 * 2.25, 2 + 0.25 * 1, 1, 0 + 0.25 * 6, 6, 0 + 0.25 * 1, 1]
    torch.testing.assert_close(out.advantages, torch.tensor(expected))
    torch.testing.assert_close(out.returns, torch.tensor(expected) + values)
    # lambda = 1: the Monte Carlo return to the segment's end (bootstrapped unless terminal)
    # minus V: G = [1 + 0.5*3.5, 2 + 0.5*3, 3 | 0.5*8, 4 + 0.5*8 | -1 + 0.5*3, 1 + 0.5*4].
    mc = trpo.gae(*args, discount=0.5, lam=1.0)
    returns = torch.tensor([2.75, 3.5, 3.0, 4.0, 8.0, 0.5, 3.0])
    torch.testing.assert_close(mc.advantages, returns - values)
    torch.testing.assert_close(mc.returns, returns)


# ---------------------------------------------------------------- the learner
SMALL = NetworkConfig(policy_hidden=(32, 32), critic_hidden=(32, 32))


def _bandit_batch(learner, n, seed):
    """Sample steps from the learner's own policy; reward best at a = 0.5, episodes of 20."""
    rng = np.random.default_rng(seed)
    buffer = learners.make_buffer(learner.data, 3, 2, 0, seed)
    obs = rng.normal(size=(n + 1, 3)).astype(np.float32)
    with torch.no_grad():
        dist = learner.policy(torch.as_tensor(obs[:-1]))
        actions = dist.sample(generator=torch.Generator().manual_seed(seed))
        logp = dist.log_prob(actions)
    for t in range(n):
        a = actions[t].numpy()
        buffer.add(obs[t], a, -float(np.sum((a - 0.5) ** 2)), obs[t + 1], False,
                   t % 20 == 19, float(logp[t]))
    return buffer.sample()


@pytest.mark.parametrize('covariance', ['diagonal', 'full'])
def test_learner_update_within_trust_region_moves_scale_parameters(covariance):
    cfg = TRPOConfig(batch_size=512, value_epochs=2)
    net = NetworkConfig(policy_hidden=(32, 32), critic_hidden=(32, 32), covariance=covariance)
    learner = TRPOLearner(3, 2, cfg, net, seed=0)
    first = _bandit_batch(learner, 512, seed=1)
    learner.observe(first.observations)
    learner.step(first)                       # merges the statistics after the update
    batch = _bandit_batch(learner, 512, seed=2)
    obs = torch.as_tensor(batch.observations)
    before = {k: v.clone() for k, v in learner.policy.state_dict().items()}
    with torch.no_grad():
        old = _torch_dist(learner.policy(obs))
    metrics = learner.step(batch)             # nothing observed: statistics unchanged
    with torch.no_grad():
        new = _torch_dist(learner.policy(obs))
    kl = float(torch.distributions.kl_divergence(old, new).mean())
    assert metrics['perf/line_search_accepted'] == 1.0 and metrics['loss/surrogate_gain'] > 0
    assert 0 < kl <= cfg.max_kl * (1 + 1e-5)
    assert kl == pytest.approx(metrics['kl/policy'], rel=1e-4)
    after = learner.policy.state_dict()
    assert torch.equal(after['normalizer.mean'], before['normalizer.mean'])
    assert not torch.equal(after['diag_head.bias'], before['diag_head.bias'])
    assert not torch.equal(after['mean_head.weight'], before['mean_head.weight'])


def test_observations_change_the_policy_only_at_an_update():
    learner = TRPOLearner(3, 2, TRPOConfig(batch_size=64, value_epochs=1), SMALL, seed=0)
    state = {k: v.clone() for k, v in learner.policy_state().items()}
    batch = _bandit_batch(learner, 64, seed=0)
    learner.observe(batch.observations)
    assert all(torch.equal(v, learner.policy_state()[k]) for k, v in state.items())
    learner.step(batch)
    assert float(learner.policy_state()['normalizer.count']) == 64


def test_value_baseline_learns_the_returns():
    learner = TRPOLearner(3, 2, TRPOConfig(batch_size=512, gae_lambda=1.0), SMALL, seed=0)
    losses = [learner.step(_bandit_batch(learner, 512, seed=s))['loss/value'] for s in range(6)]
    assert losses[-1] < 0.2 * losses[0]


def test_policy_state_rebuilds_an_actor_policy():
    learner = learners.make('trpo', 3, 2, Config(network=SMALL), seed=0)
    actor = Policy(3, 2, learner.network, seed=0)
    actor.load_state(learner.policy_state())
    obs = np.ones(3, np.float32)
    with torch.no_grad():
        mean = learner.policy(torch.as_tensor(obs)).mean.numpy()
    np.testing.assert_array_equal(actor.act(obs, deterministic=True).action,
                                  np.clip(mean, -1.0, 1.0))


def test_defaults_and_flags():
    """Paper: delta 0.01, 10 CG iterations, gamma 0.99; sb3-contrib: the rest."""
    c = TRPOConfig()
    assert (c.max_kl, c.cg_iterations, c.discount) == (0.01, 10, 0.99)
    assert (c.cg_damping, c.line_search_shrink, c.line_search_steps) == (0.1, 0.8, 10)
    assert (c.gae_lambda, c.batch_size, c.value_lr) == (0.95, 2048, 1e-3)
    assert (c.value_epochs, c.value_minibatch_size) == (10, 128)
    learner = learners.make('trpo', 3, 2, Config(), seed=0)
    assert learner.data == learners.DataRequest(learners.ON_POLICY, 2048, 1)
    args = build_parser().parse_args(['--algorithm', 'trpo', '--trpo.max_kl', '0.02'])
    assert getattr(args, 'trpo.max_kl') == 0.02


def test_resume_keeps_observations_queued_for_the_statistics():
    cfg = TRPOConfig(batch_size=64, value_epochs=1)
    a = TRPOLearner(3, 2, cfg, SMALL, seed=0)
    batch = _bandit_batch(a, 64, seed=0)
    a.observe(batch.observations)
    b = TRPOLearner(3, 2, cfg, SMALL, seed=9)
    b.load_state_dict(a.state_dict())
    ma, mb = a.step(batch), b.step(batch)
    ma.pop('perf/step_time'), mb.pop('perf/step_time')
    assert ma == mb
    for k, v in a.state_dict()['policy'].items():
        assert torch.equal(v, b.state_dict()['policy'][k]), k
    assert float(b.policy_state()['normalizer.count']) == 64
