"""gymnasium adapter (MuJoCo and classic control, Box observation and action spaces)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from mpo_ros.envs import EnvSpec, joint_ranges, Snapshots, Step, UnknownTaskError


class GymEnv(Snapshots):
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
        self._new_episode()
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

    # ------------------------------------------------------------------ snapshots
    def _simulator(self) -> str:
        """Return 'mujoco', 'classic' or '' (state that cannot be saved)."""
        unwrapped = self.env.unwrapped
        if hasattr(unwrapped, 'model') and hasattr(unwrapped, 'data'):
            import mujoco
            if isinstance(unwrapped.data, mujoco.MjData):
                return 'mujoco'
        if (type(unwrapped).__module__.startswith('gymnasium.envs.classic_control')
                and hasattr(unwrapped, 'state')):
            return 'classic'
        return ''

    def _wrappers(self) -> list[Any]:
        """Wrappers that count the steps of an episode (gymnasium's TimeLimit)."""
        out, env = [], self.env
        while env is not None:
            if hasattr(env, '_elapsed_steps'):
                out.append(env)
            env = getattr(env, 'env', None)
        return out

    def _save_state(self) -> dict[str, Any]:
        """
        Save the simulator state, the wrappers' step counts and the env's RNG (noisy steps).

        MuJoCo: a copy of the whole ``MjData``, derived quantities included: some tasks read
        positions computed before the last integration (Ant's ``xpos`` before a step), so
        saving qpos/qvel/time alone would not continue bit-identically.
        """
        kind = self._simulator()
        if not kind:
            return super()._save_state()
        unwrapped = self.env.unwrapped
        state: dict[str, Any] = {
            'elapsed': [w._elapsed_steps for w in self._wrappers()],
            'rng': copy.deepcopy(unwrapped.np_random.bit_generator.state)}
        if kind == 'mujoco':
            state['data'] = copy.copy(unwrapped.data)
        else:
            state['state'] = copy.deepcopy(unwrapped.state)
            state['last_u'] = copy.deepcopy(getattr(unwrapped, 'last_u', None))
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        unwrapped = self.env.unwrapped
        if 'data' in state:
            import mujoco
            mujoco.mj_copyData(unwrapped.data, unwrapped.model, state['data'])
        else:
            unwrapped.state = copy.deepcopy(state['state'])
            if hasattr(unwrapped, 'last_u'):
                unwrapped.last_u = copy.deepcopy(state['last_u'])
        for wrapper, elapsed in zip(self._wrappers(), state['elapsed'], strict=True):
            wrapper._elapsed_steps = elapsed
        unwrapped.np_random.bit_generator.state = copy.deepcopy(state['rng'])
