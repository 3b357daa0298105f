"""
Learning-quality benchmark: train seeds of one task with mpo-ros-train and aggregate.

Runs the in-process trainer once per seed (``--jobs`` at a time), then reports the final
deterministic evaluation returns (all episodes of all seeds: mean and std, and per seed) against
the anchor given on the command line. Writes ``bench/results/<name>.json`` and a PNG of the
learning curves. Already finished seeds (a ``summary.json`` in their folder) are not rerun.

Example::

    .venv/bin/python bench/learning.py --name pendulum_50k --task gym:Pendulum-v1 \
        --steps 50000 --seeds 0 1 2 --anchor -160 -- --updates_per_step 0.5
"""

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import provenance, RESULTS, write_result
from mpo_ros.progress import plot_curves

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Run and aggregate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--name', required=True)
    parser.add_argument('--task', required=True)
    parser.add_argument('--steps', type=int, required=True)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--anchor', type=float, help='return to compare against')
    parser.add_argument('--anchor-note', default='')
    parser.add_argument('--runs', default='runs/bench', help='where the seed folders go')
    parser.add_argument('trainer_args', nargs='*', help='extra mpo-ros-train flags after --')
    args = parser.parse_args()
    started = time.time()
    base = ROOT / args.runs / args.name
    pending = [s for s in args.seeds if not (base / f'seed{s}' / 'summary.json').exists()]
    procs: list[subprocess.Popen] = []
    while pending or procs:
        while pending and len(procs) < args.jobs:
            seed = pending.pop(0)
            out = base / f'seed{seed}'
            out.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, '-m', 'mpo_ros.trainer', '--task', args.task,
                   '--steps', str(args.steps), '--seed', str(seed), '--out', str(out),
                   *args.trainer_args]
            print('[bench] ' + ' '.join(cmd), flush=True)
            procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=open(out / 'log.txt', 'w'),
                                          stderr=subprocess.STDOUT))
        time.sleep(5)
        for p in list(procs):
            if p.poll() is not None:
                procs.remove(p)
                if p.returncode:
                    print(f'[bench] a run failed with {p.returncode}: see its log.txt')
                    return 1
    finished = time.time()
    per_seed, all_returns, curves = {}, [], {}
    for seed in args.seeds:
        summary = json.loads((base / f'seed{seed}' / 'summary.json').read_text())
        rets = summary['final_eval_returns']
        all_returns += rets
        per_seed[seed] = {'mean': float(np.mean(rets)), 'std': float(np.std(rets)),
                          'wall_time_s': summary['wall_time_s'], 'updates': summary['updates']}
        with open(base / f'seed{seed}' / 'progress.csv') as f:
            curves[seed] = [(int(r['env_steps']), float(r['eval_return'])) for r in
                            csv.DictReader(f)]
    result = {
        'task': args.task, 'env_steps': args.steps, 'seeds': args.seeds,
        'trainer_args': args.trainer_args,
        'final_return_mean': float(np.mean(all_returns)),
        'final_return_std': float(np.std(all_returns)),
        'episodes': len(all_returns), 'per_seed': per_seed,
        'anchor': args.anchor, 'anchor_note': args.anchor_note,
        'meets_anchor': None if args.anchor is None else
        bool(np.mean(all_returns) >= args.anchor),
        'curves': curves,
        'provenance': provenance(started, finished),
        'note': 'wall_time_s of provenance covers only seeds run by this invocation; '
                'per-seed wall times are in per_seed',
    }
    path = write_result(args.name, result)
    plot_curves({f'seed {k}': tuple(zip(*v)) for k, v in curves.items()},
                RESULTS / f'{args.name}.png', f'MPO (mpo_ros) on {args.task}', args.anchor)
    print(f"[bench] {args.task} at {args.steps} steps: {result['final_return_mean']:.1f} ± "
          f"{result['final_return_std']:.1f} over {len(all_returns)} episodes "
          f'(anchor {args.anchor}) -> {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
