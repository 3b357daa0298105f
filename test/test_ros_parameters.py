"""ROS parameters derived from the config dataclasses (mpo_ros.ros.parameters)."""

import os
import subprocess
import sys

import pytest

rclpy = pytest.importorskip('rclpy')
from mpo_ros.core.config import MPOConfig, NetworkConfig  # noqa: E402
from mpo_ros.ros.parameters import ConfigParameters, ParameterError  # noqa: E402
from rcl_interfaces.msg import ParameterType  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture
def node():
    context = rclpy.Context()
    rclpy.init(context=context)
    n = rclpy.create_node('param_test', context=context)
    try:
        yield n
    finally:
        n.destroy_node()
        rclpy.shutdown(context=context)


def test_descriptors_carry_help_and_ranges(node):
    params = ConfigParameters(node, {'mpo.': MPOConfig, 'network.': NetworkConfig})
    desc = node.describe_parameter('mpo.epsilon')
    assert 'E-step KL bound' in desc.description
    assert desc.type == ParameterType.PARAMETER_DOUBLE
    assert desc.floating_point_range[0].from_value == pytest.approx(1e-6)
    steps = node.describe_parameter('mpo.num_action_samples')
    assert (steps.integer_range[0].from_value, steps.integer_range[0].to_value) == (2, 1024)
    assert node.describe_parameter('network.policy_hidden').type == \
        ParameterType.PARAMETER_INTEGER_ARRAY
    assert 'full' in node.describe_parameter('network.covariance').description
    cfg = params.read()
    assert cfg['mpo.'] == MPOConfig() and cfg['network.'] == NetworkConfig()


def test_runtime_changes_are_validated_and_applied(node):
    applied = []
    ConfigParameters(node, {'network.': NetworkConfig}, live={'network.': applied.append})
    bad = node.set_parameters([Parameter('network.covariance', value='spherical')])[0]
    assert not bad.successful and 'network.covariance' in bad.reason
    bad = node.set_parameters([Parameter('network.min_std', value=0.9)])[0]
    assert not bad.successful                    # min_std must stay below init_std
    assert applied == []
    good = node.set_parameters([Parameter('network.init_std', value=0.3)])[0]
    assert good.successful
    assert applied == [NetworkConfig(init_std=0.3)]          # the node got the new section
    assert node.get_parameter('network.covariance').value == 'full'


def test_parameters_that_cannot_take_effect_are_read_only(node):
    def refuse(cfg):
        raise ValueError(f'cannot use epsilon {cfg.epsilon}')
    ConfigParameters(node, {'network.': NetworkConfig, 'mpo.': MPOConfig},
                     live={'mpo.': refuse}, read_only=('mpo.discount',))
    for name, value in (('network.init_std', 0.3), ('mpo.discount', 0.5)):
        assert node.describe_parameter(name).read_only
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful and 'read-only' in result.reason and name in result.reason
    assert not node.describe_parameter('mpo.epsilon').read_only
    result = node.set_parameters([Parameter('mpo.epsilon', value=0.2)])[0]
    assert not result.successful and result.reason == 'cannot use epsilon 0.2'
    assert node.get_parameter('mpo.epsilon').value == MPOConfig().epsilon


def test_invalid_value_names_the_parameter(node):
    params = ConfigParameters(node, {'network.': NetworkConfig})
    with pytest.raises(ParameterError, match="'network.covariance'"):
        params.read({'network.covariance': 'spherical'})


@pytest.mark.parametrize('executable, args, name', [
    ('bridge', ['-p', 'mode:=sideways'], 'mode'),
    ('actor', ['-p', 'chunk_length:=0'], 'chunk_length'),
])
def test_node_with_invalid_parameter_exits_at_start(executable, args, name):
    exe = os.path.join(os.path.dirname(sys.executable), executable)
    proc = subprocess.run([exe, '--ros-args', *args], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "invalid parameter '{}'".format(name) in proc.stderr
