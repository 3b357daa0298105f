"""
Launch the sim_train pipeline: bridge, actor and learner with one parameter YAML.

    ros2 launch mpo_ros sim_train.launch.py task:=dmc:cartpole-swingup namespace:=robot1

Nodes, arguments and parameters come from mpo_ros.ros.pipeline, which
``mpo-ros-launch sim_train`` (the launcher for installs without launch_ros) uses too.
"""

from mpo_ros.ros import pipeline


def generate_launch_description():
    """Declare the arguments and the three nodes."""
    return pipeline.launch_description('sim_train')
