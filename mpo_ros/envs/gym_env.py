"""gymnasium adapter (MuJoCo and classic control, Box observation and action spaces)."""

from __future__ import annotations

import numpy as np

from mpo_ros.envs import EnvSpec, joint_ranges, Step, UnknownTaskError


class GymEnv:
    """A gymnasium environment behind the adapter API."""

    def __init__(self, task: str, env_id: str, seed: int) -> None:
        import gymnasium as gym
        try:
            self.env = gym.make(env_id)
        except gym.error.Error as exc:
            raise UnknownTaskError(f'{task}: {exc}') from exc
        if not isinstance(self.env.action_space, gym.spaces.Box):
            raise UnknownTaskError(f'{task}: only continuous (Box) action spaces are supported')
        obs_space, act_space = self.env.observation_space, self.env.action_space
        self._seed = seed
        self._first = True
        self.env.action_space.seed(seed)
        unwrapped = self.env.unwrapped
        model = getattr(unwrapped, 'model', None)
        joints: tuple[str, ...] = ()
        ranges: tuple[tuple[float, float], ...] = ()
        if model is not None and hasattr(model, 'actuator_trnid'):
            import mujoco
            joints = tuple(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, int(j)) or ''
                           for j in model.actuator_trnid[:, 0])
            ranges = joint_ranges(model, model.actuator_trnid[:, 0])
        dt = float(getattr(unwrapped, 'dt', 0.05))
        self.spec = EnvSpec(task=task, obs_dim=int(np.prod(obs_space.shape)),
                            act_dim=int(np.prod(act_space.shape)),
                            action_low=tuple(float(x) for x in act_space.low.ravel()),
                            action_high=tuple(float(x) for x in act_space.high.ravel()),
                            joint_names=joints, control_dt=dt,
                            max_episode_steps=self.env.spec.max_episode_steps
                            if self.env.spec else None, joint_ranges=ranges)

    def reset(self) -> np.ndarray:
        """Start an episode (seeded on the first reset only, so episodes differ)."""
        obs, _ = self.env.reset(seed=self._seed if self._first else None)
        self._first = False
        return np.asarray(obs, dtype=np.float32).ravel()

    def step(self, action: np.ndarray) -> Step:
        """Apply a normalised action."""
        scaled = self.spec.scale_action(action).astype(self.env.action_space.dtype)
        obs, reward, terminated, truncated, _ = self.env.step(
            scaled.reshape(self.env.action_space.shape))
        return Step(np.asarray(obs, dtype=np.float32).ravel(), float(reward),
                    bool(terminated), bool(truncated) and not terminated)

    def disable_time_limit(self) -> None:
        """Never truncate: lift gymnasium's TimeLimit wrapper's step limit."""
        env = self.env
        while env is not None:
            if hasattr(env, '_max_episode_steps'):
                env._max_episode_steps = float('inf')
            env = getattr(env, 'env', None)

    def close(self) -> None:
        """Release resources."""
        self.env.close()
