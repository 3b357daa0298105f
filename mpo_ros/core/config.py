"""
Validated configuration dataclasses: the single source of defaults.

ROS parameters and trainer flags are derived from these fields; each field's ``metadata``
carries a ``help`` string and, for numbers, an inclusive ``range`` used for validation here and
for ROS parameter descriptors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def opt(default: Any, help: str, range: tuple[float, float] | None = None,
        choices: tuple[str, ...] | None = None) -> Any:
    """
    Declare a config field with its help text and, optionally, its valid range or choices.

    The metadata is read by :func:`validate_fields`, the trainer's flags and the ROS parameter
    descriptors, so a default, its documentation and its bounds are written once.
    """
    meta: dict[str, Any] = {'help': help}
    if range is not None:
        meta['range'] = range
    if choices is not None:
        meta['choices'] = choices
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


class ConfigError(ValueError):
    """A configuration value is out of range or inconsistent; the message names the field."""


def check_algorithm(name: str, field_name: str) -> None:
    """Raise ConfigError unless ``name`` is a registered learner."""
    from mpo_ros.core import learners     # the registry imports this module: import late
    if name not in learners.names():
        raise ConfigError(f'{field_name}={name!r} is not one of {learners.names()}')


def validate_fields(cfg: Any) -> None:
    """Check types, ranges and choices declared in field metadata."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        name = f'{type(cfg).__name__}.{f.name}'
        if isinstance(f.default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f'{name} must be a bool, got {value!r}')
            continue
        if isinstance(f.default, int) and not isinstance(f.default, bool):
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                    object.__setattr__(cfg, f.name, value)
                else:
                    raise ConfigError(f'{name} must be an integer, got {value!r}')
        if isinstance(f.default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f'{name} must be a number, got {value!r}')
            value = float(value)
            object.__setattr__(cfg, f.name, value)
            if value != value:
                raise ConfigError(f'{name} must not be NaN')
        rng = f.metadata.get('range')
        if rng is not None:
            values = value if isinstance(value, tuple) else (value,)
            for v in values:
                if not (rng[0] <= v <= rng[1]):
                    raise ConfigError(f'{name}={value!r} is outside [{rng[0]}, {rng[1]}]')
        choices = f.metadata.get('choices')
        if choices is not None and value not in choices:
            raise ConfigError(f'{name}={value!r} is not one of {choices}')


@dataclass
class NetworkConfig:
    """Policy and critic architectures."""

    policy_hidden: tuple[int, ...] = opt((256, 256), 'policy MLP hidden sizes', (1, 4096))
    critic_hidden: tuple[int, ...] = opt((256, 256), 'critic MLP hidden sizes', (1, 4096))
    covariance: str = opt('full', 'policy covariance: full (Cholesky) or diagonal',
                          choices=('full', 'diagonal'))
    init_std: float = opt(0.5, 'initial policy standard deviation (normalised actions)',
                          (1e-3, 10.0))
    min_std: float = opt(1e-4, 'floor on the Cholesky diagonal', (0.0, 1.0))
    normalize_observations: bool = opt(True, 'running mean/std observation normalisation')

    def __post_init__(self) -> None:
        """Validate."""
        self.policy_hidden = tuple(self.policy_hidden)
        self.critic_hidden = tuple(self.critic_hidden)
        validate_fields(self)
        if not self.policy_hidden or not self.critic_hidden:
            raise ConfigError('NetworkConfig: hidden sizes must not be empty')
        if self.min_std >= self.init_std:
            raise ConfigError('NetworkConfig.min_std must be below init_std')


