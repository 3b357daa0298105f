"""
launch/<pipeline>.launch.py and ``mpo-ros-launch <pipeline>`` describe the same pipelines.

launch_ros is not on PyPI, so the launch files are imported against stand-in ``launch`` /
``launch_ros`` modules that record what they are asked to build; that record (nodes,
arguments, parameters, remapping rules) must equal the launcher's command lines. Each
pipeline's YAML is checked against the parameters its nodes declare (names and types from
the config dataclasses, values through their validation), and ``mpo-ros-launch real_arm`` is
started for real against no driver.
"""

import dataclasses
import importlib.util
import os
import signal
import subprocess
import sys
import time
import types

import pytest

from mpo_ros.ros import launcher, pipeline

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH_DIR = os.path.join(REPO_ROOT, 'launch')
LAUNCH = os.path.join(os.path.dirname(sys.executable), 'mpo-ros-launch')
PIPELINES = sorted(pipeline.PIPELINES)

# Non-default values for every argument, so the test sees each one reach the nodes.
ARGS = {
    'sim_train': ['task:=dmc:cartpole-swingup', 'namespace:=robot', 'use_sim_time:=true'],
    'sim_arm': ['namespace:=robot', 'use_sim_time:=true'],
    'real_arm': ['namespace:=robot', 'controller:=arm_velocity', 'joint_states_topic:=/js',
                 'ee_pose_topic:=/tcp_pose', 'target_topic:=/goal'],
}


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


def launch_file(name):
    """Return the path of launch/<name>.launch.py."""
    return os.path.join(LAUNCH_DIR, f'{name}.launch.py')


