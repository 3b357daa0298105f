"""
In-process trainer: one environment, one data buffer, one learner, one loop.

Reads top to bottom: build the task, the learner chosen by ``--algorithm`` (through the
registry of :mod:`mpo_ros.core.learners`, never by class) and the buffer it asks for, then
alternate acting and learning at the replay ratio, evaluating the deterministic policy on a
schedule. A learner that asks for vine data (branched rollouts from saved simulator states)
gets whole batches from :class:`mpo_ros.vine.VineCollector` instead. Writes ``progress.csv``,
``checkpoint.pt``, ``learning_curve.png`` and ``summary.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from mpo_ros import envs, vine
from mpo_ros.core import checkpoint
from mpo_ros.core import learners
from mpo_ros.core.config import Config, ConfigError
from mpo_ros.core.policy import Policy
from mpo_ros.evaluate import evaluate
from mpo_ros.progress import format_row, ProgressLog


def build_parser() -> argparse.ArgumentParser:
    """Derive flags from the config dataclasses: ``--<train field>``, ``--<section>.<field>``."""
    parser = argparse.ArgumentParser(
        prog='mpo-ros-train', description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='runs/latest',
                        help="output directory (default: 'runs/latest')")
    parser.add_argument('--config', help='YAML file with sections network/mpo/replay/train')
    defaults = Config()
    for section in dataclasses.fields(Config):
        for f in dataclasses.fields(getattr(defaults, section.name)):
            flag = f'--{f.name}' if section.name == 'train' else f'--{section.name}.{f.name}'
            default = getattr(getattr(defaults, section.name), f.name)
            # default None: only flags given on the command line override the YAML.
            kwargs: dict = {'dest': f'{section.name}.{f.name}', 'default': None,
                            'help': f"{f.metadata.get('help', '')} (default: {default!r})"}
            if isinstance(default, bool):
                kwargs['type'] = _parse_bool
            elif isinstance(default, tuple):
                kwargs['type'] = int
                kwargs['nargs'] = '+'
            elif isinstance(default, (int, float)):
                kwargs['type'] = type(default)
            if f.name == 'algorithm':
                kwargs['choices'] = learners.names()
            elif 'choices' in f.metadata:
                kwargs['choices'] = f.metadata['choices']
            else:
                kwargs['metavar'] = f.name.upper()
            parser.add_argument(flag, **kwargs)
    return parser


def _parse_bool(text: str) -> bool:
    if text.lower() in ('1', 'true', 'yes', 'on'):
        return True
    if text.lower() in ('0', 'false', 'no', 'off'):
        return False
    raise argparse.ArgumentTypeError(f'not a boolean: {text!r}')


def config_from_args(args: argparse.Namespace) -> Config:
    """YAML file (if any) overridden by explicit flags."""
    data: dict[str, dict] = {}
    if args.config:
        with open(args.config) as f:
            data = yaml.safe_load(f) or {}
    for key, value in vars(args).items():
        if '.' in key and value is not None:
            section, name = key.split('.', 1)
            data.setdefault(section, {})[name] = value
    return Config.from_dict(data)


def train(cfg: Config, out: Path, log=print) -> dict:
    """Run ``cfg.train.algorithm`` on ``cfg.train.task``; returns what ``summary.json`` holds."""
    tc = cfg.train
    torch.set_num_threads(tc.torch_threads)
    out.mkdir(parents=True, exist_ok=True)
    env = envs.make(tc.task, seed=tc.seed)
    eval_env = envs.make(tc.task, seed=tc.seed + 10_000)
    spec = env.spec
    learner = learners.make(tc.algorithm, spec.obs_dim, spec.act_dim, cfg, seed=tc.seed,
                            device=tc.device)
    policy = Policy(spec.obs_dim, spec.act_dim, learner.network, seed=tc.seed)
    policy.load_state(learner.policy_state())
    branched = learner.data.kind == learners.VINE
    if branched:        # simulation only: raises SnapshotUnsupported for other environments
        collector = vine.VineCollector(env, policy, learner.data, seed=tc.seed)
    else:
        replay = learners.make_buffer(learner.data, spec.obs_dim, spec.act_dim,
                                      cfg.replay.capacity, seed=tc.seed)
        schedule = learners.make_schedule(learner.data, tc.updates_per_step,
                                          cfg.replay.min_size)
    (out / 'config.yaml').write_text(yaml.safe_dump({'task': tc.task, **cfg.to_dict()}))
    log(f'[mpo-ros-train] {tc.algorithm} on {tc.task}: obs {spec.obs_dim}, act {spec.act_dim}, '
        f'{tc.steps} steps, seed {tc.seed} -> {out}')

    progress = ProgressLog(out, learner.metric_names(), f'{tc.algorithm} on {tc.task}')
    start = time.perf_counter()
    window: list[dict[str, float]] = []
    window_start = time.perf_counter()
    episode_returns: list[float] = []
    returns: list[float] = []

    def record(env_steps: int, episodes: int) -> dict:
        nonlocal window, window_start, returns
        returns = evaluate(eval_env, policy, episodes)
        now = time.perf_counter()
        row = progress.record({
            'env_steps': env_steps, 'episodes': len(episode_returns),
            'eval_return': float(np.mean(returns)), 'eval_return_std': float(np.std(returns)),
            'train_return': float(np.mean(episode_returns[-10:])) if episode_returns
            else float('nan'),
            'wall_time': now - start, 'updates': learner.num_steps,
            'updates_per_s': len(window) / max(now - window_start, 1e-9)}, window)
        log(format_row(row, learner.log_metrics))
        window, window_start = [], time.perf_counter()
        return row

    if branched:
        # A trunk and its rollouts per update. Every simulator step, trunk or rollout, counts
        # towards --steps (the cost of the estimator); the last batch may overshoot them.
        env_steps = 0
        while env_steps < tc.steps:
            batch = collector.collect()
            learner.observe(batch.trunk_observations)
            window.append(learner.step(batch))
            policy.load_state(learner.policy_state(), learner.num_steps)
            episode_returns.extend(collector.pop_episode_returns())
            before, env_steps = env_steps, env_steps + batch.trunk_steps + batch.branch_steps
            if env_steps < tc.steps and env_steps // tc.eval_every > before // tc.eval_every:
                record(env_steps, tc.eval_episodes)
            if (env_steps < tc.steps and env_steps // tc.checkpoint_every_steps
                    > before // tc.checkpoint_every_steps):
                save_checkpoint(out / 'checkpoint.pt', cfg, learner, collector, env_steps)
        replay = collector
    else:
        env_steps = tc.steps
        follow_statistics = learner.data.kind == learners.SEQUENCES
        obs, ep_return = env.reset(), 0.0
        for t in range(1, tc.steps + 1):
            act = policy.act(obs)
            step = env.step(act.action)
            before = len(replay)
            replay.add(obs, act.raw, step.reward, step.observation, step.terminal, step.truncated,
                       act.log_prob)
            learner.observe(obs[None])
            ep_return += step.reward
            obs = step.observation
            if step.terminal or step.truncated:
                episode_returns.append(ep_return)
                obs, ep_return = env.reset(), 0.0
            schedule.stored(before, len(replay), 1)
            updated = False
            while schedule.ready():
                window.append(learner.step(replay.sample()))
                schedule.take()
                updated = True
            # Off-policy learners move their observation statistics at every step, and once
            # learning has started the acting policy follows them; an on-policy learner's
            # policy changes only in an update.
            if updated or (follow_statistics and schedule.learning(len(replay))):
                policy.load_state(learner.policy_state(), learner.num_steps)
            if t % tc.eval_every == 0 and t != tc.steps:
                record(t, tc.eval_episodes)
            if t % tc.checkpoint_every_steps == 0 and t != tc.steps:
                save_checkpoint(out / 'checkpoint.pt', cfg, learner, replay, t)
    final = record(env_steps, tc.final_eval_episodes)
    progress.close()
    save_checkpoint(out / 'checkpoint.pt', cfg, learner, replay, env_steps)
    progress.plot()
    summary = {'task': tc.task, 'algorithm': tc.algorithm, 'seed': tc.seed,
               'env_steps': env_steps,
               'final_eval_return': final['eval_return'],
               'final_eval_return_std': final['eval_return_std'],
               'final_eval_returns': returns,
               'final_eval_note': 'deterministic (mean) policy on a separately seeded env',
               'updates': learner.num_steps, 'wall_time_s': final['wall_time']}
    (out / 'summary.json').write_text(json.dumps(summary, indent=2))
    env.close()
    eval_env.close()
    log(f'[mpo-ros-train] done: final eval return {final["eval_return"]:.1f} '
        f'± {final["eval_return_std"]:.1f}; learning curve: {out / "learning_curve.png"}')
    return summary


def save_checkpoint(path: Path, cfg: Config, learner: learners.Learner, replay: object,
                    env_steps: int, **extra: object) -> None:
    """Learner, replay, counters (and ``extra`` plain values) in one atomically written file."""
    checkpoint.save_atomic({'config': cfg.to_dict(), 'env_steps': env_steps,
                            'algorithm': learner.name, 'policy': learner.policy_state(),
                            'learner': learner.state_dict(), 'replay': replay.state_dict(),
                            **extra}, path)


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``mpo-ros-train``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except (ConfigError, TypeError, yaml.YAMLError, OSError) as exc:
        parser.error(str(exc))
    try:
        train(cfg, Path(args.out))
    except (envs.UnknownTaskError, envs.SnapshotUnsupported) as exc:
        print(f'mpo-ros-train: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('mpo-ros-train: interrupted', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
