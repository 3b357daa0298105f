"""The replay-ratio schedule against hand-computed update counts and step budgets."""

import numpy as np
import pytest

from mpo_ros.core.schedule import ReplayRatio, UNLIMITED


def test_updates_start_with_the_min_size_th_step():
    s = ReplayRatio(updates_per_step=0.5, min_size=10)
    s.stored(0, 8, 8)
    assert s.due == 0.0 and not s.ready() and not s.learning(8)
    s.stored(8, 12, 4)              # steps 9..12: the 10th, 11th and 12th count
    assert s.due == pytest.approx(1.5) and s.ready() and s.learning(12)
    s.take()
    assert s.due == pytest.approx(0.5) and not s.ready()
    s.stored(12, 13, 1)
    assert s.due == pytest.approx(1.0) and s.ready()


def test_a_full_buffer_still_makes_updates_due():
    s = ReplayRatio(updates_per_step=2.0, min_size=10)
    s.stored(100, 100, 5)           # ring buffer at capacity: the size does not grow
    assert s.due == pytest.approx(10.0)


def test_chunks_and_single_steps_owe_the_same_updates():
    """The learner node stores chunks, the trainer single steps: both must agree."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 40, size=30)
    chunked, single = ReplayRatio(0.25, 57), ReplayRatio(0.25, 57)
    size = 0
    for n in sizes:
        chunked.stored(size, size + n, n)
        for k in range(n):
            single.stored(size + k, size + k + 1, 1)
        size += n
    # By hand: every step from the 57th on owes 0.25 updates.
    expected = 0.25 * (sizes.sum() - 56)
    assert chunked.due == pytest.approx(expected) and single.due == pytest.approx(expected)


def test_debt_cap_skips_and_counts():
    s = ReplayRatio(updates_per_step=1.0, min_size=1, max_update_debt=3.0)
    assert s.stored(10, 20, 10) == pytest.approx(7.0)
    assert s.due == pytest.approx(3.0) and s.skipped == pytest.approx(7.0)
    assert s.stored(20, 21, 1) == pytest.approx(1.0)
    assert s.skipped == pytest.approx(8.0)
    uncapped = ReplayRatio(updates_per_step=1.0, min_size=1)
    assert uncapped.stored(10, 20, 10) == 0.0 and uncapped.due == pytest.approx(10.0)


def test_step_budget_by_hand():
    s = ReplayRatio(updates_per_step=0.5, min_size=1000, max_update_lag=50)
    assert s.step_budget(0) == 1000 + 100           # 50 updates of lag = 100 steps
    assert s.step_budget(100) == 1000 + 300
    assert s.step_budget(100, collection_over=True) == UNLIMITED
    assert ReplayRatio(0.5, 1000, max_update_lag=0).step_budget(100) == UNLIMITED
    assert ReplayRatio(0.0, 1000, max_update_lag=50).step_budget(100) == UNLIMITED


def test_state_round_trip_and_validation():
    s = ReplayRatio(1.0, 1, max_update_debt=2.0)
    s.stored(0, 5, 5)
    t = ReplayRatio(1.0, 1, max_update_debt=2.0)
    t.load_state_dict(s.state_dict())
    assert (t.due, t.skipped) == (2.0, 3.0)
    with pytest.raises(ValueError):
        ReplayRatio(-1.0, 1)


def test_on_policy_batches_one_update_per_batch_and_a_budget_that_completes_it():
    from mpo_ros.core.schedule import OnPolicyBatches
    s = OnPolicyBatches(batch_size=100)
    assert s.learning(0) and s.step_budget(0) == 100
    s.stored(0, 60, 60)
    assert not s.ready() and s.step_budget(0) == 100
    s.stored(60, 103, 43)            # chunks overshoot the batch: all 103 go into the update
    assert s.ready()
    s.take()
    assert not s.ready()
    assert s.step_budget(1) == 203   # 103 received + a whole new batch (not 2 x 100)
    s.dropped(7)                     # acted with the old policy before the new one arrived
    assert s.step_budget(1) == 210
    s.stored(0, 50, 50)
    assert s.step_budget(1) == 210 and s.step_budget(1, collection_over=True) == UNLIMITED
    t = OnPolicyBatches(batch_size=100)
    t.load_state_dict(s.state_dict())
    assert t.step_budget(1) == 210
    r = ReplayRatio(1.0, 10, max_update_lag=5)
    r.dropped(7)                     # off-policy learners drop nothing: no effect
    assert r.step_budget(0) == 15