@dataclass
class MPOConfig:
    """MPO hyperparameters; defaults follow the paper (Appendix C) unless the note says why."""

    num_action_samples: int = opt(20, 'actions sampled per state in the E-step (N)', (2, 1024))
    epsilon: float = opt(0.1, 'E-step KL bound between q and the target policy', (1e-6, 10.0))
    epsilon_mean: float = opt(0.1, 'M-step KL bound on the mean (paper control suite: 0.1)',
                              (1e-8, 10.0))
    epsilon_cov: float = opt(1e-4, 'M-step KL bound on the covariance', (1e-10, 10.0))
    per_dim_kl: bool = opt(False, 'one KL constraint per action dimension (diagonal only)')
    init_temperature: float = opt(1.0, 'initial E-step temperature', (1e-6, 1e6))
    init_alpha_mean: float = opt(1.0, 'initial mean-KL Lagrange multiplier', (1e-6, 1e6))
    init_alpha_cov: float = opt(10.0, 'initial covariance-KL Lagrange multiplier', (1e-6, 1e6))
    max_multiplier: float = opt(
         1e6, 'upper bound on the M-step Lagrange multipliers: a KL bound that the optimiser '
         'cannot meet must not grow a multiplier without limit and drown the likelihood',
         (1.0, 1e12))
    dual_lr: float = opt(1e-2, 'Adam learning rate of the log-parametrised duals', (1e-6, 1.0))
    policy_lr: float = opt(5e-4, 'Adam learning rate of the policy', (1e-7, 1.0))
    critic_lr: float = opt(5e-4, 'Adam learning rate of the critic', (1e-7, 1.0))
    discount: float = opt(0.99, 'discount factor gamma', (0.0, 1.0))
    retrace_lambda: float = opt(1.0, 'Retrace trace-cutting lambda (1: Eq. 13 of the paper)',
                                (0.0, 1.0))
    sequence_length: int = opt(4, 'Retrace sequence length T (N-step truncation)', (1, 1000))
    target_update_period: int = opt(100, 'learner steps between target network copies',
                                    (1, 10 ** 9))
    grad_clip: float = opt(40.0, 'global gradient-norm clip for policy and critic (0: off)',
                           (0.0, 1e9))

    def __post_init__(self) -> None:
        """Validate."""
        validate_fields(self)
        for name in ('init_alpha_mean', 'init_alpha_cov'):
            if getattr(self, name) > self.max_multiplier:
                raise ConfigError(f'MPOConfig.{name}={getattr(self, name)!r} is above '
                                  f'max_multiplier={self.max_multiplier!r}')


@dataclass
class TRPOConfig:
    """
    TRPO hyperparameters (Schulman et al. 2015, single path with a GAE baseline).

    From the paper (Sec. 6, Appendix C, E): ``max_kl`` 0.01, ``cg_iterations`` 10,
    ``discount`` 0.99. From sb3-contrib TRPO: ``batch_size`` 2048 (its n_steps),
    ``cg_damping`` 0.1, the line search x0.8 up to 10 steps, ``gae_lambda`` 0.95 (the paper's
    Monte Carlo estimator is lambda = 1), advantage normalisation and the value baseline's
    Adam 1e-3, 10 epochs of 128-step minibatches. The KL bound on the *measured* KL with no
    slack (baselines accepts 1.5 x) is this package's choice. ``estimator='vine'`` (Sec. 5.2,
    simulation only): K = 4 actions per state as in the paper (Appendix E), rollouts of 50
    steps and 125 states (its Swimmer settings).
    """

    batch_size: int = opt(2048, 'environment steps of the current policy per update '
                          '(sb3-contrib n_steps)', (1, 10 ** 8))
    max_kl: float = opt(0.01, 'trust region: bound on the mean KL(pi_old || pi) (paper delta)',
                        (1e-8, 10.0))
    cg_iterations: int = opt(10, 'conjugate-gradient iterations for the natural gradient '
                             '(paper: 10)', (1, 1000))
    cg_damping: float = opt(0.1, 'damping lambda added to the Fisher matrix: solves '
                            '(F + lambda I) s = g', (0.0, 1e6))
    line_search_shrink: float = opt(0.8, 'backtracking factor of the step length',
                                    (1e-3, 0.999))
    line_search_steps: int = opt(10, 'step lengths tried before the update is rejected',
                                 (1, 1000))
    discount: float = opt(0.99, 'discount factor gamma', (0.0, 1.0))
    gae_lambda: float = opt(0.95, 'GAE lambda (1: the Monte Carlo return of the paper)',
                            (0.0, 1.0))
    normalize_advantages: bool = opt(True, 'standardise advantages within the batch')
    value_lr: float = opt(1e-3, 'Adam learning rate of the value baseline', (1e-7, 1.0))
    value_epochs: int = opt(10, 'passes over the batch per update for the value baseline',
                            (0, 1000))
    value_minibatch_size: int = opt(128, 'steps per value-baseline minibatch', (1, 10 ** 8))
    estimator: str = opt('single_path', 'single_path: advantages along the batch (any runner); '
                         'vine: Q estimates from branched rollouts at saved simulator states '
                         '(paper Sec. 5.2; in-process trainer on a simulator only), batch_size '
                         'is then the trunk length', choices=('single_path', 'vine'))
    vine_states: int = opt(125, 'vine: rollout-set states per update, drawn from the trunk '
                           '(paper: 500 Q values / 4 actions on Swimmer)', (1, 10 ** 6))
    vine_actions: int = opt(4, 'vine: actions (each with its rollout) per state (paper: 4)',
                            (2, 1000))
    vine_rollout_length: int = opt(50, 'vine: steps of each rollout, Q = its discounted '
                                   'return (paper: 50 on Swimmer, 100 on Hopper)', (1, 10 ** 5))

    def __post_init__(self) -> None:
        """Validate."""
        validate_fields(self)
        if self.estimator == 'vine' and self.vine_states > self.batch_size:
            raise ConfigError(f'TRPOConfig.vine_states={self.vine_states} is above batch_size='
                              f'{self.batch_size}: the rollout set is drawn from the trunk')


