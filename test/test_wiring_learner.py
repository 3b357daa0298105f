"""
Wiring of MPOLearner.step against values computed by hand from the raw transitions.

The learner's four networks are replaced by small hand-defined modules of known outputs:
linear target and online critics, and linear-Gaussian target and online policies whose target
samples are ``mean + std * (+-Z_j)``, so the sample mean of a critic linear in the action is
exactly ``E_{a~pi'} Q'(s, a)``. Online and target modules differ, and the stored behaviour
log-probabilities differ from the target policy's (ratios on both sides of 1), so using the
online networks, ignoring the behaviour log-probs, taking V at s_t, TD(0) instead of Retrace,
dropping the padding mask or averaging per-dimension KLs all change a checked number.

Every expected value below is plain numpy written from the definitions (Retrace: Munos et al.
2016 / MPO Eq. 13; E-step and decoupled M-step: MPO App. D), never the code under test.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from mpo_ros.core.config import MPOConfig, NetworkConfig
from mpo_ros.core.distributions import DiagGaussian
from mpo_ros.core.learners import mpo as learner_module
from mpo_ros.core.learners.mpo import MPOLearner
from mpo_ros.core.replay import SequenceReplay

OBS, ACT, T = 2, 2, 4
GAMMA, LAMBDA = 0.9, 0.8
EPS, EPS_MEAN, EPS_COV = 0.1, 0.05, 1e-3
ETA0, ALPHA_MEAN0, ALPHA_COV0 = 1.5, 1.0, 10.0
DUAL_LR = 0.01
# Target sample offsets: rows +Z and -Z, so sample means of linear functions are exact.
Z0 = np.array([[1.0, -0.5], [0.3, 1.2]])
Z = np.concatenate([Z0, -Z0])
N = len(Z)
# Target (pi', Q') and online (pi, Q) modules: mean = s @ W, std constant per dimension,
# Q(s, a) = s @ U + a @ V + K.
W_TGT, STD_TGT = np.array([[0.5, -0.3], [0.2, 0.8]]), np.array([0.6, 1.1])
W_ON, STD_ON = np.array([[0.1, 0.4], [-0.7, 0.3]]), np.array([0.9, 0.7])
U_TGT, V_TGT, K_TGT = np.array([1.0, -2.0]), np.array([0.7, -1.3]), 0.5
U_ON, V_ON, K_ON = np.array([-0.4, 0.9]), np.array([1.5, 0.2]), -0.3


# ---------------------------------------------------------------------- hand-defined modules
class _SymmetricDiag(DiagGaussian):
    """Diagonal Gaussian whose ``sample(n)`` returns ``mean + std * Z_j`` for the fixed Z."""

    def sample(self, n=None, generator=None):
        """Return the N fixed offsets around the mean, [N, ..., D]."""
        assert n == N, n
        z = torch.tensor(Z, dtype=self.mean.dtype).reshape(
            (N,) + (1,) * (self.mean.dim() - 1) + (ACT,))
        return (self.mean + self.std * z).detach()


class _LinearPolicy(nn.Module):
    """mean = obs @ W, std constant; ``symmetric`` gives the fixed-sample distribution."""

    def __init__(self, w, std, symmetric):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float32))
        self.log_std = nn.Parameter(torch.tensor(np.log(std), dtype=torch.float32))
        self.symmetric = symmetric

    def forward(self, obs):
        """Distribution over actions for obs [..., O]."""
        mean = obs @ self.w
        std = self.log_std.exp().expand_as(mean)
        return (_SymmetricDiag if self.symmetric else DiagGaussian)(mean, std)


class _LinearCritic(nn.Module):
    """Q(s, a) = s @ u + a @ v + k, leading dimensions broadcast."""

    def __init__(self, u, v, k):
        super().__init__()
        self.u = nn.Parameter(torch.tensor(u, dtype=torch.float32))
        self.v = nn.Parameter(torch.tensor(v, dtype=torch.float32))
        self.k = nn.Parameter(torch.tensor(float(k)))

    def forward(self, obs, action):
        """Q values [...]."""
        return obs @ self.u + action @ self.v + self.k


# ---------------------------------------------------------------------- hand maths (numpy)
def _mu_tgt(s):
    return np.asarray(s, np.float64) @ W_TGT


def _log_pi_tgt(s, a):
    z = (np.asarray(a, np.float64) - _mu_tgt(s)) / STD_TGT
    return float(np.sum(-0.5 * z ** 2 - np.log(STD_TGT) - 0.5 * math.log(2 * math.pi)))


def _q_tgt(s, a):
    return float(np.asarray(s, np.float64) @ U_TGT + np.asarray(a, np.float64) @ V_TGT + K_TGT)


def _v_tgt(s):
    """E_{a ~ pi'(.|s)} Q'(s, a), analytic (Q' is linear in a)."""
    return float(np.asarray(s, np.float64) @ U_TGT + _mu_tgt(s) @ V_TGT + K_TGT)


def _q_on(s, a):
    return float(np.asarray(s, np.float64) @ U_ON + np.asarray(a, np.float64) @ V_ON + K_ON)


def _episodes(seed=0):
    """
    Raw transitions of one actor, four episodes.

    Lengths and ends: 5 (terminal), 3 (time-limit truncation), 2 (terminal), 6 (still
    running when sampled). Rewards and actions vary; the behaviour log-prob is the target
    policy's plus an offset in [-1.5, 1.5], so pi/b lies on both sides of 1.
    """
    rng = np.random.default_rng(seed)
    steps = []
    for length, end in ((5, 'terminal'), (3, 'truncated'), (2, 'terminal'), (6, None)):
        s = rng.normal(size=OBS).astype(np.float32)
        for i in range(length):
            s_next = rng.normal(size=OBS).astype(np.float32)
            a = (1.5 * rng.normal(size=ACT)).astype(np.float32)
            last = i == length - 1
            steps.append({
                'obs': s, 'action': a, 'reward': float(np.float32(2.0 * rng.normal())),
                'next_obs': s_next, 'terminal': last and end == 'terminal',
                'truncated': last and end == 'truncated',
                'log_b': float(np.float32(_log_pi_tgt(s, a) + rng.uniform(-1.5, 1.5)))})
            s = s_next
    return steps


def _replay(steps):
    replay = SequenceReplay(OBS, ACT, 100, seed=3)
    for st in steps:
        replay.add(st['obs'], st['action'], st['reward'], st['next_obs'], st['terminal'],
                   st['truncated'], st['log_b'])
    return replay


def _sequence(steps, k0):
    """Raw indices of the sequence starting at k0: up to T steps, ending at an episode end."""
    ks = [k0]
    while len(ks) < T:
        st = steps[ks[-1]]
        if st['terminal'] or st['truncated'] or ks[-1] + 1 == len(steps):
            break
        ks.append(ks[-1] + 1)
    return ks


def _hand_retrace(steps, ks):
    """
    Retrace targets by the recursion of Eq. 13, from the raw transitions of one sequence.

    Q_ret_t = r_t + gamma d_t [V(s'_t) + c_{t+1} (Q_ret_{t+1} - Q'(s_{t+1}, a_{t+1}))] with
    c = lambda min(1, pi'/b); at the sequence's last step the bracket is V(s'_t) alone
    (bootstrap), and d_t = 0 only at a terminal (a truncation bootstraps).
    """
    targets = [0.0] * len(ks)
    for i in range(len(ks) - 1, -1, -1):
        st = steps[ks[i]]
        d = 0.0 if st['terminal'] else 1.0
        bracket = _v_tgt(st['next_obs'])
        if i + 1 < len(ks):
            nxt = steps[ks[i + 1]]
            c = LAMBDA * min(1.0, math.exp(_log_pi_tgt(nxt['obs'], nxt['action']) - nxt['log_b']))
            bracket += c * (targets[i + 1] - _q_tgt(nxt['obs'], nxt['action']))
        targets[i] = st['reward'] + GAMMA * d * bracket
    return targets


def _hand_policy_terms(states, alpha_mean, alpha_cov):
    """
    E-step and decoupled M-step quantities over the given (valid) states, by hand.

    Returns the expected metrics and the per-dimension mean / covariance KLs. ``alpha_*`` are
    per-dimension arrays (per-dimension constraints) or scalars.
    """
    kl_q, v, ll_mean, ll_cov, kl_mean, kl_cov = [], [], [], [], [], []
    for s in states:
        mu_i, std_i = _mu_tgt(s), STD_TGT
        mu = np.asarray(s, np.float64) @ W_ON
        acts = mu_i + std_i * Z                                     # [N, D]
        q = np.array([_q_tgt(s, a) for a in acts])
        w = np.exp(q / ETA0 - np.max(q / ETA0))
        w /= w.sum()
        kl_q.append(float(np.sum(w * np.log(w * N))))
        v.append(q.mean())

        def log_n(a, m, sd):
            return np.sum(-0.5 * ((a - m) / sd) ** 2 - np.log(sd) - 0.5 * math.log(2 * math.pi),
                          -1)

        ll_mean.append(np.sum(w * log_n(acts, mu, std_i)))         # pi_mu = N(mu, Sigma_i)
        ll_cov.append(np.sum(w * log_n(acts, mu_i, STD_ON)))        # pi_Sigma = N(mu_i, Sigma)
        kl_mean.append(0.5 * (mu - mu_i) ** 2 / std_i ** 2)         # KL(pi_i || pi_mu) per dim
        ratio = (std_i / STD_ON) ** 2
        kl_cov.append(0.5 * (ratio - 1.0 - np.log(ratio)))          # KL(pi_i || pi_Sigma)
    kl_mean_d, kl_cov_d = np.mean(kl_mean, 0), np.mean(kl_cov, 0)   # [D]
    nll = -(np.mean(ll_mean) + np.mean(ll_cov))
    if np.ndim(alpha_mean):
        penalty = np.sum(alpha_mean * kl_mean_d) + np.sum(alpha_cov * kl_cov_d)
    else:
        penalty = alpha_mean * kl_mean_d.sum() + alpha_cov * kl_cov_d.sum()
    metrics = {'kl/q_uniform': np.mean(kl_q), 'q/mean': np.mean(v),
               'dual/temperature': ETA0, 'kl/mean': kl_mean_d.sum(), 'kl/cov': kl_cov_d.sum(),
               'kl/mean_max_dim': kl_mean_d.max() if np.ndim(alpha_mean) else kl_mean_d.sum(),
               'loss/policy_nll': nll, 'loss/policy': nll + penalty,
               'dual/alpha_mean': np.mean(alpha_mean), 'dual/alpha_cov': np.mean(alpha_cov)}
    return metrics, kl_mean_d, kl_cov_d


# ---------------------------------------------------------------------- the learner under test
def _learner(per_dim=False):
    cfg = MPOConfig(discount=GAMMA, retrace_lambda=LAMBDA, sequence_length=T,
                    num_action_samples=N, epsilon=EPS, epsilon_mean=EPS_MEAN,
                    epsilon_cov=EPS_COV, init_temperature=ETA0, init_alpha_mean=ALPHA_MEAN0,
                    init_alpha_cov=ALPHA_COV0, dual_lr=DUAL_LR, target_update_period=10 ** 6,
                    grad_clip=0.0, per_dim_kl=per_dim)
    net = NetworkConfig(policy_hidden=(4,), critic_hidden=(4,), covariance='diagonal',
                        normalize_observations=False)
    learner = MPOLearner(OBS, ACT, cfg, net, seed=0)
    learner.target_policy = _LinearPolicy(W_TGT, STD_TGT, symmetric=True).requires_grad_(False)
    learner.target_critic = _LinearCritic(U_TGT, V_TGT, K_TGT).requires_grad_(False)
    learner.policy = _LinearPolicy(W_ON, STD_ON, symmetric=False)
    learner.critic = _LinearCritic(U_ON, V_ON, K_ON)
    return learner


def _spy_critic_loss(monkeypatch):
    """Record the (q, targets, mask) the learner hands to the critic loss."""
    seen = []
    original = learner_module.retrace.critic_loss

    def spy(q, targets, mask=None):
        seen.append((q.detach().clone(), targets.detach().clone(),
                     None if mask is None else mask.clone()))
        return original(q, targets, mask)

    monkeypatch.setattr(learner_module.retrace, 'critic_loss', spy)
    return seen


def _batch_and_sequences(steps, batch_size=64):
    replay = _replay(steps)
    batch = replay.sample(batch_size, T)
    where = {st['obs'].tobytes(): k for k, st in enumerate(steps)}
    seqs = [_sequence(steps, where[batch.observations[0, b].tobytes()])
            for b in range(batch_size)]
    return batch, seqs


@pytest.mark.parametrize('per_dim', [False, True])
def test_step_matches_hand_retrace_e_step_and_m_step(monkeypatch, per_dim):
    """
    One learner step reproduces hand-computed Retrace targets, critic loss and policy terms.

    The batch covers sequences cut by a terminal, by a time-limit truncation (bootstrap from
    the stored final state), by the end of the stored data, and full-length ones.
    """
    steps = _episodes()
    batch, seqs = _batch_and_sequences(steps)
    lengths = np.array([len(ks) for ks in seqs])
    np.testing.assert_array_equal(batch.mask.sum(0), lengths)
    last = [steps[ks[-1]] for ks in seqs]
    cut = lengths < T
    assert any(c and st['terminal'] for c, st in zip(cut, last))
    assert any(c and st['truncated'] for c, st in zip(cut, last))
    assert any(c and not (st['terminal'] or st['truncated']) for c, st in zip(cut, last))
    assert (~cut).any()

    learner = _learner(per_dim)
    alpha_mean = np.array([0.5, 2.0]) if per_dim else ALPHA_MEAN0
    if per_dim:
        with torch.no_grad():
            learner.log_alpha_mean.copy_(torch.tensor(np.log(alpha_mean)))
    seen = _spy_critic_loss(monkeypatch)
    metrics = learner.step(batch)

    # Critic: per-element targets, loss on the online critic, target mean.
    assert len(seen) == 1
    _, targets, _ = seen[0]
    expected_targets, q_online = [], []
    for b, ks in enumerate(seqs):
        hand = _hand_retrace(steps, ks)
        np.testing.assert_allclose(targets[:len(ks), b].numpy(), hand, rtol=1e-5, atol=1e-5)
        expected_targets += hand
        q_online += [_q_on(steps[k]['obs'], steps[k]['action']) for k in ks]
    y, q = np.array(expected_targets), np.array(q_online)
    assert metrics['q/target_mean'] == pytest.approx(y.mean(), rel=1e-5, abs=1e-5)
    assert metrics['loss/critic'] == pytest.approx(np.mean(0.5 * (q - y) ** 2), rel=1e-5)

    # E-step on the target networks, M-step against the target policy, over valid states.
    states = [steps[k]['obs'] for ks in seqs for k in ks]
    expected, kl_mean_d, kl_cov_d = _hand_policy_terms(states, alpha_mean, ALPHA_COV0)
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name

    # One Adam step on the log-duals moves each by -lr * sign(gradient); the gradients are
    # eps - mean KL(q || uniform) (temperature) and eps_mu - KL_mu, eps_Sigma - KL_Sigma
    # (per dimension with per_dim_kl), times the positive multiplier.
    def moved(start, grad):
        return np.log(start) - DUAL_LR * np.sign(grad)

    assert learner.log_temperature.item() == pytest.approx(
        moved(ETA0, EPS - expected['kl/q_uniform']), abs=1e-6)
    kl_m = kl_mean_d if per_dim else kl_mean_d.sum()
    kl_c = kl_cov_d if per_dim else kl_cov_d.sum()
    np.testing.assert_allclose(learner.log_alpha_mean.detach().numpy(),
                               moved(alpha_mean, EPS_MEAN - kl_m), atol=1e-6)
    np.testing.assert_allclose(learner.log_alpha_cov.detach().numpy(),
                               moved(np.full(np.shape(kl_c), ALPHA_COV0), EPS_COV - kl_c),
                               atol=1e-6)


def test_policy_gradient_of_the_m_step_by_hand():
    """
    The online policy's mean gradient is the hand-derived one of the decoupled M-step loss.

    d loss / d mu(s) = (1/n) [-sum_j q_j (a_j - mu) / sigma_i^2 + alpha_mu (mu - mu_i) /
    sigma_i^2] with mu = s @ W, so d loss / d W = sum_s s (d loss / d mu(s))^T.
    """
    steps = _episodes()
    batch, seqs = _batch_and_sequences(steps)
    learner = _learner()
    learner.step(batch)
    states = [np.asarray(steps[k]['obs'], np.float64) for ks in seqs for k in ks]
    grad = np.zeros_like(W_ON)
    for s in states:
        mu_i, mu = s @ W_TGT, s @ W_ON
        acts = mu_i + STD_TGT * Z
        q = np.array([_q_tgt(s, a) for a in acts])
        w = np.exp(q / ETA0 - q.max() / ETA0)
        w /= w.sum()
        d_mu = (-(w[:, None] * (acts - mu)).sum(0) + ALPHA_MEAN0 * (mu - mu_i)) / STD_TGT ** 2
        grad += np.outer(s, d_mu) / len(states)
    np.testing.assert_allclose(learner.policy.w.grad.numpy(), grad, rtol=1e-4, atol=1e-6)


def test_garbage_in_padding_changes_nothing():
    """
    Padded steps (mask 0) may hold anything: the step's metrics and updates are unchanged.

    Real networks (not the hand modules), two identical learners; the padded rewards,
    actions, behaviour log-probs, discounts and padded observations (after the repeated
    bootstrap state) are replaced by large values in one batch.
    """
    steps = _episodes()
    clean, seqs = _batch_and_sequences(steps)
    rng = np.random.default_rng(1)
    dirty = {k: np.array(v, copy=True) for k, v in clean._asdict().items()}
    pad = clean.mask == 0
    assert pad.any()
    dirty['rewards'][pad] = rng.normal(size=pad.sum()) * 1e3
    dirty['actions'][pad] = rng.normal(size=(pad.sum(), ACT)) * 1e2
    dirty['log_probs'][pad] = rng.normal(size=pad.sum()) * 10
    dirty['discounts'][pad] = 1.0
    for b, ks in enumerate(seqs):
        dirty['observations'][len(ks) + 1:, b] = rng.normal(size=(T - len(ks), OBS)) * 1e2
    dirty = type(clean)(**dirty)
    cfg = MPOConfig(discount=GAMMA, sequence_length=T, target_update_period=10 ** 6)
    net = NetworkConfig(policy_hidden=(16,), critic_hidden=(16,), normalize_observations=False)
    a, b = MPOLearner(OBS, ACT, cfg, net, seed=5), MPOLearner(OBS, ACT, cfg, net, seed=5)
    with torch.no_grad():                    # targets differ from the online networks
        for p in list(a.policy.parameters()) + list(a.critic.parameters()):
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    b.load_state_dict(a.state_dict())
    ma, mb = a.step(clean), b.step(dirty)
    ma.pop('perf/step_time'), mb.pop('perf/step_time')
    for name in ma:
        assert mb[name] == pytest.approx(ma[name], rel=1e-5, abs=1e-6), name
    for pa, pb in zip(a.critic.parameters(), b.critic.parameters()):
        torch.testing.assert_close(pa, pb)
    for pa, pb in zip(a.policy.parameters(), b.policy.parameters()):
        torch.testing.assert_close(pa, pb)
