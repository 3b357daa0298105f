"""Inference policy and the flat weight format that crosses process boundaries."""

import zlib

import numpy as np
import pytest
import torch

from mpo_ros.core.config import NetworkConfig
from mpo_ros.core.learners.mpo import MPOLearner
from mpo_ros.core.policy import FlatWeights, flatten_state, Policy, unflatten_state

NET = NetworkConfig(policy_hidden=(8, 8), critic_hidden=(8,))


def test_flat_round_trip_and_checksum_is_crc32_of_data():
    state = {'a': torch.arange(6.0).reshape(2, 3), 'b': torch.tensor([7.0]),
             'steps': torch.tensor(3)}                   # integer buffers are not transported
    flat = flatten_state(state)
    assert flat.names == ['a', 'b'] and flat.shapes == [(2, 3), (1,)]
    np.testing.assert_array_equal(flat.data, [0, 1, 2, 3, 4, 5, 7])
    assert flat.checksum == zlib.crc32(np.array([0, 1, 2, 3, 4, 5, 7], np.float32).tobytes())
    back = unflatten_state(flat, state)
    assert torch.equal(back['a'], state['a']) and torch.equal(back['b'], state['b'])


@pytest.mark.parametrize('defect, message', [
    (lambda f: f._replace(checksum=f.checksum ^ 1), 'checksum'),
    (lambda f: f._replace(names=['b', 'a']), 'names'),
    (lambda f: f._replace(shapes=[(3, 2), (1,)]), 'shape'),
    (lambda f: FlatWeights(f.names, f.shapes, f.data[:-1], zlib.crc32(f.data[:-1].tobytes())),
     'shorter'),
    (lambda f: FlatWeights(f.names, f.shapes, np.r_[f.data, 1.0].astype(np.float32),
                           zlib.crc32(np.r_[f.data, 1.0].astype(np.float32).tobytes())),
     'layout needs'),
    (lambda f: FlatWeights(f.names, f.shapes, np.r_[f.data[:-1], np.nan].astype(np.float32),
                           zlib.crc32(np.r_[f.data[:-1], np.nan].astype(np.float32).tobytes())),
     'NaN'),
])
def test_defective_weights_are_rejected_with_a_reason(defect, message):
    state = {'a': torch.zeros(2, 3), 'b': torch.zeros(1)}
    with pytest.raises(ValueError, match=message):
        unflatten_state(defect(flatten_state(state)), state)


def test_policy_loads_learner_weights_and_acts_like_it():
    learner = MPOLearner(4, 2, network=NET, seed=3)
    learner.observe(np.random.default_rng(0).normal(size=(50, 4)) * 3 + 1)
    policy = Policy(4, 2, NET, seed=0)
    policy.load_flat(flatten_state(learner.policy.state_dict()), version=12)
    assert policy.version == 12
    obs = np.array([0.5, -1.0, 2.0, 0.0], np.float32)
    det = policy.act(obs, deterministic=True)
    ref = learner.policy(torch.from_numpy(obs))
    np.testing.assert_allclose(det.mean, ref.mean.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(det.raw, det.mean)
    assert det.log_prob == pytest.approx(ref.log_prob(ref.mean).item(), rel=1e-5)
    sampled = policy.act(obs)
    assert sampled.log_prob == pytest.approx(
        ref.log_prob(torch.from_numpy(sampled.raw)).item(), rel=1e-5)
    assert np.all(np.abs(sampled.action) <= 1.0)
    np.testing.assert_allclose(sampled.action, np.clip(sampled.raw, -1, 1))


@pytest.mark.parametrize('obs', [np.zeros(3), np.array([0, 0, np.nan, 0]),
                                 np.array([0, np.inf, 0, 0])])
def test_bad_observations_are_rejected(obs):
    with pytest.raises(ValueError):
        Policy(4, 2, NET).act(obs)