@dataclass
class ReplayConfig:
    """Sequence replay buffer settings."""

    capacity: int = opt(1_000_000, 'transitions kept', (1, 10 ** 9))
    batch_size: int = opt(64, 'sequences per learner step (B); B*T transitions', (1, 65536))
    min_size: int = opt(1000, 'transitions stored before learning starts', (1, 10 ** 9))

    def __post_init__(self) -> None:
        """Validate."""
        validate_fields(self)


@dataclass
class InputLimits:
    """
    Plausible magnitudes of what arrives over the network, checked at the edge (conversions).

    NaN / inf are always refused; these bounds refuse finite values that no real robot,
    simulator or learner produces but that would overflow float32 on the way in (1e39 becomes
    inf) or blow up the learner's statistics and losses (an observation or reward of 1e30).
    Each bound applies to the absolute value of every entry. Set them wider for tasks with
    larger units; they can be changed at run time.
    """

    observation: float = opt(1e6, 'bound on |observation entry| (task/step, trajectories, '
                             'GetAction)', (1.0, 1e30))
    reward: float = opt(1e6, 'bound on |reward| (task/step, trajectories)', (1e-6, 1e30))
    action: float = opt(1e6, 'bound on |action entry| in trajectories (normalised, pre-clip)',
                        (1.0, 1e30))
    eval_return: float = opt(1e12, "bound on |mean| and std of an 'evaluation' message",
                             (1.0, 1e30))
    position: float = opt(1e3, 'bound on |x|, |y|, |z| of target and end-effector poses (m)',
                          (1e-3, 1e12))
    joint_position: float = opt(1e5, 'bound on |joint position| in joint_states (rad or m)',
                                (1e-3, 1e12))
    joint_velocity: float = opt(1e5, 'bound on |joint velocity| in joint_states',
                                (1e-3, 1e12))
    weight: float = opt(1e6, 'bound on |policy parameter| in PolicyWeights (normaliser '
                        'statistics: mean within the observation bound, variance >= 0)',
                        (1.0, 3e38))

    def __post_init__(self) -> None:
        """Validate."""
        validate_fields(self)


