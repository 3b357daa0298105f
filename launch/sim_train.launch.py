"""
Launch the sim_train pipeline: bridge, actor and learner with one parameter YAML.

    ros2 launch mpo_ros sim_train.launch.py task:=dmc:cartpole-swingup namespace:=robot1

The node list comes from mpo_ros.ros.pipeline, which ``mpo-ros-launch sim_train`` (the
launcher for installs without launch_ros) uses too.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from mpo_ros.ros import pipeline


def generate_launch_description():
    """Declare the arguments and the three nodes."""
    args = [DeclareLaunchArgument(
        name, default_value=default if name != 'config' else pipeline.default_config(),
        description=text) for name, (default, text) in pipeline.ARGUMENTS.items()]
    task = LaunchConfiguration('task')
    use_sim_time = ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)
    nodes = [Node(package=pipeline.PACKAGE, executable=spec.executable, name=spec.name,
                  namespace=LaunchConfiguration('namespace'), output='screen',
                  parameters=[LaunchConfiguration('config'),
                              pipeline.node_parameters(spec, task, use_sim_time)])
             for spec in pipeline.NODES]
    return LaunchDescription(args + nodes)
