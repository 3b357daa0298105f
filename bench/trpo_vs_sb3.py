"""
This package's TRPO side by side with sb3-contrib's TRPO: same tasks, steps, seeds, machine.

Each (task, seed) is run by both sides, ours with ``mpo-ros-train --algorithm trpo`` and the
reference with ``bench/sb3_trpo_run.py`` (sb3-contrib defaults), both with one torch thread and
the deterministic policy evaluated on a separately seeded environment (10 episodes at the end).
With ``--jobs 2`` the two sides of a pair run at the same time, so both see the same load; the
order of the pairs alternates which side starts first. Finished runs are kept under ``--runs``
and skipped when the script is started again (their results are also kept, committed, in
``bench/results/<name>_runs/``), so a long comparison resumes where it stopped.
Writes ``bench/results/<name>.json`` (per task: mean and std of the final returns over seeds,
wall times, and the ratios ours / sb3-contrib) and a PNG of the evaluation curves.

    make bench-setup
    .venv/bin/python bench/trpo_vs_sb3.py --steps 300000 --seeds 0 1 2 --jobs 2
"""

import argparse
import csv
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from common import provenance, RESULTS, write_result
from mpo_ros.progress import plot_curves

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / '.venv' / 'bin' / 'python')


def run_ours(task: str, seed: int, steps: int, out: Path) -> dict:
    """Train this package's TRPO; return the run's result (written to out/result.json)."""
    start = time.perf_counter()
    subprocess.run([PY, '-m', 'mpo_ros.trainer', '--algorithm', 'trpo', '--task', f'gym:{task}',
                    '--steps', str(steps), '--seed', str(seed), '--out', str(out),
                    '--eval_every', '25000', '--final_eval_episodes', '10'],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary = json.loads((out / 'summary.json').read_text())
    rows = list(csv.DictReader(open(out / 'progress.csv')))
    result = {'side': 'ours', 'task': task, 'seed': seed, 'steps': steps,
              'final_eval_return': summary['final_eval_return'],
              'final_eval_returns': summary['final_eval_returns'], 'wall_time_s': wall,
              'curve': [[int(float(r['env_steps'])), float(r['eval_return'])] for r in rows]}
    (out / 'result.json').write_text(json.dumps(result, indent=2))
    return result


def run_sb3(task: str, seed: int, steps: int, out: Path) -> dict:
    """Train sb3-contrib's TRPO in its own process; return its result."""
    subprocess.run([PY, str(ROOT / 'bench' / 'sb3_trpo_run.py'), '--task', task, '--steps',
                    str(steps), '--seed', str(seed), '--out', str(out)],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads((out / 'result.json').read_text())


def run(side: str, task: str, seed: int, steps: int, base: Path, kept: Path) -> dict:
    """
    Run one side unless its result is already there.

    Each finished run's result (a few kB, the curve included) is also kept under
    ``bench/results/<name>_runs/``, which is committed: a later session resumes from it even
    on a fresh work tree.
    """
    out = base / task / f'{side}_s{seed}'
    keep = kept / task / f'{side}_s{seed}.json'
    for done in (keep, out / 'result.json'):
        if done.exists():
            result = json.loads(done.read_text())
            break
    else:
        print(f'[bench] {side} {task} seed {seed} ...', flush=True)
        result = (run_ours if side == 'ours' else run_sb3)(task, seed, steps, out)
    keep.parent.mkdir(parents=True, exist_ok=True)
    keep.write_text(json.dumps(result, indent=2))
    print(f"[bench] {side} {task} seed {seed}: {result['final_eval_return']:.1f} in "
          f"{result['wall_time_s']:.0f} s", flush=True)
    return result


def main() -> int:
    """Run (or resume) every pair and write the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--name', default='trpo_vs_sb3')
    parser.add_argument('--tasks', nargs='+', default=['Hopper-v5', 'InvertedDoublePendulum-v5'])
    parser.add_argument('--steps', type=int, default=300_000)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--jobs', type=int, default=2)
    parser.add_argument('--runs', default='runs/trpo_vs_sb3')
    args = parser.parse_args()
    started = time.time()
    base = ROOT / args.runs / str(args.steps)
    kept = RESULTS / f'{args.name}_runs' / str(args.steps)
    pairs = [(task, seed) for seed in args.seeds for task in args.tasks]
    results: dict[tuple[str, str, int], dict] = {}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {}
        for k, (task, seed) in enumerate(pairs):
            sides = ('ours', 'sb3') if k % 2 == 0 else ('sb3', 'ours')
            for side in sides:
                futures[(side, task, seed)] = pool.submit(run, side, task, seed, args.steps, base,
                                                          kept)
        for key, future in futures.items():
            results[key] = future.result()
    summary = {}
    for task in args.tasks:
        row = {}
        for side in ('ours', 'sb3'):
            finals = [results[(side, task, s)]['final_eval_return'] for s in args.seeds]
            walls = [results[(side, task, s)]['wall_time_s'] for s in args.seeds]
            row[side] = {'final_return_mean': float(np.mean(finals)),
                         'final_return_std': float(np.std(finals)), 'per_seed': finals,
                         'wall_time_s_median': float(np.median(walls)), 'wall_times_s': walls}
        row['return_ratio_ours_over_sb3'] = row['ours']['final_return_mean'] / \
            row['sb3']['final_return_mean']
        row['wall_ratio_ours_over_sb3'] = row['ours']['wall_time_s_median'] / \
            row['sb3']['wall_time_s_median']
        row['meets_aim'] = bool(row['return_ratio_ours_over_sb3'] >= 1.0
                                and row['wall_ratio_ours_over_sb3'] <= 1.0)
        summary[task] = row
        curves = {f'{side} seed {s}': tuple(zip(*results[(side, task, s)]['curve']))
                  for side in ('ours', 'sb3') for s in args.seeds}
        plot_curves(curves, RESULTS / f'{args.name}_{task}.png',
                    f'TRPO on {task}: this package vs sb3-contrib')
        print(f"[bench] {task}: ours {row['ours']['final_return_mean']:.1f} +- "
              f"{row['ours']['final_return_std']:.1f}, sb3-contrib "
              f"{row['sb3']['final_return_mean']:.1f} +- {row['sb3']['final_return_std']:.1f}; "
              f"return ratio {row['return_ratio_ours_over_sb3']:.2f}, wall ratio "
              f"{row['wall_ratio_ours_over_sb3']:.2f}", flush=True)
    result = {'what': 'TRPO, this package (defaults) vs sb3-contrib (defaults), deterministic '
                      'final returns over 10 episodes on env seed + 10000, one torch thread '
                      'each, the two sides of a pair run at the same time',
              'steps': args.steps, 'seeds': args.seeds, 'tasks': summary,
              'runs': {f'{side}/{task}/{seed}': {k: v for k, v in r.items() if k != 'curve'}
                       for (side, task, seed), r in results.items()},
              'provenance': provenance(started, time.time())}
    print('[bench] written', write_result(args.name, result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
