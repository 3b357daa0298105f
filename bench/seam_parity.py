"""
Learner-seam parity: the in-process trainer before and after the learner registry, interleaved.

Runs ``mpo-ros-train`` from a reference commit (a temporary ``git worktree``) and from this
tree on the same task, seeds and settings, alternating old and new per seed, and compares
their ``progress.csv`` evaluation returns and update counts row by row. The seam only moved
code, so the returns should match exactly (same seeds, same order of random draws).

    .venv/bin/python bench/seam_parity.py --reference d781043 --steps 3000 --seeds 0 1
"""

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import provenance, write_result

ROOT = Path(__file__).resolve().parent.parent


def run(code_root: Path, out: Path, seed: int, steps: int) -> tuple[list[dict], float]:
    """Train with the trainer found in ``code_root``; return its progress rows and wall time."""
    args = [sys.executable, '-c', 'import sys; from mpo_ros.trainer import main; '
            'sys.exit(main(sys.argv[1:]))', '--task', 'gym:Pendulum-v1', '--steps', str(steps),
            '--seed', str(seed), '--out', str(out), '--eval_every', '1000',
            '--eval_episodes', '2', '--final_eval_episodes', '3', '--updates_per_step', '0.5']
    t0 = time.perf_counter()
    subprocess.run(args, cwd=code_root, check=True, capture_output=True, text=True,
                   env={'PYTHONPATH': str(code_root), 'PATH': '/usr/bin:/bin'})
    return list(csv.DictReader(open(out / 'progress.csv'))), time.perf_counter() - t0


def main() -> int:
    """Run both versions per seed and write bench/results/seam_parity.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--reference', default='d781043')
    parser.add_argument('--steps', type=int, default=3000)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    args = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        old_root = Path(tmp) / 'reference'
        subprocess.run(['git', 'worktree', 'add', '--detach', str(old_root), args.reference],
                       cwd=ROOT, check=True, capture_output=True)
        try:
            per_seed = []
            for seed in args.seeds:
                old, t_old = run(old_root, Path(tmp) / f'old{seed}', seed, args.steps)
                new, t_new = run(ROOT, Path(tmp) / f'new{seed}', seed, args.steps)
                pairs = [(float(a['eval_return']), float(b['eval_return']),
                          int(a['updates']), int(b['updates'])) for a, b in zip(old, new)]
                per_seed.append({
                    'seed': seed, 'rows': len(pairs),
                    'eval_return_old': [p[0] for p in pairs],
                    'eval_return_new': [p[1] for p in pairs],
                    'updates_old': [p[2] for p in pairs], 'updates_new': [p[3] for p in pairs],
                    # The column names tell which code ran (the seam renamed the metrics).
                    'columns_old': list(old[0])[8:11], 'columns_new': list(new[0])[8:11],
                    'identical': all(p[0] == p[1] and p[2] == p[3] for p in pairs)
                    and len(old) == len(new),
                    'wall_s_old': round(t_old, 1), 'wall_s_new': round(t_new, 1),
                    'wall_ratio_new_over_old': round(t_new / t_old, 3)})
                print(per_seed[-1], flush=True)
        finally:
            subprocess.run(['git', 'worktree', 'remove', '--force', str(old_root)], cwd=ROOT,
                           capture_output=True)
    result = {'what': 'gym:Pendulum-v1, updates_per_step 0.5, eval every 1000 steps '
                      f'(2 episodes), {args.steps} steps; reference {args.reference} vs this '
                      'tree, interleaved per seed',
              'seeds': per_seed,
              'all_identical': all(s['identical'] for s in per_seed),
              **provenance(started, time.time())}
    print('written', write_result('seam_parity', result))
    return 0 if result['all_identical'] else 1


if __name__ == '__main__':
    sys.exit(main())
