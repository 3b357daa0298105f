"""
TRPO maths (Schulman et al. 2015) as pure functions: advantages, natural gradient, line search.

Shape legend: ``N`` steps of an on-policy batch (segment by segment, as in
:class:`~mpo_ros.core.onpolicy.OnPolicyBatch`), ``P`` policy parameters (flattened).

One update solves, around the current parameters theta_old (Sec. 6 and Appendix C)::

    maximise_theta  L(theta) = mean_t  pi_theta(a_t | s_t) / pi_old(a_t | s_t) * A_t
    subject to      mean_t KL(pi_old(.|s_t) || pi_theta(.|s_t)) <= delta

with a linear model of L (gradient g) and a quadratic model of the KL (the Fisher matrix F,
which is never built: conjugate gradient needs only products F v, obtained by differentiating
the KL twice). The step ``beta s`` with ``s ~= (F + lambda I)^-1 g`` and
``beta = sqrt(2 delta / s^T (F + lambda I) s)`` is then shortened by a backtracking line
search until the *measured* surrogate improves and the *measured* KL is within delta; if no
step length does, the parameters are restored exactly. The vine estimator (Sec. 5.2) replaces
L by the self-normalised form of Eq. 16 over K actions per state (:func:`vine_surrogate`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch

from mpo_ros.core.distributions import Gaussian

_LOG_2PI_E = math.log(2.0 * math.pi) + 1.0


class Advantages(NamedTuple):
    """GAE advantages and the value targets they imply, both [N]."""

    advantages: torch.Tensor
    returns: torch.Tensor


def gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor,
        terminals: torch.Tensor, segment_ends: torch.Tensor, discount: float,
        lam: float) -> Advantages:
    """
    Generalised advantage estimation over the segments of an on-policy batch.

    All inputs are [N]: ``values`` = V(s_t), ``next_values`` = V(s_{t+1}) (from each step's
    ``next_observations``), ``terminals`` and ``segment_ends`` booleans. Backwards in t::

        delta_t = r_t + gamma * (1 - terminal_t) * V(s_{t+1}) - V(s_t)
        A_t     = delta_t + gamma * lam * (1 - end_t) * A_{t+1}
        R_t     = A_t + V(s_t)                  (the value target)

    A terminal step does not bootstrap; a segment that ends without one (a time-limit
    truncation, or the batch cut the stream there) bootstraps from V(s_{t+1}). The recursion
    restarts at every segment end. ``lam = 1`` gives the Monte Carlo advantage of the
    paper's single-path estimator (Sec. 5.1): the discounted return to the end of the
    segment (plus the bootstrap) minus V(s_t); ``lam = 0`` the one-step TD error.
    """
    n = rewards.shape[0]
    for name, x in (('values', values), ('next_values', next_values),
                    ('terminals', terminals), ('segment_ends', segment_ends)):
        assert x.shape == (n,), (name, x.shape, n)
    assert rewards.shape == (n,), rewards.shape
    r, v, v_next = (x.detach().cpu().double().numpy() for x in (rewards, values, next_values))
    term = terminals.detach().cpu().numpy().astype(bool)
    end = segment_ends.detach().cpu().numpy().astype(bool) | term
    if n:
        assert end[-1], 'the last step of a batch must end its segment'
    adv = np.zeros(n, np.float64)
    running = 0.0
    for t in range(n - 1, -1, -1):
        bootstrap = 0.0 if term[t] else discount * v_next[t]
        delta = r[t] + bootstrap - v[t]
        running = delta + (0.0 if end[t] else discount * lam * running)
        adv[t] = running
    advantages = torch.as_tensor(adv, dtype=values.dtype, device=values.device)
    return Advantages(advantages, advantages + values.detach())


def surrogate(log_prob: torch.Tensor, old_log_prob: torch.Tensor,
              advantages: torch.Tensor) -> torch.Tensor:
    """L = mean_t exp(log pi(a_t|s_t) - log pi_old(a_t|s_t)) * A_t (Eq. 14), inputs [N]."""
    assert log_prob.shape == old_log_prob.shape == advantages.shape, (
        log_prob.shape, old_log_prob.shape, advantages.shape)
    assert log_prob.dim() == 1, log_prob.shape
    return (torch.exp(log_prob - old_log_prob.detach()) * advantages.detach()).mean()


def vine_q_values(rewards: torch.Tensor, alive: torch.Tensor, discount: float) -> torch.Tensor:
    """
    Monte Carlo Q estimates of the vine rollouts: ``Q[n, k] = sum_h gamma^h r[n, k, h]``.

    ``rewards`` and ``alive`` are [N, K, H]; steps a rollout did not take (after its terminal
    step or time limit) count nothing. No bootstrap at the horizon H: the paper's truncated
    rollouts; the K rollouts of one state share the truncation, and the self-normalised
    surrogate only uses differences between them.
    """
    assert rewards.dim() == 3 and alive.shape == rewards.shape, (rewards.shape, alive.shape)
    h = rewards.shape[-1]
    weights = discount ** torch.arange(h, dtype=torch.float64, device=rewards.device)
    q = (rewards.double() * alive.double() * weights).sum(-1)
    return q.to(rewards.dtype)


def vine_surrogate(log_prob: torch.Tensor, old_log_prob: torch.Tensor,
                   q: torch.Tensor) -> torch.Tensor:
    """
    Self-normalised importance-sampling surrogate of the vine (Eq. 16), averaged over states.

    Inputs [N, K]: the K actions a_{n,k} ~ pi_old(.|s_n) of each rollout-set state, their log
    densities under pi and pi_old, and their Q estimates::

        L = mean_n  sum_k w_nk Q_nk / sum_k w_nk,     w_nk = pi(a_nk|s_n) / pi_old(a_nk|s_n)

    (the weights normalised with a softmax of the log-ratios over k). At pi = pi_old it is the
    mean Q and its gradient ``mean_n 1/K sum_k grad log pi(a_nk|s_n) (Q_nk - mean_k Q_nk)``:
    the per-state mean of the K estimates is the baseline, so none is learned.

    Why this form: it is the paper's estimator for continuous actions (Eq. 15 needs a finite
    action set to enumerate). Unlike the plain importance-sampling mean
    ``1/K sum_k w_nk Q_nk``, it is unchanged by a constant added to the Q values of a state,
    so whatever the K truncated rollouts of a state share (the return beyond H, a common time
    limit) cancels without a learned baseline, and it stays within the range of the Q values
    whatever the weights. Its price, a bias of order 1/K (a ratio estimator), vanishes at
    pi = pi_old, where the trust region keeps the update.
    """
    assert log_prob.shape == old_log_prob.shape == q.shape, (
        log_prob.shape, old_log_prob.shape, q.shape)
    assert log_prob.dim() == 2 and log_prob.shape[1] >= 2, log_prob.shape
    weights = torch.softmax(log_prob - old_log_prob.detach(), dim=1)
    return (weights * q.detach()).sum(1).mean()


def mean_kl(old: Gaussian, new: Gaussian) -> torch.Tensor:
    """Mean over states of KL(pi_old || pi): the constraint of Eq. 12 (old first)."""
    return old.kl(new).mean()


def entropy(dist: Gaussian) -> torch.Tensor:
    """Differential entropy [...] = D/2 (1 + log 2 pi) + sum_i log L_ii."""
    log_diag = torch.diagonal(dist.scale_tril, dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * dist.dim * _LOG_2PI_E + log_diag


def flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors into one vector [P]."""
    return torch.cat([t.reshape(-1) for t in tensors])