def load_launch_description(monkeypatch, name):
    """Import launch/<name>.launch.py against the stubs; call generate_launch_description()."""
    for mod_name, mod in _stub_modules().items():
        monkeypatch.setitem(sys.modules, mod_name, mod)
    spec = importlib.util.spec_from_file_location(f'{name}_launch', launch_file(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def _resolve(parts, values):
    """Join remapping target parts, LaunchConfiguration stubs replaced by ``values``."""
    if isinstance(parts, (str, _Recorder)):
        parts = [parts]
    out = ''
    for part in parts:
        if isinstance(part, _Recorder):
            assert type(part).__name__ == 'LaunchConfiguration', part
            out += values[part.args[0]]
        else:
            out += part
    return out


def _ros_args(cmd):
    """Return (-r rules other than __node / __ns, -p names) of a launcher command."""
    ros_args = cmd[cmd.index('--ros-args'):]
    pairs = list(zip(ros_args, ros_args[1:]))
    remaps = [v for flag, v in pairs if flag == '-r' and not v.startswith('__')]
    params = [v for flag, v in pairs if flag == '-p']
    return remaps, params


def test_every_pipeline_has_a_launch_file():
    files = sorted(f[:-len('.launch.py')] for f in os.listdir(LAUNCH_DIR)
                   if f.endswith('.launch.py'))
    assert files == PIPELINES == ['real_arm', 'sim_arm', 'sim_train']


@pytest.mark.parametrize('name', PIPELINES)
def test_launch_file_and_launcher_describe_the_same_pipeline(monkeypatch, name):
    pipe = pipeline.PIPELINES[name]
    desc = load_launch_description(monkeypatch, name)
    entities = desc.args[0]
    declared = {e.args[0]: e.kwargs['default_value'] for e in entities
                if type(e).__name__ == 'DeclareLaunchArgument'}
    nodes = [e.kwargs for e in entities if type(e).__name__ == 'Node']
    assert list(declared) == list(pipe.arguments)
    assert {'task', 'config', 'namespace', 'use_sim_time'} <= set(declared)
    assert os.path.samefile(declared['config'], pipe.default_config())
    assert all(declared[k] == d for k, (d, _) in pipe.arguments.items() if k != 'config')

    values, extra = launcher.parse(ARGS[name], name)
    cmds = launcher.commands(values, extra, name)
    assert [n['name'] for n in nodes] == [n for n, _ in cmds] == [s.name for s in pipe.nodes]
    for node, (node_name, cmd) in zip(nodes, cmds):
        assert node['package'] == 'mpo_ros'
        assert os.path.basename(cmd[0]) == node['executable'] or cmd[-1].endswith(
            node['executable'] + '_node')
        assert node['namespace'].args == ('namespace',)
        config, overrides = node['parameters']
        assert config.args == ('config',)
        ros_args = cmd[cmd.index('--ros-args'):]
        assert ros_args[ros_args.index('--params-file') + 1] == os.path.abspath(
            values['config'])
        assert '__ns:=/robot' in ros_args and f'__node:={node_name}' in ros_args
        remaps, params = _ros_args(cmd)
        # parameters: the same names; task and use_sim_time from the arguments
        assert [p.split(':=')[0] for p in params] == list(overrides), node_name
        assert overrides['task'].args == ('task',)
        assert f"task:={values['task']}" in params
        if 'use_sim_time' in overrides:
            assert overrides['use_sim_time'].args[0].args == ('use_sim_time',)
            assert f"use_sim_time:={values['use_sim_time']}" in params
        # remapping rules: the same, in the same order, with the same argument values
        launch_remaps = [f'{src}:={_resolve(dst, values)}'
                         for src, dst in node.get('remappings') or []]
        assert launch_remaps == remaps, node_name


def test_real_arm_remaps_the_actor_onto_the_driver():
    values, extra = launcher.parse(ARGS['real_arm'], 'real_arm')
    cmds = dict(launcher.commands(values, extra, 'real_arm'))
    assert list(cmds) == ['actor', 'learner']                   # no bridge
    assert not any('bridge' in os.path.basename(part) for cmd in cmds.values()
                   for part in cmd)
    assert _ros_args(cmds['actor'])[0] == [
        'joint_velocity_controller/commands:=/arm_velocity/commands', 'joint_states:=/js',
        'ee_pose:=/tcp_pose', 'target:=/goal']
    assert _ros_args(cmds['learner'])[0] == []
    values, extra = launcher.parse([], 'real_arm')               # the defaults
    actor = dict(launcher.commands(values, extra, 'real_arm'))['actor']
    assert _ros_args(actor)[0] == [
        'joint_velocity_controller/commands:=/joint_velocity_controller/commands',
        'joint_states:=/joint_states', 'ee_pose:=/ee_pose', 'target:=/target']
    assert os.path.basename(values['config']) == 'real_arm.yaml'
    assert values['task'] == 'manip:reach_site_features'


def test_launcher_rejects_unknown_arguments():
    with pytest.raises(SystemExit, match='unknown argument'):
        launcher.parse(['tsak:=x'])
    with pytest.raises(SystemExit, match='name:=value'):
        launcher.parse(['task=x'])
    with pytest.raises(SystemExit, match='unknown argument'):
        launcher.parse(['controller:=x'])                         # real_arm only
    with pytest.raises(SystemExit, match='unknown argument'):
        launcher.parse(['bridge.seed:=1'], 'real_arm')             # no bridge there
    values, extra = launcher.parse(['actor.chunk_length:=8'])
    assert extra['actor'] == ['chunk_length:=8'] and extra['learner'] == []


def test_help_lists_pipelines_and_arguments(capsys):
    assert launcher.main(['--help']) == 0
    text = capsys.readouterr().err
    for name, pipe in pipeline.PIPELINES.items():
        assert f'  {name}: ' in text
        for arg in pipe.arguments:
            assert f'    {arg}:=' in text
    assert launcher.main(['no_such_pipeline']) == 2
    assert "unknown pipeline 'no_such_pipeline'" in capsys.readouterr().err


def test_module_level_names_are_sim_train():
    sim_train = pipeline.PIPELINES['sim_train']
    assert pipeline.NODES == sim_train.nodes and pipeline.ARGUMENTS == sim_train.arguments
    assert os.path.basename(pipeline.default_config()) == 'sim_train.yaml'
    assert launcher.parse([])[0]['task'] == 'gym:Pendulum-v1'


# ------------------------------------------------------------------ YAML vs declared parameters
def _sections():
    """Return {node name: {prefix: dataclass}}, as the nodes pass them to declare_config."""
    from mpo_ros.core.config import MPOConfig, NetworkConfig, ReplayConfig
    from mpo_ros.robot import arm
    from mpo_ros.robot.arm import ActorConfig
    from mpo_ros.ros.bridge_node import BridgeConfig
    from mpo_ros.ros.learner_node import LearnerNodeConfig
    return {
        'bridge': {'': BridgeConfig},
        'actor': {'': ActorConfig, 'network.': NetworkConfig, 'reach.': arm.ReachConfig,
                  'reset.': arm.ResetConfig, 'safety.': arm.SafetyConfig},
        'learner': {'': LearnerNodeConfig, 'network.': NetworkConfig, 'mpo.': MPOConfig,
                    'replay.': ReplayConfig},
    }


def _flatten(params, prefix=''):
    """Flatten nested ros__parameters into {'a.b': value}."""
    out = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f'{prefix}{key}.'))
        else:
            out[prefix + key] = value
    return out


