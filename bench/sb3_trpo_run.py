"""
One sb3-contrib TRPO run, the reference side of bench/trpo_vs_sb3.py.

Trains ``sb3_contrib.TRPO('MlpPolicy', ...)`` with its library defaults on one gymnasium task
for a step budget, evaluating the deterministic policy every ``--eval_every`` steps and at the
end on a separately seeded environment (seed + 10000, as ``mpo-ros-train`` does), and writes
``result.json`` into ``--out``. One torch thread, like the trainer of this package.

    .venv/bin/python bench/sb3_trpo_run.py --task Hopper-v5 --steps 300000 --seed 0 --out DIR
"""

import argparse
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch


def evaluate(model, task: str, seed: int, episodes: int) -> list[float]:
    """Return deterministic episode returns on a freshly seeded environment."""
    env = gym.make(task)
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def main() -> int:
    """Train, evaluate, write result.json."""
    from sb3_contrib import TRPO
    from stable_baselines3.common.callbacks import BaseCallback
    import sb3_contrib
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--task', required=True)
    parser.add_argument('--steps', type=int, required=True)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--eval_every', type=int, default=25000)
    parser.add_argument('--eval_episodes', type=int, default=5)
    parser.add_argument('--final_eval_episodes', type=int, default=10)
    parser.add_argument('--out', required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curve: list[list[float]] = []
    eval_seed = args.seed + 10_000

    class Curve(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next = args.eval_every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next and self.num_timesteps < args.steps:
                r = evaluate(self.model, args.task, eval_seed, args.eval_episodes)
                curve.append([self.num_timesteps, float(np.mean(r))])
                self.next += args.eval_every
            return True

    start = time.perf_counter()
    model = TRPO('MlpPolicy', gym.make(args.task), seed=args.seed, device='cpu', verbose=0)
    model.learn(total_timesteps=args.steps, callback=Curve())
    returns = evaluate(model, args.task, eval_seed, args.final_eval_episodes)
    wall = time.perf_counter() - start
    curve.append([args.steps, float(np.mean(returns))])
    result = {'side': 'sb3-contrib', 'task': args.task, 'seed': args.seed,
              'steps': args.steps, 'final_eval_return': float(np.mean(returns)),
              'final_eval_returns': returns, 'wall_time_s': wall, 'curve': curve,
              'library': f'sb3-contrib {sb3_contrib.__version__}, defaults (MlpPolicy)'}
    (out / 'result.json').write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ('task', 'seed', 'final_eval_return',
                                             'wall_time_s')}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
