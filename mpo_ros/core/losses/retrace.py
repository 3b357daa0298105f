"""
Retrace(lambda) critic targets (Munos et al. 2016; MPO paper Eq. 13).

Shape legend: ``T`` steps of a sequence, ``B`` sequences.

Recursion, computed backwards from the last step of each sequence::

    Q_ret_t = r_t + g_t * [ V_{t+1} + c_{t+1} * (Q_ret_{t+1} - Q'_{t+1}) ]
    c_k     = lambda * min(1, pi(a_k | s_k) / b(a_k | s_k))

with ``g_t`` the step's discount (gamma, or 0 at a terminal step), ``V_{t+1}`` =
``E_{a~pi} Q'(s_{t+1}, a)`` and ``Q'_{t+1}`` = ``Q'(s_{t+1}, a_{t+1})`` from the target critic.
The sum is truncated after the sequence by bootstrapping with ``V``: the last step's target is
``r + g * V``. A time-limit truncation keeps ``g = gamma`` (bootstrap) while a terminal step has
``g = 0``. Where ``mask`` marks padding after an episode ended inside the sequence, the trace is
cut (``c = 0``) so each valid step bootstraps from the stored next state instead.
"""

from __future__ import annotations

import torch


def retrace_targets(q_taken: torch.Tensor, v_next: torch.Tensor, rewards: torch.Tensor,
                    discounts: torch.Tensor, log_pi: torch.Tensor, log_b: torch.Tensor,
                    lambda_: float = 1.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """
    Retrace targets [T, B] (no gradient).

    ``q_taken`` is ``Q'(s_t, a_t)`` [T, B] from the target critic, ``v_next`` is
    ``E_pi Q'(s_{t+1}, .)`` [T, B], ``discounts`` is gamma times (1 - terminal), ``log_pi`` the
    target policy's and ``log_b`` the behaviour's (stored at acting time) log-probability of the
    taken action, ``mask`` 1 for valid steps and 0 for padding (None: all valid).
    """
    assert q_taken.dim() == 2, q_taken.shape
    for name, x in (('v_next', v_next), ('rewards', rewards), ('discounts', discounts),
                    ('log_pi', log_pi), ('log_b', log_b)):
        assert x.shape == q_taken.shape, (name, x.shape, q_taken.shape)
    with torch.no_grad():
        c = lambda_ * torch.exp(torch.clamp(log_pi - log_b, max=0.0))
        if mask is not None:
            c = c * mask.to(c.dtype)
        steps = q_taken.shape[0]
        targets = torch.empty_like(q_taken)
        ret = rewards[-1] + discounts[-1] * v_next[-1]
        targets[-1] = ret
        for t in range(steps - 2, -1, -1):
            ret = rewards[t] + discounts[t] * (v_next[t] + c[t + 1] * (ret - q_taken[t + 1]))
            targets[t] = ret
    return targets


def critic_loss(q: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None
                ) -> torch.Tensor:
    """Half mean squared error over valid steps."""
    assert q.shape == targets.shape, (q.shape, targets.shape)
    err = 0.5 * (q - targets.detach()).square()
    if mask is None:
        return err.mean()
    m = mask.to(err.dtype)
    return (err * m).sum() / m.sum().clamp_min(1.0)
