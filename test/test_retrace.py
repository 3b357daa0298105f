"""Retrace targets against hand-computed returns and a naive implementation of Eq. 13."""

import numpy as np
import pytest
import torch

from mpo_ros.core.losses.retrace import critic_loss, retrace_targets


def _t(x):
    return torch.tensor(x, dtype=torch.float64)


def _naive_eq13(q, v_next, r, g, log_pi, log_b, lam):
    """Q_ret_t = Q'_t + sum_j (prod g) (prod_{k=t+1..j} c_k) [r_j + g_j V_{j+1} - Q'_j]."""
    steps, batch = q.shape
    c = lam * np.minimum(1.0, np.exp(log_pi - log_b))
    out = np.zeros_like(q)
    for b in range(batch):
        for t in range(steps):
            total, coef = q[t, b], 1.0
            for j in range(t, steps):
                if j > t:
                    coef *= g[j - 1, b] * c[j, b]
                total += coef * (r[j, b] + g[j, b] * v_next[j, b] - q[j, b])
            out[t, b] = total
    return out


def test_zero_traces_give_one_step_td():
    q, v, r = _t([[5.0], [6.0]]), _t([[1.0], [2.0]]), _t([[0.5], [0.25]])
    g = _t([[0.9], [0.9]])
    out = retrace_targets(q, v, r, g, torch.zeros(2, 1), torch.zeros(2, 1), lambda_=0.0)
    torch.testing.assert_close(out, _t([[0.5 + 0.9 * 1.0], [0.25 + 0.9 * 2.0]]))


def test_on_policy_lambda_one_gives_n_step_return():
    """With pi == b, lambda 1 and V(s_{t+1}) == Q'(s_{t+1}, a_{t+1}): the n-step return."""
    r = _t([[1.0], [2.0], [3.0]])
    g = _t([[0.5], [0.5], [0.5]])
    v_next = _t([[4.0], [7.0], [8.0]])
    q = _t([[99.0], [4.0], [7.0]])      # Q'_{t+1} equals V_{t+1} for t+1 = 1, 2
    lp = _t([[-1.0], [-2.0], [-0.5]])
    out = retrace_targets(q, v_next, r, g, lp, lp, lambda_=1.0)
    # 1 + .5*2 + .25*3 + .125*8 = 3.75; 2 + .5*3 + .25*8 = 5.5; 3 + .5*8 = 7
    torch.testing.assert_close(out, _t([[3.75], [5.5], [7.0]]))


def test_matches_naive_eq13_on_random_data():
    rng = np.random.default_rng(0)
    steps, batch = 6, 9
    q, v, r = (rng.normal(size=(steps, batch)) for _ in range(3))
    g = 0.99 * (rng.random((steps, batch)) > 0.15)     # some terminals
    log_pi, log_b = rng.normal(size=(2, steps, batch))
    expected = _naive_eq13(q, v, r, g, log_pi, log_b, 0.9)
    out = retrace_targets(*(torch.from_numpy(x) for x in (q, v, r, g, log_pi, log_b)),
                          lambda_=0.9)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10)


def test_truncation_ratio_caps_at_one():
    """Off-policy ratios above 1 are cut to 1; below 1 they shrink the correction."""
    q, v, r, g = _t([[0.0], [10.0]]), _t([[3.0], [0.0]]), _t([[0.0], [1.0]]), _t([[1.0], [1.0]])
    big = retrace_targets(q, v, r, g, _t([[0.0], [5.0]]), _t([[0.0], [0.0]]))
    one = retrace_targets(q, v, r, g, _t([[0.0], [0.0]]), _t([[0.0], [0.0]]))
    half = retrace_targets(q, v, r, g, _t([[0.0], [np.log(0.5)]]), _t([[0.0], [0.0]]))
    torch.testing.assert_close(big, one)
    # t=0: 0 + 1 * (3 + c * (1 - 10)); c = 1 -> -6, c = 0.5 -> -1.5
    assert one[0, 0].item() == pytest.approx(-6.0)
    assert half[0, 0].item() == pytest.approx(-1.5)


def test_terminal_versus_time_limit_truncation():
    r, v = _t([[1.0], [1.0]]), _t([[5.0], [5.0]])
    q, lp = _t([[0.0], [5.0]]), _t([[0.0], [0.0]])
    terminal = retrace_targets(q, v, r, _t([[0.9], [0.0]]), lp, lp)
    truncated = retrace_targets(q, v, r, _t([[0.9], [0.9]]), lp, lp)
    assert terminal[1, 0].item() == pytest.approx(1.0)              # no bootstrap
    assert truncated[1, 0].item() == pytest.approx(1.0 + 0.9 * 5.0)  # bootstrap from V


def test_padding_is_ignored_and_valid_steps_bootstrap():
    """
    Padding after an episode's end never leaks into valid targets.

    After an episode ends inside a sequence, padded steps (even absurd values) must not
    leak into the valid targets; the last valid step bootstraps from its next state.
    """
    r, v = _t([[1.0], [1e6]]), _t([[2.0], [-1e6]])
    q, lp = _t([[0.0], [3e5]]), _t([[0.0], [0.0]])
    g = _t([[0.5], [0.5]])
    mask = _t([[1.0], [0.0]])
    out = retrace_targets(q, v, r, g, lp, lp, mask=mask)
    assert out[0, 0].item() == pytest.approx(1.0 + 0.5 * 2.0)
    loss = critic_loss(_t([[1.5], [123.0]]), out, mask)
    assert loss.item() == pytest.approx(0.5 * 0.5 ** 2)


def test_rank_checks():
    with pytest.raises(AssertionError):
        retrace_targets(torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.zeros(3),
                        torch.zeros(3), torch.zeros(3))