def flat_grad(output: torch.Tensor, params: Sequence[torch.Tensor],
              create_graph: bool = False, retain_graph: bool | None = None) -> torch.Tensor:
    """Gradient of ``output`` w.r.t. ``params`` as one vector [P] (zeros where unused)."""
    grads = torch.autograd.grad(output, params, create_graph=create_graph,
                                retain_graph=retain_graph, allow_unused=True)
    return flat([torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)])


class CGResult(NamedTuple):
    """Approximate solution of (A + lambda I) x = b."""

    x: torch.Tensor          # [P]
    residual: float          # || b - (A + lambda I) x || as tracked by the recursion
    iterations: int          # matrix-vector products used


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       iterations: int, damping: float = 0.0,
                       residual_tol: float = 1e-10) -> CGResult:
    """
    Solve ``(A + damping I) x = b`` for symmetric positive semi-definite A, given only v -> Av.

    Standard conjugate gradient from x = 0 (Nocedal & Wright, Alg. 5.2) for at most
    ``iterations`` products; stops early when the squared residual falls below
    ``residual_tol`` or a direction has no positive curvature (a non-PSD or NaN product
    then cannot corrupt the step: the iterate so far is returned).
    """
    assert b.dim() == 1, b.shape
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = float(r @ r)
    used = 0
    for _ in range(iterations):
        if rr <= residual_tol:
            break
        ap = matvec(p) + damping * p
        used += 1
        p_ap = float(p @ ap)
        if not math.isfinite(p_ap) or p_ap <= 0.0:
            break
        alpha = rr / p_ap
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = float(r @ r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return CGResult(x, math.sqrt(max(rr, 0.0)), used)


def fisher_vector_product(kl: torch.Tensor, params: Sequence[torch.Tensor]
                          ) -> Callable[[torch.Tensor], torch.Tensor]:
    """
    Return v -> F v, F the Hessian of the mean KL(pi_old || pi_theta) at theta = theta_old.

    ``kl`` is that mean KL evaluated at the current parameters with pi_old detached. At
    theta_old the KL's first derivative vanishes, so its Hessian is the Fisher matrix
    ``mean_x J^T M J`` of Appendix C.1 (J the Jacobian of the distribution parameters, M their
    Fisher matrix). One backward pass with ``create_graph`` gives grad KL once; each product
    is a second backward pass of ``grad KL . v`` (double backprop), with the graph retained.
    """
    assert kl.dim() == 0, kl.shape
    grad = flat_grad(kl, params, create_graph=True)

    def product(v: torch.Tensor) -> torch.Tensor:
        assert v.shape == grad.shape, (v.shape, grad.shape)
        if not grad.requires_grad:         # the KL does not depend on the parameters
            return torch.zeros_like(v)
        return flat_grad(grad @ v.detach(), params, retain_graph=True).detach()

    return product


def step_length(direction: torch.Tensor, curvature: torch.Tensor, max_kl: float) -> float:
    """
    Largest beta with 1/2 beta^2 s^T A s = delta: ``sqrt(2 delta / s^T A s)`` (Appendix C).

    ``curvature`` is A s [P]. Returns 0 (no step) when s^T A s is not positive and finite, the
    case where the formula divides by zero or takes the root of a negative number.
    """
    assert direction.shape == curvature.shape and direction.dim() == 1
    shs = float(direction @ curvature)
    if not math.isfinite(shs) or shs <= 0.0:
        return 0.0
    beta = math.sqrt(2.0 * max_kl / shs)
    return beta if math.isfinite(beta) else 0.0


class LineSearch(NamedTuple):
    """Outcome of :func:`line_search`."""

    accepted: bool
    backtracks: int          # shrinks before the accepted length (``max_steps`` if none)
    fraction: float          # accepted fraction of the full step (0 if none)
    surrogate_gain: float    # L(new) - L(old) (0 if none)
    kl: float                # measured mean KL at the accepted step (0 if none)


def _set(params: Sequence[torch.Tensor], start: Sequence[torch.Tensor],
         step: torch.Tensor | None, fraction: float) -> None:
    """Set params to start + fraction * step (exactly start when step is None)."""
    offset = 0
    with torch.no_grad():
        for p, p0 in zip(params, start):
            if step is None:
                p.copy_(p0)
            else:
                k = p.numel()
                p.copy_(p0 + fraction * step[offset:offset + k].view_as(p))
                offset += k


def line_search(params: Sequence[torch.Tensor], full_step: torch.Tensor,
                evaluate: Callable[[], tuple[float, float]], surrogate_old: float,
                max_kl: float, shrink: float, max_steps: int) -> LineSearch:
    """
    Backtracking on ``theta_old + shrink^k full_step``, k = 0 .. max_steps - 1.

    ``evaluate()`` returns (surrogate, mean KL) at the current parameter values. A step length
    is accepted only if the surrogate improves on ``surrogate_old`` AND the measured KL is at
    most ``max_kl`` (both finite): the objective ``L - X[KL <= delta]`` of Appendix C. When
    none is, every parameter is restored to a saved copy, bit for bit.
    """
    assert full_step.dim() == 1 and full_step.numel() == sum(p.numel() for p in params)
    start = [p.detach().clone() for p in params]
    if torch.isfinite(full_step).all() and float(full_step.abs().max()) > 0.0:
        for k in range(max_steps):
            fraction = shrink ** k
            _set(params, start, full_step, fraction)
            with torch.no_grad():
                value, kl = evaluate()
            gain = value - surrogate_old
            if math.isfinite(gain) and math.isfinite(kl) and gain > 0.0 and kl <= max_kl:
                return LineSearch(True, k, fraction, gain, kl)
    _set(params, start, None, 0.0)
    return LineSearch(False, max_steps, 0.0, 0.0, 0.0)


class NaturalStep(NamedTuple):
    """Outcome of :func:`natural_gradient_step`; ``stats`` are plain floats."""

    search: LineSearch
    stats: dict[str, float]


def natural_gradient_step(params: Sequence[torch.Tensor],
                          surrogate_fn: Callable[[], torch.Tensor],
                          kl_fn: Callable[[], torch.Tensor], max_kl: float,
                          cg_iterations: int, damping: float, shrink: float,
                          max_steps: int) -> NaturalStep:
    """
    One TRPO policy update of ``params`` in place (Sec. 6, Appendix C).

    ``surrogate_fn()`` is L at the current parameters (with gradient), ``kl_fn()`` the mean
    KL(pi_old || pi) at the current parameters, pi_old fixed. Steps: g = grad L; s from
    ``cg_iterations`` of conjugate gradient on (F + damping I) s = g with F v by double
    backprop; ``beta = sqrt(2 max_kl / s^T (F + damping I) s)``; line search on ``beta s``.
    Stats: ``grad_norm`` |g|, ``cg_residual``, ``step_norm`` |beta s|, ``expected_gain``
    g . (accepted step) (the linear model's improvement).
    """
    params = list(params)
    loss = surrogate_fn()
    assert loss.dim() == 0, loss.shape
    g = flat_grad(loss, params).detach()
    surrogate_old = float(loss.detach())
    stats = {'grad_norm': float(g.norm()), 'cg_residual': float('nan'), 'step_norm': 0.0,
             'expected_gain': 0.0}
    rejected = LineSearch(False, 0, 0.0, 0.0, 0.0)
    if not torch.isfinite(g).all() or not bool((g != 0).any()):
        return NaturalStep(rejected, stats)
    fvp = fisher_vector_product(kl_fn(), params)
    cg = conjugate_gradient(fvp, g, cg_iterations, damping)
    beta = step_length(cg.x, fvp(cg.x) + damping * cg.x, max_kl)
    del fvp                                          # free the double-backprop graph
    stats['cg_residual'] = cg.residual
    if beta == 0.0:
        return NaturalStep(rejected, stats)
    full_step = beta * cg.x

    def evaluate() -> tuple[float, float]:
        return float(surrogate_fn()), float(kl_fn())

    search = line_search(params, full_step, evaluate, surrogate_old, max_kl, shrink, max_steps)
    stats['step_norm'] = float(full_step.norm()) * search.fraction
    stats['expected_gain'] = float(g @ full_step) * search.fraction
    return NaturalStep(search, stats)
