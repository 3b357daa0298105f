"""Config dataclasses reject bad values with a message that names the field."""

import pytest

from mpo_ros.core.config import Config, ConfigError, MPOConfig, NetworkConfig, ReplayConfig


@pytest.mark.parametrize('factory, field', [
    (lambda: MPOConfig(epsilon=-0.1), 'MPOConfig.epsilon'),
    (lambda: MPOConfig(discount=1.5), 'MPOConfig.discount'),
    (lambda: MPOConfig(num_action_samples=1), 'MPOConfig.num_action_samples'),
    (lambda: MPOConfig(num_action_samples=2.5), 'MPOConfig.num_action_samples'),
    (lambda: MPOConfig(epsilon=float('nan')), 'MPOConfig.epsilon'),
    (lambda: MPOConfig(per_dim_kl='yes'), 'MPOConfig.per_dim_kl'),
    (lambda: ReplayConfig(batch_size=0), 'ReplayConfig.batch_size'),
    (lambda: NetworkConfig(covariance='banana'), 'NetworkConfig.covariance'),
    (lambda: NetworkConfig(policy_hidden=(256, 0)), 'NetworkConfig.policy_hidden'),
    (lambda: MPOConfig(max_multiplier=0.5), 'MPOConfig.max_multiplier'),
    (lambda: MPOConfig(init_alpha_cov=100.0, max_multiplier=10.0), 'MPOConfig.init_alpha_cov'),
])
def test_invalid_values_name_the_field(factory, field):
    with pytest.raises(ConfigError, match=field.replace('.', r'\.')):
        factory()


def test_cross_field_rule_and_round_trip():
    with pytest.raises(ConfigError, match='per_dim_kl'):
        Config(mpo=MPOConfig(per_dim_kl=True))
    cfg = Config.from_dict({'mpo': {'epsilon': 0.2},
                            'network': {'covariance': 'diagonal', 'policy_hidden': [64, 64]}})
    assert cfg.mpo.epsilon == 0.2 and cfg.network.policy_hidden == (64, 64)
    assert Config.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match='unknown keys in mpo'):
        Config.from_dict({'mpo': {'epsilom': 0.2}})
    with pytest.raises(ConfigError, match='unknown config sections'):
        Config.from_dict({'mop': {}})


def test_paper_defaults():
    """Appendix C of the MPO paper: eps 0.1, eps_mu 0.1, eps_Sigma 1e-4, gamma 0.99."""
    m = MPOConfig()
    assert (m.epsilon, m.epsilon_mean, m.epsilon_cov, m.discount) == (0.1, 0.1, 1e-4, 0.99)
    assert m.retrace_lambda == 1.0 and NetworkConfig().covariance == 'full'
