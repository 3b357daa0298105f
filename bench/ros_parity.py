"""
ROS pipeline against the in-process trainer at equal environment steps, several seeds each.

Reads finished runs ``<runs>/ros_s<k>`` (``mpo-ros-launch sim_train``) and
``<runs>/inproc_s<k>`` (``mpo-ros-train``) of the same task and config, and reports per side
the final deterministic return (mean and std over seeds), the evaluation curve interpolated at
common env steps, and the env steps at which each seed first reached ``--solved``.
Writes ``bench/results/ros_vs_inprocess.json`` and a PNG. The runs are made by
``runs/parity``-style commands given in the README's benchmark section.
"""

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from common import provenance, RESULTS, write_result
from mpo_ros.progress import plot_curves


def _curve(run: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = list(csv.DictReader(open(run / 'progress.csv')))
    return (np.array([float(r['env_steps']) for r in rows]),
            np.array([float(r['eval_return']) for r in rows]))


def main() -> int:
    """Aggregate and write the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--runs', default='runs/parity')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--solved', type=float, default=1000.0)
    parser.add_argument('--grid', type=float, nargs='+', default=[2000, 4000, 6000, 8000, 10000])
    args = parser.parse_args()
    started = time.time()
    runs = Path(args.runs)
    sides = {}
    curves = {}
    for side in ('ros', 'inproc'):
        finals, interp, solved, summaries = [], [], [], []
        for s in args.seeds:
            run = runs / f'{side}_s{s}'
            x, y = _curve(run)
            summary = json.loads((run / 'summary.json').read_text())
            summaries.append({k: summary.get(k) for k in ('env_steps', 'updates',
                                                          'wall_time_s', 'final_eval_return')})
            finals.append(y[-1])
            interp.append(np.interp(args.grid, x, y))
            hit = np.nonzero(y >= args.solved)[0]
            solved.append(float(x[hit[0]]) if hit.size else None)
            curves[f'{side} seed {s}'] = (x, y)
        interp = np.array(interp)
        sides[side] = {'final_return_mean': float(np.mean(finals)),
                       'final_return_std': float(np.std(finals)),
                       'final_returns': [float(f) for f in finals],
                       'return_at_grid_mean': interp.mean(0).round(1).tolist(),
                       'return_at_grid_std': interp.std(0).round(1).tolist(),
                       'first_step_solved': solved, 'runs': summaries}
    diff = abs(sides['ros']['final_return_mean'] - sides['inproc']['final_return_mean'])
    noise = float(np.hypot(sides['ros']['final_return_std'], sides['inproc']['final_return_std']))
    result = {'grid_env_steps': args.grid, 'seeds': args.seeds, 'sides': sides,
              'final_difference': diff, 'combined_seed_std': noise,
              'within_seed_noise': bool(diff <= max(noise, 1e-9) or diff == 0.0),
              'provenance': provenance(started, time.time())}
    path = write_result('ros_vs_inprocess', result)
    plot_curves(curves, RESULTS / 'ros_vs_inprocess.png', 'ROS pipeline vs in-process')
    print(json.dumps({k: v for k, v in result.items() if k != 'provenance'}, indent=1))
    print(f'-> {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
