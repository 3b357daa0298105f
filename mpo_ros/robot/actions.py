"""
Policy actions <-> actuator commands, and the executed action that replay stores.

The policy acts in a normalised space: [-1, 1] per dimension maps linearly onto the actuator
range [low, high]. A sample outside [-1, 1] is clipped before the mapping, and the safety
layer may change the command further (rate limit, speed and position limits). Replay must hold
what the robot executed, so per dimension the stored action is

- the raw (pre-clip) sample where the safety layer left that dimension's clipped command as it
  was: the learner's critic clips actions itself, so the clip needs no correction, and the
  sample keeps its exact behaviour log-probability;
- the filtered command mapped back to normalised units where the safety layer changed it;

and the behaviour log-probability is the acting policy's log-density at that stored vector.

Pure numpy; the log-density comes from the caller (``Policy.log_prob``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


class ActionMap:
    """Linear map between normalised actions [-1, 1] and actuator commands [low, high]."""

    def __init__(self, low: np.ndarray, high: np.ndarray) -> None:
        """Map onto ``low``..``high`` per dimension."""
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        if self.low.shape != self.high.shape or np.any(self.high < self.low):
            raise ValueError(f'actuator bounds low {self.low} high {self.high} do not fit')
        self.span = self.high - self.low

    def to_command(self, action: np.ndarray) -> np.ndarray:
        """Clip a normalised action to [-1, 1] and map it to actuator units."""
        clipped = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        return self.low + 0.5 * (clipped + 1.0) * self.span

    def to_normalised(self, command: np.ndarray) -> np.ndarray:
        """Map actuator units back to the normalised space (0 where low == high)."""
        command = np.asarray(command, dtype=np.float64)
        safe_span = np.where(self.span > 0, self.span, 1.0)
        return np.where(self.span > 0, 2.0 * (command - self.low) / safe_span - 1.0, 0.0)


class Executed(NamedTuple):
    """What replay stores for one step."""

    action: np.ndarray     # [D] float32, normalised (raw sample where only clipped)
    log_prob: float        # log pi(action | obs) under the acting policy
    changed: np.ndarray    # [D] bool: dimensions the safety layer changed


def executed_action(raw: np.ndarray, raw_log_prob: float, command: np.ndarray,
                    filtered: np.ndarray, actions: ActionMap,
                    log_prob: Callable[[np.ndarray], float]) -> Executed:
    """
    Return the action to store for a sample ``raw`` whose command ``command`` became ``filtered``.

    ``command`` is ``actions.to_command(raw)`` (clipped), ``filtered`` what the safety layer let
    through, ``log_prob(action)`` the acting policy's log-density at a normalised action.
    """
    changed = np.asarray(filtered) != np.asarray(command)
    raw = np.asarray(raw, dtype=np.float32)
    if not changed.any():
        return Executed(raw, float(raw_log_prob), changed)
    stored = np.where(changed, actions.to_normalised(filtered), raw).astype(np.float32)
    return Executed(stored, float(log_prob(stored)), changed)
