"""
Evaluate a saved policy: ``python -m mpo_ros.evaluate CHECKPOINT [--episodes N]``.

Loads a trainer or learner checkpoint (``torch.load(weights_only=True)``, no unpickling of
arbitrary objects), rebuilds the policy from the config stored in it, and runs deterministic
(mean-action) episodes on a freshly seeded environment. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from mpo_ros import envs
from mpo_ros.core import checkpoint
from mpo_ros.core.config import Config
from mpo_ros.core.policy import Policy


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


def evaluate_checkpoint(path: str, episodes: int, seed: int = 20_000,
                        task: str | None = None) -> dict:
    """Return the deterministic returns of the checkpoint's policy on its task."""
    state = checkpoint.load(path)
    cfg = Config.from_dict(state['config'])
    task = task or cfg.train.task
    env = envs.make(task, seed=seed)
    policy = Policy(env.spec.obs_dim, env.spec.act_dim, cfg.network)
    # Checkpoints before the learner registry kept the policy only in the MPO learner's state.
    policy.load_state(state['policy'] if 'policy' in state else state['learner']['policy'])
    returns = evaluate(env, policy, episodes)
    env.close()
    return {'checkpoint': str(path), 'task': task, 'env_steps': int(state['env_steps']),
            'learner_updates': int(state['learner']['num_steps']), 'episodes': episodes,
            'returns': returns, 'mean': float(np.mean(returns)), 'std': float(np.std(returns))}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('checkpoint')
    parser.add_argument('--episodes', type=int, default=10)
    parser.add_argument('--seed', type=int, default=20_000, help='evaluation env seed')
    parser.add_argument('--task', help='override the task stored in the checkpoint')
    args = parser.parse_args(argv)
    try:
        result = evaluate_checkpoint(args.checkpoint, args.episodes, args.seed, args.task)
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        print(f'mpo_ros.evaluate: cannot evaluate {args.checkpoint}: {exc}', file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
