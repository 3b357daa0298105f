"""
Every registered learner, through the registry only, and the selector's errors.

A step runs, the same seed gives the same result, and save / load continues bit-identically.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch

from mpo_ros.core import checkpoint
from mpo_ros.core import learners
from mpo_ros.core.config import Config, ConfigError, NetworkConfig, ReplayConfig, TrainConfig
from mpo_ros.core.config import TRPOConfig
from mpo_ros.core.learners.base import METRIC_KINDS, ON_POLICY, SEQUENCES

OBS, ACT = 3, 2
CONFIG = Config(network=NetworkConfig(policy_hidden=(16, 16), critic_hidden=(16, 16)),
                replay=ReplayConfig(batch_size=8, min_size=1),
                trpo=TRPOConfig(batch_size=64, value_minibatch_size=16, value_epochs=2))


def _batches(learner, count, seed=0):
    """Draw ``count`` batches of the kind the learner asks for, from made-up episodes."""
    buffer = learners.make_buffer(learner.data, OBS, ACT, 1000, seed=seed)
    rng = np.random.default_rng(seed)

    def add(k, stream=0):
        buffer.add(rng.normal(size=OBS), rng.normal(size=ACT), rng.normal(), rng.normal(size=OBS),
                   k % 37 == 36, k % 50 == 49, rng.normal() - 2.0, stream=stream)

    if learner.data.kind == SEQUENCES:
        for k in range(200):
            add(k)
        return [buffer.sample() for _ in range(count)]
    assert learner.data.kind == ON_POLICY, f'add data for {learner.data.kind}'
    batches = []
    for _ in range(count):            # one fresh batch per update, from two actors' streams
        k = 0
        while not buffer.ready():
            add(k, stream=k % 2)
            k += 1
        batches.append(buffer.sample())
    return batches


def _tensors(state):
    """Flatten a (nested) state dict into {path: tensor} for exact comparison."""
    out = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f'{prefix}/{k}', v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f'{prefix}/{i}', v)
        elif isinstance(value, torch.Tensor):
            out[prefix] = value
        else:
            out[prefix] = torch.tensor(float(value)) if isinstance(value, (int, float)) else value
    walk('', state)
    return out


def _assert_same_state(a, b):
    ta, tb = _tensors(a.state_dict()), _tensors(b.state_dict())
    assert ta.keys() == tb.keys()
    for k in ta:
        if isinstance(ta[k], torch.Tensor):
            assert torch.equal(ta[k], tb[k]), k
        else:
            assert ta[k] == tb[k], k


def _no_perf(metrics):
    return {k: v for k, v in metrics.items() if not k.startswith('perf/')}


@pytest.mark.parametrize('name', learners.names())
def test_step_runs_and_reports_its_metric_names(name):
    learner = learners.make(name, OBS, ACT, CONFIG, seed=0)
    assert isinstance(learner, learners.Learner) and learner.name == name
    batch = _batches(learner, 1)[0]
    learner.observe(batch.observations)
    metrics = learner.step(batch)
    assert set(metrics) == set(learner.metric_names())
    assert all(k.startswith(METRIC_KINDS) for k in metrics)
    assert all(np.isfinite(v) for k, v in metrics.items() if not k.startswith('grad/'))
    assert set(learner.log_metrics) <= set(learner.metric_names())
    assert learner.num_steps == 1
    assert learner.policy_state() and all(isinstance(v, torch.Tensor)
                                          for v in learner.policy_state().values())


@pytest.mark.parametrize('name', learners.names())
def test_same_seed_same_result_other_seed_differs(name):
    runs = []
    for seed in (4, 4, 5):
        learner = learners.make(name, OBS, ACT, CONFIG, seed=seed)
        batches = _batches(learner, 3)
        learner.observe(batches[0].observations)
        runs.append(([_no_perf(learner.step(b)) for b in batches], learner))
    assert runs[0][0] == runs[1][0]
    _assert_same_state(runs[0][1], runs[1][1])
    assert runs[0][0] != runs[2][0]


@pytest.mark.parametrize('name', learners.names())
def test_save_load_continues_bit_identically(name, tmp_path):
    straight = learners.make(name, OBS, ACT, CONFIG, seed=1)
    batches = _batches(straight, 6)
    straight.observe(batches[0].observations)
    expected = [_no_perf(straight.step(b)) for b in batches]

    first = learners.make(name, OBS, ACT, CONFIG, seed=1)
    first.observe(batches[0].observations)
    for b in batches[:3]:
        first.step(b)
    checkpoint.save_atomic({'learner': first.state_dict()}, tmp_path / 'ckpt.pt')
    resumed = learners.make(name, OBS, ACT, CONFIG, seed=999)    # different init: overwritten
    resumed.load_state_dict(checkpoint.load(tmp_path / 'ckpt.pt')['learner'])
    assert [_no_perf(resumed.step(b)) for b in batches[3:]] == expected[3:]
    _assert_same_state(resumed, straight)


def test_unknown_algorithm_is_a_config_error_naming_the_field(tmp_path):
    with pytest.raises(ConfigError, match='algorithm'):
        learners.make('nope', OBS, ACT, CONFIG)
    with pytest.raises(ConfigError, match='TrainConfig.algorithm'):
        TrainConfig(algorithm='nope')
    proc = subprocess.run([sys.executable, '-m', 'mpo_ros.trainer', '--algorithm', 'nope',
                           '--out', str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and 'nope' in proc.stderr and 'mpo' in proc.stderr


def test_registering_a_name_twice_fails():
    with pytest.raises(ValueError, match='twice'):
        learners.register('mpo')(lambda *a: None)