def _yaml_type(value):
    """Return the ROS ParameterType the YAML parser gives ``value``."""
    from rcl_interfaces.msg import ParameterType as T
    if isinstance(value, list):
        kinds = {type(v) for v in value}
        assert len(kinds) == 1, f'mixed or empty list {value!r}'
        kind = kinds.pop()
        return {bool: T.PARAMETER_BOOL_ARRAY, int: T.PARAMETER_INTEGER_ARRAY,
                float: T.PARAMETER_DOUBLE_ARRAY, str: T.PARAMETER_STRING_ARRAY}[kind]
    return {bool: T.PARAMETER_BOOL, int: T.PARAMETER_INTEGER, float: T.PARAMETER_DOUBLE,
            str: T.PARAMETER_STRING}[type(value)]


def load_yaml(name):
    """Return {node name: flat parameters} of pipeline ``name``'s default YAML."""
    import yaml
    with open(pipeline.default_config(name)) as f:
        data = yaml.safe_load(f)
    assert sorted(data) == sorted('/**/' + s.name for s in pipeline.PIPELINES[name].nodes)
    assert all(list(section) == ['ros__parameters'] for section in data.values())
    return {key[len('/**/'):]: _flatten(section['ros__parameters'])
            for key, section in data.items()}


@pytest.mark.ros
@pytest.mark.parametrize('name', PIPELINES)
def test_every_yaml_key_is_a_declared_parameter_of_its_node(name):
    from rcl_interfaces.msg import ParameterType
    from mpo_ros.ros.parameters import parameter_type
    sections = _sections()
    for node, params in load_yaml(name).items():
        fields = {prefix + f.name: (prefix, f) for prefix, cls in sections[node].items()
                  for f in dataclasses.fields(cls)}
        kwargs = {prefix: {} for prefix in sections[node]}
        for key, value in params.items():
            if key == 'use_sim_time':                  # declared by rclpy on every node
                assert _yaml_type(value) == ParameterType.PARAMETER_BOOL
                continue
            assert key in fields, f'{name}.yaml: {node} declares no parameter {key!r}'
            prefix, f = fields[key]
            assert _yaml_type(value) == parameter_type(f), \
                f'{name}.yaml: {node} {key}: {value!r} is not of the declared type'
            kwargs[prefix][f.name] = tuple(value) if isinstance(value, list) else value
        for prefix, cls in sections[node].items():    # ranges and choices, as the node reads
            cls(**kwargs[prefix])


