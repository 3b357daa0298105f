"""
The named pipelines (``sim_train``, ``sim_arm``, ``real_arm``), described once for both starters.

``launch/<pipeline>.launch.py`` (launch_ros, for a ROS 2 distribution; each is
:func:`launch_description`) and ``mpo-ros-launch <pipeline>`` (:mod:`mpo_ros.ros.launcher`,
for pip installs without launch_ros) both build their nodes, parameters and remapping rules
from :data:`PIPELINES`, :func:`node_parameters` and :meth:`Pipeline.remappings`, so they
cannot drift apart. Plain Python: no rclpy import, and launch / launch_ros are imported only
inside :func:`launch_description`, so the launcher and tests can read this module anywhere.

- ``sim_train``: bridge + actor + learner on any task (benchmarks; the bridge's task/step).
- ``sim_arm``: the same three nodes serving the Jaco reach task as a ros2_control robot
  (``config/sim_arm.yaml``): the simulated rehearsal of ``real_arm``.
- ``real_arm``: actor + learner only, for a ros2_control driver; the actor's relative topic
  names are remapped onto the driver's (``/joint_states``, ``/<controller>/commands``) and the
  end-effector and target publishers' (``/ee_pose``, ``/target``).

The module-level :data:`NODES`, :data:`ARGUMENTS` and :func:`default_config` are
``sim_train``'s (tests and benchmarks use them).
"""

from __future__ import annotations

from dataclasses import dataclass
import os
import sys
from typing import Callable, NamedTuple

PACKAGE = 'mpo_ros'


class NodeSpec(NamedTuple):
    """One node of a pipeline."""

    name: str            # node name (and the key of its section in the YAML)
    executable: str      # console script
    sim_time: bool       # takes use_sim_time (the bridge is the clock source, so it does not)


class Arg(NamedTuple):
    """The value of launch argument ``name``, as a part of a remapping target."""

    name: str


class Remap(NamedTuple):
    """
    A ROS remapping rule of one node: ``-r source:=target`` / ``remappings=[(source, target)]``.

    ``source`` is the name the node uses (relative, so it is matched in the node's namespace);
    ``target`` is a sequence of parts, each a string or an :class:`Arg`, joined in order.
    """

    node: str
    source: str
    target: tuple


def config_path(filename: str) -> str:
    """Return ``config/<filename>``: the source tree's, else the installed one."""
    here = os.path.dirname(os.path.abspath(__file__))
    source = os.path.join(os.path.dirname(os.path.dirname(here)), 'config', filename)
    if os.path.exists(source):
        return source
    installed = os.path.join(sys.prefix, 'share', PACKAGE, 'config', filename)
    if os.path.exists(installed):                  # pip install: data_files under the prefix
        return installed
    try:
        from ament_index_python.packages import get_package_share_directory
        return os.path.join(get_package_share_directory(PACKAGE), 'config', filename)
    except (ImportError, LookupError, OSError):     # OSError: no AMENT_PREFIX_PATH
        return source


@dataclass(frozen=True)
class Pipeline:
    """A named set of nodes with its launch arguments, default YAML and remapping rules."""

    name: str
    summary: str
    nodes: tuple[NodeSpec, ...]
    arguments: dict      # name -> (default, description); ``config``'s default is resolved late
    config_file: str     # default parameter YAML, under config/
    remaps: tuple[Remap, ...] = ()

    def default_config(self) -> str:
        """Return the path of this pipeline's default parameter YAML."""
        return config_path(self.config_file)

    def remappings(self, node: NodeSpec, value: Callable) -> list[tuple[str, list]]:
        """
        Remapping rules of ``node`` as (source, [target parts]), in declaration order.

        ``value(name)`` gives launch argument ``name`` in the caller's kind of value (a string
        for the launcher, a LaunchConfiguration for launch_ros).
        """
        return [(r.source, [value(p.name) if isinstance(p, Arg) else p for p in r.target])
                for r in self.remaps if r.node == node.name]


def _arguments(task: str, config_file: str, nodes: str, **extra) -> dict:
    """Return the common arguments (task, config, namespace, use_sim_time), then ``extra``."""
    return {
        'task': (task, 'task id for all nodes: gym:<Id>, dmc:<domain>-<task>, manip:<name>'),
        'config': ('', f'parameter YAML (default: share/mpo_ros/config/{config_file})'),
        'namespace': ('', f'namespace of the {nodes} nodes'),
        'use_sim_time': ('false', 'actor and learner follow /clock (the bridge\'s, or a '
                         'simulated robot\'s)'),
        **extra,
    }


BRIDGE = NodeSpec('bridge', 'bridge', False)
ACTOR = NodeSpec('actor', 'actor', True)
LEARNER = NodeSpec('learner', 'learner', True)

