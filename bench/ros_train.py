"""
One training run through the three ROS 2 nodes, recorded as a benchmark result.

Starts ``mpo-ros-launch sim_train`` (bridge, actor, learner; real processes on this machine's
loopback) with the given task, step budget, seed and extra ``name:=value`` arguments, waits
for the learner to finish after its final evaluation, and writes the learner's evaluation
curve, final return, counters and wall time with the run's provenance to
``bench/results/<name>.json`` and a PNG.

    .venv/bin/python bench/ros_train.py --name trpo_ros_inverted_pendulum
        --task gym:InvertedPendulum-v5 --steps 40000 --anchor 1000 -- learner.algorithm:=trpo
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import provenance, RESULTS, write_result
from mpo_ros.progress import plot_curves

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Run the pipeline once and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--name', required=True)
    parser.add_argument('--task', required=True)
    parser.add_argument('--steps', type=int, required=True)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--anchor', type=float, help='return to compare against')
    parser.add_argument('--runs', default='runs/bench_ros')
    parser.add_argument('--timeout', type=float, default=3600.0)
    parser.add_argument('launch_args', nargs='*', help='more name:=value launcher arguments')
    args = parser.parse_args()
    out = ROOT / args.runs / args.name
    if out.exists():
        print(f'{out} exists: remove it or choose another --name', file=sys.stderr)
        return 2
    cmd = [str(ROOT / '.venv' / 'bin' / 'mpo-ros-launch'), 'sim_train', f'task:={args.task}',
           f'learner.max_env_steps:={args.steps}', f'learner.out_dir:={out}',
           f'learner.seed:={args.seed}', f'actor.seed:={args.seed}',
           f'bridge.seed:={args.seed}', *args.launch_args]
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               ROS_DOMAIN_ID=os.environ.get('ROS_DOMAIN_ID', str(100 + os.getpid() % 100)))
    started = time.time()
    out.mkdir(parents=True)
    with open(out / 'launch.log', 'w') as log:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              timeout=args.timeout)
    finished = time.time()
    summary = json.loads((out / 'summary.json').read_text())
    rows = list(csv.DictReader(open(out / 'progress.csv')))
    curve = [[int(float(r['env_steps'])), float(r['eval_return'])] for r in rows]
    final = summary['final_eval_return']
    result = {'task': args.task, 'env_steps': args.steps, 'seed': args.seed,
              'launch_args': args.launch_args, 'exit_code': proc.returncode,
              'final_eval_return': final, 'final_eval_return_std':
              summary['final_eval_return_std'], 'summary': summary, 'curve': curve,
              'anchor': args.anchor,
              'meets_anchor': None if args.anchor is None else bool(final >= args.anchor),
              'first_steps_at_anchor': next((s for s, r in curve if args.anchor is not None
                                             and r >= args.anchor), None),
              'provenance': provenance(started, finished)}
    plot_curves({'eval return (ROS pipeline)': tuple(zip(*curve))},
                RESULTS / f'{args.name}.png', f'{args.task} through ROS ({args.name})',
                anchor=args.anchor)
    print(f'[bench] {args.task} through ROS: final {final:.1f} after {args.steps} steps '
          f'(exit {proc.returncode}) -> {write_result(args.name, result)}')
    return proc.returncode


if __name__ == '__main__':
    sys.exit(main())
