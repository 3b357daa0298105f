"""
Launch the sim_arm pipeline: bridge (the Jaco as a ros2_control robot), actor and learner.

    ros2 launch mpo_ros sim_arm.launch.py                # config/sim_arm.yaml

The simulated rehearsal of real_arm.launch.py. Nodes, arguments and parameters come from
mpo_ros.ros.pipeline, which ``mpo-ros-launch sim_arm`` uses too.
"""

from mpo_ros.ros import pipeline


def generate_launch_description():
    """Declare the arguments and the three nodes."""
    return pipeline.launch_description('sim_arm')
