"""
Load: several bridge + actor pairs, each in its own namespace, feeding ONE learner.

    ROS_DOMAIN_ID=42 ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST \
    nice -n 5 .venv/bin/python bench/load.py [--actors 4] [--minutes 10]
        [--task gym:InvertedPendulum-v5] [--realtime_factor 1.0] [--name load_4actors]

(a domain of its own keeps other pipelines on the machine out of its discovery traffic).

Pair ``k`` runs in ``/<run>/r<k>`` (``bridge``, ``actor``); the learner runs in ``/<run>``.
Each actor is started with remaps onto the learner's topics, the way a launch file would
connect robots to a shared learner::

    -r trajectories:=/<run>/trajectories  -r evaluation:=/<run>/evaluation
    -r learner/policy_weights:=/<run>/learner/policy_weights
    -r learner/step_budget:=/<run>/learner/step_budget

so the four actors publish into the learner's one ``trajectories`` topic (each with its own
actor id = node name, hence its own sequence numbers and replay stream) and all get its
weights. Parameters come from ``config/sim_train.yaml`` (256-256 networks, one update per
received step); the bridges run in realtime mode (a robot's fixed control rate, here
``control_dt / realtime_factor``) and the actors with ``throttle:=false``: robots do not wait
for a learner, so the learner trains on whatever arrives and its update rate is measured, not
imposed. (The step budget is one number per learner and every throttled actor would spend
it on its own, so throttling is also the wrong tool with several actors.) The actors do not
evaluate (``eval_every:=0``): evaluation episodes are not sent to the learner, and four
actors evaluating at the same step counts would stall the stream.

Every ``--sample_s`` seconds it records, from a plain rclpy subscriber: the learner's
``~/stats`` and ``~/counters`` (env steps, updates, replay size, chunks stored / lost /
rejected: lost chunks are the learner's sequence-number gaps), each actor's ``~/timing``
steps/s, and the learner's resident memory (VmRSS from ``/proc/<pid>/status``). At the end all
nodes get SIGINT (the learner writes its shutdown checkpoint). Writes
``bench/results/<name>.json`` (totals, rates after ``--warmup_s``, the time series, exit codes,
provenance with load average) and ``<name>.png`` (RSS and env steps/s over time).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import provenance, RESULTS, write_result  # noqa: E402


def rss_mb(pid: int) -> float | None:
    """Resident set size of ``pid`` in MiB (None once it is gone)."""
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def commands(run: str, actors: int, task: str, realtime_factor: float, out_dir: str,
             learner_args: list[str]) -> dict[str, list[str]]:
    """Return {process name: argv}: the learner in /<run>, pairs in /<run>/r<k>."""
    from mpo_ros.ros import launcher
    values, extra = launcher.parse([f'task:={task}', f'namespace:={run}',
                                    f'learner.out_dir:={out_dir}', 'learner.resume:=false',
                                    *learner_args])
    cmds = {'learner': dict(launcher.commands(values, extra))['learner']}
    shared = ['trajectories', 'evaluation', 'learner/policy_weights', 'learner/step_budget']
    for k in range(actors):
        values, extra = launcher.parse([
            f'task:={task}', f'namespace:={run}/r{k}', 'bridge.mode:=realtime',
            f'bridge.realtime_factor:={realtime_factor}', f'bridge.seed:={k}',
            f'actor.seed:={k}', 'actor.throttle:=false', 'actor.eval_every:=0'])
        pair = dict(launcher.commands(values, extra))
        cmds[f'bridge{k}'] = pair['bridge']
        cmds[f'actor{k}'] = pair['actor'] + [
            a for name in shared for a in ('-r', f'{name}:=/{run}/{name}')]
    return cmds


def plot(series: list[dict], path, title: str) -> None:
    """RSS and env steps/s (between samples) against time."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    t = [s['t_s'] for s in series]
    rate = [0.0] + [(b['env_steps'] - a['env_steps']) / max(b['t_s'] - a['t_s'], 1e-9)
                    for a, b in zip(series, series[1:])]
    upd = [0.0] + [(b['learner_step'] - a['learner_step']) / max(b['t_s'] - a['t_s'], 1e-9)
                   for a, b in zip(series, series[1:])]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    ax1.plot(t, [s['learner_rss_mb'] for s in series], color='tab:red')
    ax1.set_ylabel('learner RSS (MiB)')
    ax1.grid(alpha=0.3)
    ax2.plot(t, rate, label='env steps/s (all actors)')
    ax2.plot(t, upd, label='learner updates/s')
    ax2.set_xlabel('time (s)')
    ax2.set_ylabel('per second')
    ax2.grid(alpha=0.3)
    ax2.legend()
    ax1.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the load benchmark; return 0 if every node ran to the end and exited cleanly."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--actors', type=int, default=4)
    parser.add_argument('--minutes', type=float, default=10.0)
    parser.add_argument('--task', default='gym:InvertedPendulum-v5')
    parser.add_argument('--realtime_factor', type=float, default=1.0)
    parser.add_argument('--sample_s', type=float, default=5.0)
    parser.add_argument('--warmup_s', type=float, default=60.0)
    parser.add_argument('--name', default='load_4actors')
    parser.add_argument('--learner', nargs='*', default=[],
                        help='extra learner.<param>:=<value> overrides')
    args = parser.parse_args(argv)

    import numpy as np
    import rclpy
    from mpo_ros_interfaces.msg import LearnerStats
    from std_msgs.msg import Float64MultiArray

    started = time.perf_counter()
    run = 'load' + uuid.uuid4().hex[:6]
    log_dir = tempfile.mkdtemp(prefix='mpo_ros_load_')
    cmds = commands(run, args.actors, args.task, args.realtime_factor,
                    os.path.join(log_dir, 'learner'), args.learner)
    procs = {}
    for name, cmd in cmds.items():
        log = open(os.path.join(log_dir, f'{name}.log'), 'w')
        procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        log.close()
    rclpy.init()
    node = rclpy.create_node('bench_load')
    latest: dict[str, object] = {}
    timing: dict[int, list[float]] = {k: [] for k in range(args.actors)}
    node.create_subscription(LearnerStats, f'/{run}/learner/stats',
                             lambda m: latest.__setitem__('stats', m), 10)
    node.create_subscription(Float64MultiArray, f'/{run}/learner/counters',
                             lambda m: latest.__setitem__('counters', m), 10)
    for k in range(args.actors):
        node.create_subscription(
            Float64MultiArray, f'/{run}/r{k}/actor/timing',
            lambda m, k=k: timing[k].append(float(m.data[3])), 10)
    series: list[dict] = []
    t0 = time.monotonic()
    end = t0 + 60.0 * args.minutes
    next_sample = t0
    died = {}
    print(f'load: {args.actors} actors on {args.task} for {args.minutes} min; logs in '
          f'{log_dir}', flush=True)
    try:
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
            for name, p in procs.items():
                if p.poll() is not None and name not in died:
                    died[name] = p.returncode
                    print(f'load: {name} exited with {p.returncode}', flush=True)
            if time.monotonic() < next_sample or 'counters' not in latest:
                continue
            next_sample = max(next_sample + args.sample_s, time.monotonic())
            m = latest['counters']
            c = dict(zip(m.layout.dim[0].label.split(','), [int(x) for x in m.data]))
            st = latest.get('stats')
            row = {'t_s': round(time.monotonic() - t0, 2),
                   'learner_rss_mb': rss_mb(procs['learner'].pid), **c,
                   'updates_per_s_window': st.updates_per_second if st else 0.0,
                   'actor_steps_per_s': [round(v[-1], 2) if v else 0.0
                                         for v in timing.values()],
                   'load_average_1min': round(os.getloadavg()[0], 2)}
            series.append(row)
            print(f"load: t {row['t_s']:6.0f}s env {c['env_steps']:>7d} upd "
                  f"{c['learner_step']:>6d} replay {c['replay_size']:>7d} lost "
                  f"{c['chunks_lost']} rss {row['learner_rss_mb']:.0f} MiB", flush=True)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        codes = {}
        for name, p in procs.items():
            try:
                codes[name] = p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                codes[name] = p.wait()
        node.destroy_node()
        rclpy.try_shutdown()
    finished = time.perf_counter()

    warm = [s for s in series if s['t_s'] >= args.warmup_s] or series
    first, last = (warm[0], warm[-1]) if warm else ({}, {})
    span = max(last.get('t_s', 0) - first.get('t_s', 0), 1e-9)
    rss = [s['learner_rss_mb'] for s in series if s['learner_rss_mb'] is not None]
    actor_rates = {f'r{k}': float(np.mean(v[len(v) // 10:])) if v else 0.0
                   for k, v in timing.items()}
    result = {
        'benchmark': 'load: bridge + actor pairs in their own namespaces, one learner',
        'task': args.task, 'actors': args.actors, 'minutes': args.minutes,
        'bridge': f'realtime, realtime_factor {args.realtime_factor}', 'actor_throttle': False,
        'actor_eval_every': 0, 'ros_domain_id': os.environ.get('ROS_DOMAIN_ID', '0'),
        'learner_config': 'config/sim_train.yaml' + (f' + {args.learner}' if args.learner
                                                     else ''),
        'warmup_s': args.warmup_s,
        'env_steps_per_s_total': round((last.get('env_steps', 0) - first.get('env_steps', 0))
                                       / span, 2),
        'env_steps_per_s_by_actor_timing': {k: round(v, 2) for k, v in actor_rates.items()},
        'learner_updates_per_s': round((last.get('learner_step', 0)
                                        - first.get('learner_step', 0)) / span, 2),
        'env_steps_total': last.get('env_steps'), 'updates_total': last.get('learner_step'),
        'replay_size_end': last.get('replay_size'),
        'chunks_stored': last.get('chunks_stored'), 'chunks_lost': last.get('chunks_lost'),
        'chunks_rejected': last.get('chunks_rejected'),
        'learner_rss_mb': {'start': rss[0] if rss else None, 'max': max(rss, default=None),
                           'end': rss[-1] if rss else None},
        'exit_codes': codes, 'died_during_run': died,
        'series': series, 'logs': log_dir,
        **provenance(started, finished),
    }
    path = write_result(args.name, result)
    if series:
        plot(series, RESULTS / f'{args.name}.png',
             f'{args.actors} actors -> 1 learner, {args.task}')
    print(f"load: {result['env_steps_per_s_total']} env steps/s, "
          f"{result['learner_updates_per_s']} updates/s, {result['chunks_lost']} chunks lost, "
          f"RSS {result['learner_rss_mb']} MiB -> {path}", flush=True)
    return 0 if not died and all(c == 0 for c in codes.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
