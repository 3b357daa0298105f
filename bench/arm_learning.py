"""
Jaco reach learned through ROS: return and success rate against env steps.

    .venv/bin/python bench/arm_learning.py [--steps 60000] [--out runs/ros_arm_jaco]
    .venv/bin/python bench/arm_learning.py --steps 150000 \
        --from-log runs/ros_arm_jaco.log runs/ros_arm_jaco_part2.log@60003

Runs ``mpo-ros-launch sim_train task:=manip:reach_site_features config:=config/sim_arm.yaml``
(bridge serving the Jaco as a ros2_control robot in lockstep, actor computing observation,
reward and success from joint_states / ee_pose / target, learner) until ``--steps`` env steps
and the final evaluation, then reads the actor's evaluation lines (deterministic episodes:
mean return and the fraction ending within ``reach.radius`` of the target) from the launch
output. ``--from-log`` only aggregates the output of runs started that way; ``LOG@N`` adds N
to the step counts of a log whose learner resumed from a checkpoint at N env steps (a
restarted actor counts its own steps from 0). Writes ``bench/results/jaco_reach_ros.json``
and ``.png``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import provenance, RESULTS, write_result  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVAL = re.compile(r'\[actor\]: eval at (\d+) steps: return ([-\d.]+) ± ([\d.]+) \((\d+) '
                  r'episodes, success (\d+)%(?:, final distance ([\d.]+) m)?\)')


def parse(log_text: str) -> list[dict]:
    """Return the actor's evaluations in the launch output, in order."""
    return [{'env_steps': int(m[0]), 'return_mean': float(m[1]), 'return_std': float(m[2]),
             'episodes': int(m[3]), 'success_rate': int(m[4]) / 100.0,
             'final_distance_m': float(m[5]) if m[5] else None}
            for m in EVAL.findall(log_text)]


def plot(rows: list[dict], path: str, title: str) -> None:
    """Return and success rate against env steps, one figure."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    steps = [r['env_steps'] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.errorbar(steps, [r['return_mean'] for r in rows], [r['return_std'] for r in rows],
               marker='o', capsize=3)
    a.set_xlabel('env steps')
    a.set_ylabel('deterministic return (250 steps)')
    a.grid(alpha=0.3)
    b.plot(steps, [r['success_rate'] for r in rows], marker='o', color='tab:green')
    b.set_ylim(-0.05, 1.05)
    b.set_xlabel('env steps')
    b.set_ylabel('success rate (final distance <= radius)')
    b.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    """Run (or aggregate) and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=60000)
    parser.add_argument('--out', default='runs/ros_arm_jaco')
    parser.add_argument('--from-log', nargs='+', metavar='LOG[@OFFSET]',
                        help='aggregate these launch outputs instead of running')
    parser.add_argument('--domain', type=int, default=61)
    args = parser.parse_args()
    started = time.time()
    command = [os.path.join(os.path.dirname(sys.executable), 'mpo-ros-launch'), 'sim_train',
               'task:=manip:reach_site_features',
               f"config:={os.path.join(ROOT, 'config', 'sim_arm.yaml')}",
               f'learner.out_dir:={args.out}', f'learner.max_env_steps:={args.steps}',
               'learner.resume:=false']
    logs = args.from_log or [args.out.rstrip('/') + '.log']
    if not args.from_log:
        env = dict(os.environ, ROS_DOMAIN_ID=str(args.domain),
                   ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
        with open(logs[0], 'w') as log:
            subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                           check=False)
    rows = []
    for item in logs:
        path, _, offset = item.partition('@')
        with open(path, errors='replace') as f:
            for row in parse(f.read()):
                row['env_steps'] += int(offset or 0)
                row['log'] = path
                rows.append(row)
    if not rows:
        raise SystemExit(f'no actor evaluations in {logs}')
    log_path = ', '.join(logs)
    finished = time.time()
    last = rows[-1]
    result = {
        'benchmark': 'jaco_reach_ros', 'task': 'manip:reach_site_features',
        'pipeline': 'ROS: bridge (lockstep, auto_reset false) + actor (task_definition reach) '
                    '+ learner, config/sim_arm.yaml',
        'run_command': ' '.join(command[1:]) if args.from_log else None,
        'launch_output': log_path,
        'env_steps': args.steps, 'final': last, 'evaluations': rows,
        'reward': 'actor-side reach tolerance, radius 0.05 m, margin 0.3 m (shaped; '
                  "dm_control's own margin is 0.05 m); success = final distance <= 0.05 m",
        **provenance(started, finished),
    }
    if args.from_log:
        result['note'] = ('aggregated from the output of `mpo-ros-launch ' + result['run_command']
                          + '` started separately; wall_time_s is the aggregation only')
    path = write_result('jaco_reach_ros', result)
    plot(rows, str(RESULTS / 'jaco_reach_ros.png'),
         'Jaco reach through ROS (mpo_ros, actor-side reward)')
    print(f"[bench] Jaco reach through ROS at {last['env_steps']} steps: return "
          f"{last['return_mean']:.1f} ± {last['return_std']:.1f}, success "
          f"{last['success_rate']:.0%} -> {path}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