@pytest.mark.ros
def test_real_arm_yaml_fits_the_arm_and_the_remaps():
    from mpo_ros import envs
    from mpo_ros.robot import arm
    from mpo_ros.robot.arm import ActorConfig
    actor, learner = load_yaml('real_arm')['actor'], load_yaml('real_arm')['learner']
    assert actor['task_definition'] == learner['task_definition'] == 'reach'
    assert actor['joints'] == learner['joints'] and len(actor['joints']) == 6
    assert actor['reset.mode'] == 'home' and actor['reset.service'] == ''
    assert actor['throttle'] is False and actor['safety.sensor_timeout_s'] == 0.2
    # The rate limit makes the previous command part of the state, on both nodes.
    assert actor['safety.max_delta'] > 0
    assert actor['command_in_observation'] is learner['command_in_observation'] is True
    assert actor.get('use_sim_time') is False and learner.get('use_sim_time') is False
    assert learner['out_dir'] == 'runs/real_arm'
    # The remapping rules match the actor's topic names, so the YAML must keep the defaults.
    defaults = ActorConfig()
    topics = ['command_topic', 'joint_states_topic', 'ee_pose_topic', 'target_topic']
    sources = [r.source for r in pipeline.PIPELINES['real_arm'].remaps if r.node == 'actor']
    assert sources == [getattr(defaults, t) for t in topics]
    assert all(actor.get(t, getattr(defaults, t)) == getattr(defaults, t) for t in topics)
    # The home pose is inside the model's position limits by more than the safety margin.
    env = envs.make(pipeline.PIPELINES['real_arm'].arguments['task'][0], seed=0)
    try:
        limits = arm.safety_limits(arm.SafetyConfig(), env.spec, actor['joints'])
    finally:
        env.close()
    margin = actor.get('safety.position_margin', arm.SafetyConfig().position_margin)
    for q, lo, hi in zip(actor['reset.home'], limits.position_lower, limits.position_upper):
        assert lo + margin < q < hi - margin


# ------------------------------------------------------------------ real processes
@pytest.mark.parametrize('name', PIPELINES)
def test_actor_and_learner_agree_on_the_policy_sizes(name):
    """The shared parameters (task definition, joints, command in the observation) match."""
    values, extra = launcher.parse([], name)
    assert pipeline.shared_parameter_conflicts(launcher.node_params(values['config'],
                                                                    extra)) == []


def test_launcher_refuses_actor_and_learner_that_disagree(capsys):
    code = launcher.main(['real_arm', 'learner.command_in_observation:=false'])
    assert code == 2
    assert 'command_in_observation: actor True, learner False' in capsys.readouterr().err
    assert pipeline.shared_parameter_conflicts(
        {'actor': {'joints': ['a', 'b']}, 'learner': {'joints': ('a', 'b')}}) == []
    assert pipeline.shared_parameter_conflicts(
        {'actor': {'task_definition': 'reach'}, 'learner': {}}) == [
        "task_definition: actor 'reach', learner ''"]


@pytest.mark.ros
def test_real_arm_starts_actor_and_learner_and_stops_cleanly(tmp_path):
    """``mpo-ros-launch real_arm`` with no driver: both nodes start, SIGINT stops them (0)."""
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    out_path = tmp_path / 'launcher.log'
    cmd = [LAUNCH, 'real_arm', 'controller:=smoke_velocity',
           f"learner.out_dir:={tmp_path / 'run'}"]
    with open(out_path, 'w') as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    actor_line = 'act 6 on /smoke_velocity/commands'          # the remap reached the actor
    learner_line = 'manip:reach_site_features: obs'
    try:
        deadline = time.monotonic() + 90.0
        text = ''
        while time.monotonic() < deadline and proc.poll() is None:
            text = out_path.read_text()
            if actor_line in text and learner_line in text:
                break
            time.sleep(0.2)
        assert actor_line in text and learner_line in text, text[-4000:]
        assert 'starting bridge' not in text
        proc.send_signal(signal.SIGINT)
        status = proc.wait(timeout=40)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out_path.read_text()
    assert status == 0, text[-4000:]
    assert 'exited with status' not in text and 'did not stop' not in text, text[-4000:]


@pytest.mark.skipif(importlib.util.find_spec('launch_ros') is None,
                    reason='launch_ros is not installed (pip setup)')
@pytest.mark.parametrize('name', PIPELINES)
def test_real_launch_file_loads(name):
    spec = importlib.util.spec_from_file_location(f'{name}_launch', launch_file(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.generate_launch_description() is not None