PIPELINES: dict[str, Pipeline] = {p.name: p for p in (
    Pipeline(
        'sim_train', 'bridge + actor + learner on a simulated task (benchmarks)',
        (BRIDGE, ACTOR, LEARNER),
        _arguments('gym:Pendulum-v1', 'sim_train.yaml', 'three'), 'sim_train.yaml'),
    Pipeline(
        'sim_arm', 'bridge + actor + learner: the Jaco served as a ros2_control robot '
        '(rehearsal of real_arm)',
        (BRIDGE, ACTOR, LEARNER),
        _arguments('manip:reach_site_features', 'sim_arm.yaml', 'three'), 'sim_arm.yaml'),
    Pipeline(
        'real_arm', 'actor + learner for a ros2_control arm driver (no bridge)',
        (ACTOR, LEARNER),
        _arguments(
            'manip:reach_site_features', 'real_arm.yaml', 'two',
            controller=('joint_velocity_controller', 'velocity controller (forward command '
                        'controller) name: the actor commands /<controller>/commands'),
            joint_states_topic=('/joint_states', 'sensor_msgs/JointState topic '
                                '(joint_state_broadcaster)'),
            ee_pose_topic=('/ee_pose', 'geometry_msgs/PoseStamped end-effector topic'),
            target_topic=('/target', 'geometry_msgs/PointStamped target topic')),
        'real_arm.yaml',
        remaps=(
            # sources: the actor's default topic parameters (command_topic,
            # joint_states_topic, ee_pose_topic, target_topic), which real_arm.yaml keeps
            Remap('actor', 'joint_velocity_controller/commands',
                  ('/', Arg('controller'), '/commands')),
            Remap('actor', 'joint_states', (Arg('joint_states_topic'),)),
            Remap('actor', 'ee_pose', (Arg('ee_pose_topic'),)),
            Remap('actor', 'target', (Arg('target_topic'),)),
        )),
)}

# Parameters the actor and the learner must set alike: together they fix the policy's
# observation and action sizes (mpo_ros.robot.arm.policy_dims), so weights from one fit the
# other. Every pipeline YAML sets them in both sections (tests check it), and mpo-ros-launch
# refuses to start nodes whose values differ (YAML plus <node>.<param>:= overrides). An actor
# that still gets weights of another size rejects them with the reason in its log.
SHARED_PARAMETERS = ('task_definition', 'joints', 'command_in_observation')


def shared_parameter_conflicts(params: dict[str, dict]) -> list[str]:
    """
    Return a reason for each shared parameter that actor and learner set differently.

    ``params`` maps node name to its flat parameters (``{'actor': {'joints': [...]}}``); an
    unset parameter has its default (the same on both nodes).
    """
    from mpo_ros.robot.arm import ActorConfig
    defaults = ActorConfig()

    def value(node: str, key: str):
        v = params.get(node, {}).get(key, getattr(defaults, key))
        return tuple(v) if isinstance(v, (list, tuple)) else v

    return [f'{key}: actor {value("actor", key)!r}, learner {value("learner", key)!r}'
            for key in SHARED_PARAMETERS if value('actor', key) != value('learner', key)]


DEFAULT = 'sim_train'
NODES = PIPELINES[DEFAULT].nodes
ARGUMENTS = PIPELINES[DEFAULT].arguments


def default_config(name: str = DEFAULT) -> str:
    """Return the default parameter YAML of pipeline ``name`` (``config/sim_train.yaml``)."""
    return PIPELINES[name].default_config()


def node_parameters(node: NodeSpec, task, use_sim_time) -> dict:
    """
    Parameters set on the command line of ``node`` on top of the YAML, in launch order.

    ``task`` and ``use_sim_time`` are whatever the caller uses for values (strings for the
    launcher, substitutions for launch_ros).
    """
    params = {'task': task}
    if node.sim_time:
        params['use_sim_time'] = use_sim_time
    return params


def launch_description(name: str):
    """
    Return the launch_ros LaunchDescription of pipeline ``name`` (what the launch files return).

    Declares every argument of the pipeline and one Node per node with the YAML, the
    :func:`node_parameters` and the pipeline's remapping rules. Needs launch_ros.
    """
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue

    pipe = PIPELINES[name]
    args = [DeclareLaunchArgument(
        arg, default_value=default if arg != 'config' else pipe.default_config(),
        description=text) for arg, (default, text) in pipe.arguments.items()]
    task = LaunchConfiguration('task')
    use_sim_time = ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)
    nodes = [Node(package=PACKAGE, executable=spec.executable, name=spec.name,
                  namespace=LaunchConfiguration('namespace'), output='screen',
                  parameters=[LaunchConfiguration('config'),
                              node_parameters(spec, task, use_sim_time)],
                  remappings=pipe.remappings(spec, LaunchConfiguration))
             for spec in pipe.nodes]
    return LaunchDescription(args + nodes)
