"""dm_control adapters: the control suite and the manipulation (Kinova Jaco) tasks."""

from __future__ import annotations

import copy
import os
from typing import Any, Callable

import numpy as np

from mpo_ros.envs import EnvSpec, joint_ranges, SNAPSHOT_SUPPORT, Snapshots, Step
from mpo_ros.envs import SnapshotUnsupported, UnknownTaskError

# dm_control picks a rendering backend at import; GLFW needs a display and warns without one.
# No adapter renders, and EGL imports cleanly on headless machines.
os.environ.setdefault('MUJOCO_GL', 'egl')


def _flatten(observation) -> np.ndarray:
    """Concatenate a dm_env observation dict in its own key order."""
    return np.concatenate([np.asarray(v, dtype=np.float32).ravel()
                           for v in observation.values()])


class _DMEnv(Snapshots):
    """Shared dm_env.Environment wrapper; subclasses build ``self.env``."""

    def _init_spec(self, task: str) -> None:
        act = self.env.action_spec()
        obs = _flatten(self.env.reset().observation)
        physics = self.env.physics
        model = physics.model
        joints = []
        for j in model.actuator_trnid[:, 0]:
            joints.append(model.id2name(int(j), 'joint') or '')
        dt = float(self.env.control_timestep())
        # Suite environments keep a step limit, composer ones a time limit (private fields).
        limit = getattr(self.env, '_step_limit', None)
        if limit is None and getattr(self.env, '_time_limit', None) is not None:
            limit = self.env._time_limit / dt
        steps = int(round(limit)) if limit is not None and np.isfinite(limit) else None
        self.spec = EnvSpec(task=task, obs_dim=obs.size, act_dim=int(np.prod(act.shape)),
                            action_low=tuple(float(x) for x in np.broadcast_to(
                                act.minimum, act.shape)),
                            action_high=tuple(float(x) for x in np.broadcast_to(
                                act.maximum, act.shape)),
                            joint_names=tuple(joints), control_dt=dt,
                            max_episode_steps=steps,
                            joint_ranges=joint_ranges(model, model.actuator_trnid[:, 0]))

    def reset(self) -> np.ndarray:
        """Start an episode."""
        observation = _flatten(self.env.reset().observation)
        self._new_episode()
        return observation

    def step(self, action: np.ndarray) -> Step:
        """Apply a normalised action; LAST with discount 0 is terminal, else truncation."""
        ts = self.env.step(self.spec.scale_action(action))
        last = ts.last()
        terminal = bool(last and ts.discount == 0.0)
        return Step(_flatten(ts.observation), float(ts.reward or 0.0), terminal,
                    bool(last and not terminal))

    def disable_time_limit(self) -> None:
        """Never truncate (composer keeps a time limit, the suite a step limit)."""
        if getattr(self.env, '_time_limit', None) is not None:
            self.env._time_limit = float('inf')
        if getattr(self.env, '_step_limit', None) is not None:
            self.env._step_limit = float('inf')

    def close(self) -> None:
        """Release resources."""
        self.env.close()


class DMCSuiteEnv(_DMEnv):
    """``dmc:<domain>-<task>``, e.g. ``dmc:cartpole-swingup``."""

    def _save_state(self) -> dict[str, Any]:
        """
        Save a copy of the whole ``MjData``, the step count and the task's RNG.

        Suite tasks keep their episode state in the physics (data, and model fields set at
        episode start, hence snapshots valid until the next reset); the RNG makes a noisy
        task's noise the same after a restore.
        """
        env = self.env
        return {'data': copy.copy(env.physics.data.ptr), 'step_count': env._step_count,
                'reset_next_step': env._reset_next_step,
                'random': env.task.random.get_state()}

    def _load_state(self, state: dict[str, Any]) -> None:
        import mujoco
        env = self.env
        mujoco.mj_copyData(env.physics.data.ptr, env.physics.model.ptr, state['data'])
        env._step_count = state['step_count']
        env._reset_next_step = state['reset_next_step']
        env.task.random.set_state(state['random'])

    def __init__(self, task: str, name: str, seed: int) -> None:
        from dm_control import suite
        domain, sep, task_name = name.partition('-')
        if not sep or (domain, task_name) not in suite.ALL_TASKS:
            raise UnknownTaskError(f'{task}: not a dm_control suite task '
                                   f'(e.g. dmc:cartpole-swingup)')
        self.env = suite.load(domain, task_name, task_kwargs={'random': seed})
        self._init_spec(task)


class ManipulationEnv(_DMEnv):
    """``manip:<name>``, e.g. ``manip:reach_site_features`` (Kinova Jaco arm)."""

    def __init__(self, task: str, name: str, seed: int) -> None:
        from dm_control import manipulation
        if name not in manipulation.ALL:
            raise UnknownTaskError(f'{task}: not a dm_control manipulation task')
        self.env = manipulation.load(name, seed=seed)
        self._init_spec(task)

    def _save_state(self) -> Any:
        """Refuse: composer tasks keep state outside the physics (observables, hooks)."""
        raise SnapshotUnsupported(
            f'{self.spec.task}: dm_control composer (manip:) tasks keep state outside the '
            f'physics (observation buffers, entity hooks) that is not saved; supported: '
            f'{SNAPSHOT_SUPPORT}')


def arm_sites(env) -> Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    """
    For a dm_control manipulation reach task, return a reader of the arm's task geometry.

    The reader gives (tool centre point position, its orientation as a (w, x, y, z)
    quaternion, target position), all in the world frame: what forward kinematics and a target
    publisher give on a real arm. None for tasks without a hand and a target site.
    """
    import mujoco
    inner = getattr(env, 'env', None)
    task = getattr(inner, 'task', None)
    hand = getattr(task, 'hand', None)
    tcp = getattr(hand, 'tool_center_point', None)
    physics = getattr(inner, 'physics', None)
    if tcp is None or physics is None:
        return None
    model = physics.model
    names = [model.id2name(i, 'site') for i in range(model.nsite)]
    targets = [i for i, n in enumerate(names) if n.split('/')[-1] == 'target_site']
    if not targets:
        return None
    tcp_id, target_id = names.index(tcp.full_identifier), targets[0]

    def read() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        data = inner.physics.data           # composer may build a new Physics at reset
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, np.asarray(data.site_xmat[tcp_id], dtype=np.float64))
        return (np.array(data.site_xpos[tcp_id]), quat, np.array(data.site_xpos[target_id]))
    return read
