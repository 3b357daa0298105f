"""
When a learner updates and how far actors may run ahead: the replay ratio as a small state.

Both runners own one :class:`ReplayRatio`: every stored environment step makes
``updates_per_step`` updates due once the buffer holds ``min_size`` transitions; owed updates
beyond ``max_update_debt`` are skipped (a learner slower than unthrottled actors trains on
fresh data, not on an ever-growing backlog); and :meth:`ReplayRatio.step_budget` tells
throttled actors how many steps they may send before the learner falls more than
``max_update_lag`` updates behind. An on-policy learner, which updates when a batch of its
own policy's steps is complete, needs a schedule of its own.
"""

from __future__ import annotations

#: Step budget meaning "no limit".
UNLIMITED = -1


class ReplayRatio:
    """Updates owed per stored environment step (see the module docstring)."""

    def __init__(self, updates_per_step: float, min_size: int, max_update_debt: float = 0.0,
                 max_update_lag: float = 0.0) -> None:
        """``max_update_debt`` 0: never skip; ``max_update_lag`` 0: never hold actors."""
        if updates_per_step < 0 or min_size < 0 or max_update_debt < 0 or max_update_lag < 0:
            raise ValueError('updates_per_step, min_size, max_update_debt and max_update_lag '
                             'must be >= 0')
        self.updates_per_step = float(updates_per_step)
        self.min_size = int(min_size)
        self.max_update_debt = float(max_update_debt)
        self.max_update_lag = float(max_update_lag)
        self.due = 0.0          # updates owed now
        self.skipped = 0.0      # updates dropped by the debt cap so far

    def stored(self, size_before: int, size_after: int, steps: int) -> float:
        """
        Account for ``steps`` new transitions that took the buffer from one size to another.

        Only steps stored at or after the ``min_size``-th make updates due. Returns the
        updates the debt cap skipped now (0 when it did not apply).
        """
        if size_before >= self.min_size:
            eligible = steps
        else:
            eligible = max(0, size_after - self.min_size + 1)
        self.due += eligible * self.updates_per_step
        if self.max_update_debt and self.due > self.max_update_debt:
            skipped = self.due - self.max_update_debt
            self.skipped += skipped
            self.due = self.max_update_debt
            return skipped
        return 0.0

    def dropped(self, steps: int) -> None:
        """Account for steps the runner received but did not store (none are, off-policy)."""

    def learning(self, size: int) -> bool:
        """Whether a buffer of ``size`` transitions is large enough to learn from."""
        return size >= self.min_size

    def ready(self) -> bool:
        """Whether at least one whole update is due."""
        return self.due >= 1.0

    def take(self) -> None:
        """Mark one update done."""
        self.due -= 1.0

    def step_budget(self, num_updates: int, collection_over: bool = False) -> int:
        """
        Environment steps actors may have sent in total, or :data:`UNLIMITED`.

        The budget keeps the learner within ``max_update_lag`` updates of the ratio: after
        ``min_size`` steps, each ``1 / updates_per_step`` further steps need one update.
        Once ``collection_over`` (the run has all its steps), actors may finish freely.
        """
        if collection_over or self.max_update_lag <= 0 or self.updates_per_step <= 0:
            return UNLIMITED
        return self.min_size + int((num_updates + self.max_update_lag) / self.updates_per_step)

    def state_dict(self) -> dict[str, float]:
        """Owed and skipped updates (plain floats)."""
        return {'due': self.due, 'skipped': self.skipped}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore :meth:`state_dict`."""
        self.due = float(state['due'])
        self.skipped = float(state['skipped'])


class OnPolicyBatches:
    """
    One update per complete batch of the current policy's steps.

    Nothing is owed before ``batch_size`` steps are stored. Throttled actors may send only
    what completes the batch being filled: steps beyond it would be stale once the policy
    changes. Steps of an older policy that the runner dropped were sent too and count as
    received, so they raise the budget (otherwise the batch would stay short forever).
    """

    def __init__(self, batch_size: int) -> None:
        """``batch_size``: environment steps per update."""
        if batch_size < 1:
            raise ValueError('batch_size must be >= 1')
        self.batch_size = int(batch_size)
        self.due = 0.0
        self.skipped = 0.0         # the interface of ReplayRatio: never anything to skip here
        self.received = 0          # steps received in all, stored or dropped
        self.size = 0              # steps in the buffer now

    def stored(self, size_before: int, size_after: int, steps: int) -> float:
        """One update is due once the buffer holds a batch; returns 0 (nothing is skipped)."""
        self.received += int(steps)
        self.size = int(size_after)
        self.due = 1.0 if size_after >= self.batch_size else 0.0
        return 0.0

    def dropped(self, steps: int) -> None:
        """Count ``steps`` of an older policy that were dropped: actors must replace them."""
        self.received += int(steps)

    def learning(self, size: int) -> bool:
        """On-policy learners update as soon as a batch is complete."""
        return True

    def ready(self) -> bool:
        """Whether a batch is complete."""
        return self.due >= 1.0

    def take(self) -> None:
        """Mark the batch consumed (the buffer hands over every step it holds)."""
        self.due = 0.0
        self.size = 0

    def step_budget(self, num_updates: int, collection_over: bool = False) -> int:
        """Return the steps actors may have sent in total: those that complete the batch."""
        if collection_over:
            return UNLIMITED
        return self.received + max(0, self.batch_size - self.size)

    def state_dict(self) -> dict[str, float]:
        """Whether an update is owed, steps received and buffered."""
        return {'due': self.due, 'skipped': self.skipped, 'received': self.received,
                'size': self.size}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore :meth:`state_dict`."""
        self.due = float(state['due'])
        self.skipped = float(state['skipped'])
        self.received = int(state['received'])
        self.size = int(state['size'])
