"""Sequence replay with index-valued data, so the expected sequences are obvious by eye."""

import numpy as np
import pytest
import torch

from mpo_ros.core.replay import SequenceReplay


def _fill_episode(replay, first, length, terminal, stream=0):
    """Episode whose observation at step k is first + k (1-d) and reward first + k."""
    obs = (first + np.arange(length + 1, dtype=np.float32))[:, None]
    ends = np.zeros(length, bool)
    ends[-1] = True
    terms = np.zeros(length, bool)
    terms[-1] = terminal
    replay.add_chunk(obs, obs[:-1] * 10, obs[:-1, 0], terms, ends,
                     -obs[:-1, 0] / 100, stream)


def test_sequences_follow_steps_and_stop_at_episode_end():
    replay = SequenceReplay(1, 1, 100, seed=0)
    _fill_episode(replay, 0, 5, terminal=True)       # obs 0..5, rewards 0..4
    _fill_episode(replay, 100, 5, terminal=False)    # time-limit truncated
    batch = replay.sample(200, 4)
    assert batch.observations.shape == (5, 200, 1) and batch.actions.shape == (4, 200, 1)
    for b in range(200):
        s0 = batch.observations[0, b, 0]
        n_valid = int(batch.mask[:, b].sum())
        base = 0 if s0 < 100 else 100
        assert n_valid == min(4, base + 5 - s0)
        np.testing.assert_array_equal(batch.rewards[:n_valid, b], s0 + np.arange(n_valid))
        np.testing.assert_array_equal(batch.actions[:n_valid, b, 0],
                                      10 * (s0 + np.arange(n_valid)))
        np.testing.assert_allclose(batch.log_probs[:n_valid, b],
                                   -(s0 + np.arange(n_valid)) / 100, rtol=1e-6)
        # States: s_0..s_n real, then the last next-state repeated.
        np.testing.assert_array_equal(batch.observations[:n_valid + 1, b, 0],
                                      s0 + np.arange(n_valid + 1))
        assert (batch.observations[n_valid + 1:, b, 0] == s0 + n_valid).all()
        last = n_valid - 1
        terminal_step = base == 0 and s0 + last == 4
        assert batch.discounts[last, b] == (0.0 if terminal_step else 1.0)
        assert (batch.discounts[n_valid:, b] == 0).all()
        assert (batch.rewards[n_valid:, b] == 0).all()


def test_streams_do_not_mix_and_chunks_join():
    replay = SequenceReplay(1, 1, 100, seed=1)
    obs_a = np.arange(4, dtype=np.float32)[:, None]        # stream 0: 0,1,2,3
    obs_b = 50 + np.arange(4, dtype=np.float32)[:, None]   # stream 1: 50..53
    z = np.zeros(3, bool)
    replay.add_chunk(obs_a, obs_a[:-1], obs_a[:-1, 0], z, z, np.zeros(3), stream=0)
    replay.add_chunk(obs_b, obs_b[:-1], obs_b[:-1, 0], z, z, np.zeros(3), stream=1)
    obs_a2 = 3 + np.arange(4, dtype=np.float32)[:, None]   # stream 0 continues: 3..6
    replay.add_chunk(obs_a2, obs_a2[:-1], obs_a2[:-1, 0], z, z, np.zeros(3), stream=0)
    batch = replay.sample(300, 3)
    for b in range(300):
        n = int(batch.mask[:, b].sum())
        r = batch.rewards[:n, b]
        np.testing.assert_array_equal(np.diff(r), np.ones(n - 1))   # consecutive in a stream
        if r[0] == 2:      # crosses into the later chunk of the same stream
            assert n == 3 and r[-1] == 4


def test_ring_buffer_wraps_without_joining_old_and_new():
    replay = SequenceReplay(1, 1, 8, seed=2)
    obs = np.arange(13, dtype=np.float32)[:, None]
    z = np.zeros(12, bool)
    replay.add_chunk(obs, obs[:-1], obs[:-1, 0], z, z, np.zeros(12))
    assert len(replay) == 8 and replay.added == 12
    batch = replay.sample(500, 4)
    starts = batch.rewards[0]
    assert set(np.unique(starts)) == set(range(4, 12))
    for b in range(500):
        n = int(batch.mask[:, b].sum())
        assert n == min(4, 12 - starts[b])


@pytest.mark.parametrize('added', [30, 75])        # partly filled, and wrapped around
def test_state_dict_round_trip_continues_identically(tmp_path, added):
    replay = SequenceReplay(2, 1, 50, seed=3)
    rng = np.random.default_rng(0)
    for _ in range(added):
        replay.add(rng.normal(size=2), rng.normal(size=1), 1.0, rng.normal(size=2),
                   False, rng.random() < 0.1, -0.5)
    path = tmp_path / 'replay.pt'
    torch.save(replay.state_dict(), path)
    restored = SequenceReplay(2, 1, 50, seed=99)
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert restored.state_dict()['obs'].shape == (min(added, 50), 2)   # only filled slots
    a, b = replay.sample(16, 3), restored.sample(16, 3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match='capacity'):
        SequenceReplay(2, 1, 51).load_state_dict(replay.state_dict())


def test_empty_buffer_raises():
    with pytest.raises(ValueError, match='empty'):
        SequenceReplay(1, 1, 4).sample(1, 1)


def test_the_seed_decides_which_sequences_are_drawn():
    """Same seed, same draws; another seed, other draws (a mutant ignored the seed)."""
    def draws(seed):
        replay = SequenceReplay(1, 1, 500, seed=seed)
        for k in range(400):
            replay.add([k], [0.0], 0.0, [k + 1], False, False, 0.0)
        return np.concatenate([replay.sample(32, 1).observations.ravel() for _ in range(3)])
    assert np.array_equal(draws(5), draws(5))
    assert not np.array_equal(draws(5), draws(6))
