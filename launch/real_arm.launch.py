"""
Launch the real_arm pipeline: actor and learner for a ros2_control arm driver (no bridge).

    ros2 launch mpo_ros real_arm.launch.py controller:=joint_velocity_controller

The actor's topics are remapped onto the driver's: ``/joint_states`` (joint_state_broadcaster),
``/<controller>/commands`` (a velocity forward command controller), ``/ee_pose`` and
``/target`` (arguments ``joint_states_topic``, ``ee_pose_topic``, ``target_topic``). Nodes,
arguments, parameters and remappings come from mpo_ros.ros.pipeline, which
``mpo-ros-launch real_arm`` uses too. See README "Training on a real arm".
"""

from mpo_ros.ros import pipeline


def generate_launch_description():
    """Declare the arguments and the two nodes."""
    return pipeline.launch_description('real_arm')
