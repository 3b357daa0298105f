"""
ROS pipeline speed: lockstep env steps/s through bridge + actor against raw in-process stepping.

    .venv/bin/python bench/ros_pipeline.py [--task gym:Pendulum-v1] [--seconds 30]

Measures, on one task:

- ``raw_env``: in-process ``env.step`` with random actions (no policy, no ROS);
- ``in_process_policy``: in-process ``env.step`` + ``Policy.act`` (the actor's work, no ROS);
- ``bridge_actor``: the ``bridge`` (lockstep) and ``actor`` nodes as processes, no learner
  (actor with its own initial policy, no throttle): env steps/s and the actor's
  step-receipt-to-command-publish latency;
- ``bridge_actor_learner``: the same with the ``learner`` training concurrently (no throttle),
  i.e. with a busy core next door.

Steps/s and latency come from the actor's ``~/timing`` messages
(``[p50_ms, p99_ms, samples, steps_per_s]`` per ``timing_period_s`` window), read by a plain
rclpy subscriber here; windows of the first ``--warmup`` seconds are dropped. p50 / p99 are
medians over the windows; ``p99_worst_ms`` is the worst window. Writes
``bench/results/ros_pipeline.json``.
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

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import provenance, write_result  # noqa: E402


def raw_rate(task: str, seconds: float, with_policy: bool) -> float:
    """Return in-process env steps/s (optionally with Policy.act per step)."""
    import torch
    from mpo_ros import envs
    from mpo_ros.core.policy import Policy
    torch.set_num_threads(1)
    env = envs.make(task, seed=0)
    policy = Policy(env.spec.obs_dim, env.spec.act_dim) if with_policy else None
    rng = np.random.default_rng(0)
    obs, steps, start = env.reset(), 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        action = policy.act(obs).action if policy else rng.uniform(-1, 1, env.spec.act_dim)
        step = env.step(action)
        obs = env.reset() if step.terminal or step.truncated else step.observation
        steps += 1
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def pipeline_rate(task: str, seconds: float, warmup: float, learner: bool, log_dir: str
                  ) -> dict:
    """Run bridge + actor (+ learner) as processes; summarise the actor's timing windows."""
    import rclpy
    from mpo_ros.ros import launcher
    from std_msgs.msg import Float64MultiArray
    namespace = 'bench' + uuid.uuid4().hex[:6]
    values, extra = launcher.parse([
        f'task:={task}', f'namespace:={namespace}', 'actor.wait_for_weights:=false',
        'actor.throttle:=false', 'actor.eval_every:=0', 'actor.timing_period_s:=2.0',
        'learner.max_update_lag:=0.0', f'learner.out_dir:={log_dir}/learner'])
    procs = []
    for name, cmd in launcher.commands(values, extra):
        if name == 'learner' and not learner:
            continue
        log = open(os.path.join(log_dir, f'{name}.log'), 'w')
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
    rclpy.init()
    node = rclpy.create_node('bench_ros_pipeline')
    windows: list[tuple[float, list[float]]] = []
    node.create_subscription(Float64MultiArray, f'/{namespace}/actor/timing',
                             lambda m: windows.append((time.monotonic(), list(m.data))), 10)
    try:
        first = None
        deadline = time.monotonic() + seconds + warmup + 120
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.2)
            active = [w for w in windows if w[1][2] > 0]
            if first is None and active:
                first = active[0][0]
            if first is not None and time.monotonic() - first > warmup + seconds:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f'a node died; logs in {log_dir}')
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    if first is None:
        raise RuntimeError(f'no timing from the actor; logs in {log_dir}')
    kept = np.array([w[1] for w in windows if w[0] - first > warmup and w[1][2] > 0])
    return {'steps_per_s': round(float(np.median(kept[:, 3])), 1),
            'latency_p50_ms': round(float(np.median(kept[:, 0])), 3),
            'latency_p99_ms': round(float(np.median(kept[:, 1])), 3),
            'latency_p99_worst_ms': round(float(kept[:, 1].max()), 3),
            'windows': int(len(kept)), 'samples': int(kept[:, 2].sum())}


def main() -> None:
    """Run the measurements and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--task', default='gym:Pendulum-v1')
    parser.add_argument('--seconds', type=float, default=30.0, help='measured seconds per run')
    parser.add_argument('--warmup', type=float, default=4.0)
    args = parser.parse_args()
    started = time.time()
    log_dir = tempfile.mkdtemp(prefix='bench_ros_pipeline_')
    results = {
        'raw_env_steps_per_s': round(raw_rate(args.task, min(args.seconds, 10), False), 1),
        'in_process_policy_steps_per_s': round(raw_rate(args.task, min(args.seconds, 10),
                                                        True), 1),
    }
    print(results, flush=True)
    results['bridge_actor'] = pipeline_rate(args.task, args.seconds, args.warmup, False,
                                            log_dir)
    print(results['bridge_actor'], flush=True)
    results['bridge_actor_learner'] = pipeline_rate(args.task, args.seconds, args.warmup,
                                                    True, log_dir)
    print(results['bridge_actor_learner'], flush=True)
    results['pipeline_vs_in_process_policy'] = round(
        results['bridge_actor']['steps_per_s'] / results['in_process_policy_steps_per_s'], 3)
    path = write_result('ros_pipeline', {
        **provenance(started, time.time()), 'task': args.task, 'seconds': args.seconds,
        'results': results,
        'notes': 'lockstep bridge; actor latency = task/step receipt to command publish, '
                 'measured in the actor (perf_counter); p50/p99 are medians over 2-s windows'})
    print(f'wrote {path}')


if __name__ == '__main__':
    main()
