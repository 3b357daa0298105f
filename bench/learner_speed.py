"""
Learner speed: updates per second of MPOLearner.step, and a profile of one update.

Batches are random sequences (speed does not depend on the values). Reports the median of
``--repeats`` timed updates after warm-up for each configuration, the full/diagonal ratio, a
torch.profiler table of the default configuration, and a micro-benchmark of the largest cost
(scoring N sampled actions per state with the target critic): the critic's split first layer,
which computes the observation part once per state, against the plain concatenated input.

Example::

    .venv/bin/python bench/learner_speed.py --threads 1
"""

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from common import provenance, write_result
from mpo_ros.core import learners
from mpo_ros.core.config import Config, MPOConfig, NetworkConfig
from mpo_ros.core.replay import SequenceReplay

OBS, ACT = 17, 6          # HalfCheetah/Walker2d-sized


def _replay(seed=0):
    rng = np.random.default_rng(seed)
    replay = SequenceReplay(OBS, ACT, 20_000, seed=seed)
    for _ in range(20):
        n = 1000
        ends = np.zeros(n, bool)
        ends[-1] = True
        replay.add_chunk(rng.normal(size=(n + 1, OBS)).astype(np.float32),
                         rng.normal(size=(n, ACT)).astype(np.float32), rng.normal(size=n),
                         np.zeros(n, bool), ends, rng.normal(size=n) - 5)
    return replay


def time_updates(batch_size, seq_len, covariance, samples, repeats):
    """Median seconds per learner step (sampling the batch included)."""
    replay = _replay()
    learner = learners.make('mpo', OBS, ACT, Config(
        mpo=MPOConfig(num_action_samples=samples, sequence_length=seq_len),
        network=NetworkConfig(covariance=covariance)))
    for _ in range(5):
        learner.step(replay.sample(batch_size, seq_len))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        learner.step(replay.sample(batch_size, seq_len))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), learner, replay


def critic_first_layer_ablation(batch_states, samples, repeats):
    """Median seconds of scoring N actions per state: split first layer vs concatenation."""
    torch.manual_seed(0)
    obs = torch.randn(batch_states, OBS)
    act = torch.randn(samples, batch_states, ACT)
    split_obs, split_act = torch.nn.Linear(OBS, 256), torch.nn.Linear(ACT, 256, bias=False)
    concat = torch.nn.Linear(OBS + ACT, 256)
    rest = torch.nn.Sequential(torch.nn.LayerNorm(256), torch.nn.Tanh(), torch.nn.Linear(256, 256),
                               torch.nn.ReLU(), torch.nn.Linear(256, 1))

    def split():
        return rest(split_obs(obs) + split_act(act))

    def concatenated():
        x = torch.cat([obs.expand(samples, -1, -1), act], -1)
        return rest(concat(x))

    out = {}
    with torch.no_grad():
        for name, fn in (('split', split), ('concatenated', concatenated)):
            for _ in range(3):
                fn()
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
            out[name] = statistics.median(ts)
    return out


def main() -> int:
    """Run all configurations and write bench/results/learner_speed_<threads>t.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--samples', type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    configs = [(64, 4), (256, 1), (256, 4)]
    rows = []
    for b, t in configs:
        for cov in ('full', 'diagonal'):
            sec, learner, replay = time_updates(b, t, cov, args.samples, args.repeats)
            rows.append({'batch_sequences': b, 'sequence_length': t,
                         'transitions_per_update': b * t, 'covariance': cov,
                         'median_ms': round(sec * 1e3, 2), 'updates_per_s': round(1 / sec, 1)})
            print(rows[-1], flush=True)
    ratios = {f'{r["batch_sequences"]}x{r["sequence_length"]}': round(
        r['updates_per_s'] / d['updates_per_s'], 3)
        for r, d in zip(rows[::2], rows[1::2])}
    _, learner, replay = time_updates(64, 4, 'full', args.samples, 1)
    batch = replay.sample(64, 4)
    from torch.profiler import profile
    with profile() as prof:
        for _ in range(5):
            learner.step(batch)
    table = prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=12)
    print(table)
    ablation = critic_first_layer_ablation(64 * 5, args.samples, args.repeats)
    print('first-layer ablation (s):', ablation)
    result = {'threads': args.threads, 'action_samples': args.samples,
              'networks': '256-256 policy and critic', 'obs_dim': OBS, 'act_dim': ACT,
              'rows': rows, 'full_over_diagonal_updates_per_s': ratios,
              'profile_default_config_5_updates': table.splitlines(),
              'critic_scoring_ablation_median_s': ablation,
              'provenance': provenance(started, time.time())}
    path = write_result(f'learner_speed_{args.threads}t', result)
    print(f'-> {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
