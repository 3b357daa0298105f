"""launch/sim_train.launch.py and ``mpo-ros-launch sim_train`` describe the same pipeline."""

import importlib.util
import os
import sys
import types

import pytest

from mpo_ros.ros import launcher, pipeline

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH_FILE = os.path.join(REPO_ROOT, 'launch', 'sim_train.launch.py')


class _Recorder:
    """Stand-in for a launch / launch_ros class: records its constructor arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _stub_modules():
    """Fake launch / launch_ros modules that record what the launch file builds."""
    mods = {}
    for name, attrs in {
            'launch': ['LaunchDescription'], 'launch.actions': ['DeclareLaunchArgument'],
            'launch.substitutions': ['LaunchConfiguration'], 'launch_ros': [],
            'launch_ros.actions': ['Node'],
            'launch_ros.parameter_descriptions': ['ParameterValue']}.items():
        mod = types.ModuleType(name)
        for attr in attrs:
            setattr(mod, attr, type(attr, (_Recorder,), {}))
        mods[name] = mod
    return mods


def load_launch_description(monkeypatch):
    """Import the launch file against the stubs and call generate_launch_description()."""
    for name, mod in _stub_modules().items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location('sim_train_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def test_launch_file_and_launcher_describe_the_same_nodes(monkeypatch):
    desc = load_launch_description(monkeypatch)
    entities = desc.args[0]
    args = {e.args[0]: e.kwargs['default_value'] for e in entities
            if type(e).__name__ == 'DeclareLaunchArgument'}
    nodes = [e.kwargs for e in entities if type(e).__name__ == 'Node']
    assert set(args) == set(pipeline.ARGUMENTS)
    assert set(args) == {'task', 'config', 'namespace', 'use_sim_time'}
    assert os.path.samefile(args['config'], pipeline.default_config())
    values, extra = launcher.parse(['task:=dmc:cartpole-swingup', 'namespace:=robot',
                                    'use_sim_time:=true'])
    cmds = launcher.commands(values, extra)
    assert [n['name'] for n in nodes] == [name for name, _ in cmds]
    for node, (name, cmd) in zip(nodes, cmds):
        assert node['package'] == 'mpo_ros'
        assert os.path.basename(cmd[0]) == node['executable'] or cmd[-1].endswith(
            node['executable'] + '_node')
        assert node['namespace'].args == ('namespace',)
        config, overrides = node['parameters']
        assert config.args == ('config',)
        ros_args = cmd[cmd.index('--ros-args'):]
        assert ros_args[ros_args.index('--params-file') + 1] == os.path.abspath(
            values['config'])
        assert '__ns:=/robot' in ros_args and '__node:={}'.format(name) in ros_args
        launcher_params = {a.split(':=')[0] for a, flag in zip(ros_args[1:], ros_args)
                           if flag == '-p'}
        assert launcher_params == set(overrides), name
        assert overrides['task'].args == ('task',) and 'task:=dmc:cartpole-swingup' in ros_args
        if 'use_sim_time' in overrides:
            assert 'use_sim_time:=true' in ros_args


def test_launcher_rejects_unknown_arguments():
    with pytest.raises(SystemExit, match='unknown argument'):
        launcher.parse(['tsak:=x'])
    with pytest.raises(SystemExit, match='name:=value'):
        launcher.parse(['task=x'])
    values, extra = launcher.parse(['actor.chunk_length:=8'])
    assert extra['actor'] == ['chunk_length:=8'] and extra['learner'] == []


def test_yaml_sections_match_the_pipeline_nodes():
    import yaml
    with open(pipeline.default_config()) as f:
        data = yaml.safe_load(f)
    assert sorted(data) == sorted('/**/' + spec.name for spec in pipeline.NODES)
    assert all('ros__parameters' in section for section in data.values())


@pytest.mark.skipif(importlib.util.find_spec('launch_ros') is None,
                    reason='launch_ros is not installed (pip setup)')
def test_real_launch_file_loads():
    spec = importlib.util.spec_from_file_location('sim_train_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.generate_launch_description() is not None