@dataclass
class StreamConfig:
    """
    What one sender may put into the learner's replay (per-actor quotas).

    An actor id is tracked from its first accepted chunk; at most ``max_actors`` ids are
    tracked (one idle for ``actor_idle_s`` makes room), so a flood of made-up ids is refused
    instead of filling the replay. Each id may send ``actor_steps_per_s`` steps per second on
    average, in bursts of up to ``actor_burst_s`` seconds' worth (a token bucket). A sequence
    number more than ``max_sequence_jump`` beyond the expected one is refused without moving
    the expected one, so a chunk reusing a real actor's id with sequence 2^63 cannot block it.
    """

    max_chunk_steps: int = opt(1024, 'longest Trajectory accepted (steps; the actors\' '
                               'chunk_length must not exceed it)', (1, 10 ** 7))
    max_actors: int = opt(16, 'distinct actor ids tracked at once (more are refused)',
                          (1, 100_000))
    actor_idle_s: float = opt(60.0, 'an actor id silent this long may be replaced by a new one',
                              (0.0, 1e9))
    actor_steps_per_s: float = opt(5000.0, 'average steps per second accepted from one actor id',
                                   (1e-3, 1e9))
    actor_burst_s: float = opt(2.0, "seconds' worth of steps one actor id may send at once",
                               (0.01, 1e6))
    max_sequence_jump: int = opt(100_000, 'a chunk this far beyond the expected sequence '
                                 'number is refused (a gap up to it opens a new stream)',
                                 (1, 2 ** 62))

    def __post_init__(self) -> None:
        """Validate."""
        validate_fields(self)


@dataclass
class TrainConfig:
    """In-process training loop settings."""

    task: str = opt('gym:Pendulum-v1', 'task id: gym:<Id>, dmc:<domain>-<task>, manip:<name>')
    algorithm: str = opt('mpo', 'learning algorithm, by its registry name')
    steps: int = opt(50_000, 'environment steps', (1, 10 ** 10))
    seed: int = opt(0, 'random seed', (0, 2 ** 31 - 1))
    updates_per_step: float = opt(1.0, 'learner updates per environment step (replay ratio)',
                                  (0.0, 100.0))
    eval_every: int = opt(5000, 'environment steps between deterministic evaluations',
                          (1, 10 ** 10))
    eval_episodes: int = opt(5, 'episodes per evaluation', (1, 1000))
    final_eval_episodes: int = opt(10, 'episodes of the final evaluation', (1, 1000))
    checkpoint_every_steps: int = opt(25_000, 'environment steps between checkpoints',
                                      (1, 10 ** 10))
    torch_threads: int = opt(1, 'torch intra-op threads (the machine is shared)', (1, 256))
    device: str = opt('cpu', 'torch device for the learner (cpu, cuda)')

    def __post_init__(self) -> None:
        """Validate."""
        validate_fields(self)
        check_algorithm(self.algorithm, 'TrainConfig.algorithm')


@dataclass
class Config:
    """Everything needed to run one algorithm on one task."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    mpo: MPOConfig = field(default_factory=MPOConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    trpo: TRPOConfig = field(default_factory=TRPOConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        """Validate cross-section constraints."""
        if self.mpo.per_dim_kl and self.network.covariance != 'diagonal':
            raise ConfigError('MPOConfig.per_dim_kl requires NetworkConfig.covariance=diagonal')

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (tuples as lists), for YAML/JSON."""
        out = dataclasses.asdict(self)
        for section in out.values():
            for k, v in section.items():
                if isinstance(v, tuple):
                    section[k] = list(v)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, Any]]) -> 'Config':
        """Build from a nested dict; unknown sections or keys raise ConfigError."""
        kinds = {f.name: f.default_factory for f in dataclasses.fields(cls)}
        unknown = set(data) - set(kinds)
        if unknown:
            raise ConfigError(f'unknown config sections: {sorted(unknown)}')
        sections = {}
        for name, factory in kinds.items():
            section_cls = type(factory())
            values = dict(data.get(name, {}))
            known = {f.name for f in dataclasses.fields(section_cls)}
            bad = set(values) - known
            if bad:
                raise ConfigError(f'unknown keys in {name}: {sorted(bad)}')
            sections[name] = section_cls(**values)
        return cls(**sections)
