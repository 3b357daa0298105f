"""
In-process MPO trainer: one environment, one replay buffer, one learner, one loop.

Reads top to bottom: build the task, the learner and the replay, then alternate acting and
learning, evaluating the deterministic policy on a schedule. Writes ``progress.csv``,
``checkpoint.pt``, ``learning_curve.png`` and ``summary.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from mpo_ros.core import checkpoint
from mpo_ros.core.config import Config, ConfigError
from mpo_ros.core.learners.mpo import MPOLearner
from mpo_ros.core.policy import Policy
from mpo_ros.core.replay import SequenceReplay
from mpo_ros import envs

CSV_FIELDS = ('env_steps', 'episodes', 'eval_return', 'eval_return_std', 'train_return',
              'wall_time', 'updates', 'updates_per_s', 'critic_loss', 'policy_loss',
              'temperature', 'kl_q_uniform', 'kl_mean', 'kl_cov', 'alpha_mean', 'alpha_cov',
              'q_mean')


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
            if 'choices' in f.metadata:
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


def evaluate(env: envs.Env, policy: Policy, episodes: int) -> list[float]:
    """Return the episode returns of the deterministic (mean) policy."""
    returns = []
    for _ in range(episodes):
        obs, total, done = env.reset(), 0.0, False
        while not done:
            step = env.step(policy.act(obs, deterministic=True).action)
            total += step.reward
            obs, done = step.observation, step.terminal or step.truncated
        returns.append(total)
    return returns


def train(cfg: Config, out: Path, log=print) -> dict:
    """Run MPO on ``cfg.train.task``; returns the summary written to ``summary.json``."""
    tc = cfg.train
    torch.set_num_threads(tc.torch_threads)
    out.mkdir(parents=True, exist_ok=True)
    env = envs.make(tc.task, seed=tc.seed)
    eval_env = envs.make(tc.task, seed=tc.seed + 10_000)
    spec = env.spec
    learner = MPOLearner(spec.obs_dim, spec.act_dim, cfg.mpo, cfg.network, seed=tc.seed,
                         device=tc.device)
    replay = SequenceReplay(spec.obs_dim, spec.act_dim, cfg.replay.capacity, seed=tc.seed)
    policy = Policy(spec.obs_dim, spec.act_dim, cfg.network, seed=tc.seed)
    policy.load_state(learner.policy.state_dict())
    (out / 'config.yaml').write_text(yaml.safe_dump({'task': tc.task, **cfg.to_dict()}))
    log(f'[mpo-ros-train] task {tc.task}: obs {spec.obs_dim}, act {spec.act_dim}, '
        f'{tc.steps} steps, seed {tc.seed} -> {out}')

    csv_file = open(out / 'progress.csv', 'w', newline='')
    writer = csv.DictWriter(csv_file, fieldnames=CSV_FIELDS)
    writer.writeheader()
    start = time.perf_counter()
    window: list[dict[str, float]] = []
    window_start, updates_due = time.perf_counter(), 0.0
    episode_returns: list[float] = []
    obs, ep_return, rows = env.reset(), 0.0, []
    returns: list[float] = []

    def record(env_steps: int, episodes: int) -> dict:
        nonlocal window, window_start, returns
        returns = evaluate(eval_env, policy, episodes)
        now = time.perf_counter()
        row = {'env_steps': env_steps, 'episodes': len(episode_returns),
               'eval_return': float(np.mean(returns)), 'eval_return_std': float(np.std(returns)),
               'train_return': float(np.mean(episode_returns[-10:])) if episode_returns
               else float('nan'),
               'wall_time': now - start, 'updates': learner.num_steps,
               'updates_per_s': len(window) / max(now - window_start, 1e-9)}
        row.update(window_means(window))
        writer.writerow(row)
        csv_file.flush()
        rows.append(row)
        log(f"steps {env_steps:>8d} | episodes {row['episodes']:>5d} | "
            f"eval {row['eval_return']:9.1f} ± {row['eval_return_std']:6.1f} | "
            f"train {row['train_return']:9.1f} | "
            f"upd/s {row['updates_per_s']:6.1f} | T {row['temperature']:.3g} | "
            f"KLμ {row['kl_mean']:.2e} KLΣ {row['kl_cov']:.2e} | {row['wall_time']:6.0f}s")
        window, window_start = [], time.perf_counter()
        return row

    for t in range(1, tc.steps + 1):
        act = policy.act(obs)
        step = env.step(act.action)
        replay.add(obs, act.raw, step.reward, step.observation, step.terminal, step.truncated,
                   act.log_prob)
        learner.observe(obs[None])
        ep_return += step.reward
        obs = step.observation
        if step.terminal or step.truncated:
            episode_returns.append(ep_return)
            obs, ep_return = env.reset(), 0.0
        if len(replay) >= cfg.replay.min_size:
            updates_due += tc.updates_per_step
            while updates_due >= 1.0:
                window.append(learner.step(replay.sample(cfg.replay.batch_size,
                                                         cfg.mpo.sequence_length)))
                updates_due -= 1.0
            policy.load_state(learner.policy.state_dict(), learner.num_steps)
        if t % tc.eval_every == 0 and t != tc.steps:
            record(t, tc.eval_episodes)
        if t % tc.checkpoint_every == 0 and t != tc.steps:
            save_checkpoint(out / 'checkpoint.pt', cfg, learner, replay, t)
    final = record(tc.steps, tc.final_eval_episodes)
    csv_file.close()
    save_checkpoint(out / 'checkpoint.pt', cfg, learner, replay, tc.steps)
    plot_learning_curve(rows, out / 'learning_curve.png', tc.task)
    summary = {'task': tc.task, 'seed': tc.seed, 'env_steps': tc.steps,
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


def window_means(window: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each learner metric of the CSV (NaN without updates) over a reporting window."""
    return {key: float(np.mean([m[key] for m in window])) if window else float('nan')
            for key in CSV_FIELDS[8:]}


def save_checkpoint(path: Path, cfg: Config, learner: MPOLearner, replay: SequenceReplay,
                    env_steps: int, **extra: object) -> None:
    """Learner, replay, counters (and ``extra`` plain values) in one atomically written file."""
    checkpoint.save_atomic({'config': cfg.to_dict(), 'env_steps': env_steps,
                            'learner': learner.state_dict(), 'replay': replay.state_dict(),
                            **extra}, path)


def plot_learning_curve(rows: list[dict], path: Path, title: str) -> None:
    """Plot evaluation return against environment steps, with the std band."""
    plot_curves({'eval return (deterministic)': (
        [r['env_steps'] for r in rows], [r['eval_return'] for r in rows],
        [r['eval_return_std'] for r in rows])}, path, f'MPO on {title}')


def plot_curves(curves: dict[str, tuple], path: Path, title: str,
                anchor: float | None = None) -> None:
    """Plot labelled ``(steps, returns[, stds])`` curves and an optional anchor line to PNG."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (x, y, *std) in curves.items():
        x, y = np.asarray(x), np.asarray(y)
        ax.plot(x, y, marker='o', ms=3, label=label)
        if std:
            s = np.asarray(std[0])
            ax.fill_between(x, y - s, y + s, alpha=0.25)
    if anchor is not None:
        ax.axhline(anchor, color='k', ls='--', lw=1, label=f'anchor {anchor:g}')
    ax.set_xlabel('environment steps')
    ax.set_ylabel('return')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
    except envs.UnknownTaskError as exc:
        print(f'mpo-ros-train: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('mpo-ros-train: interrupted', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
