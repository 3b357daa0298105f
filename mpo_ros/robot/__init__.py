"""
The robot side of the actor, without ROS: everything between sensor readings and commands.

- :mod:`~mpo_ros.robot.sensors`: joint state + end-effector pose + target -> one frame;
- :mod:`~mpo_ros.robot.tasks`: task definitions (observation, reward, episode end);
- :mod:`~mpo_ros.robot.safety`: the command safety filter;
- :mod:`~mpo_ros.robot.actions`: normalised actions <-> commands, the executed action;
- :mod:`~mpo_ros.robot.recorder`: transitions -> TrajectoryChunks;
- :mod:`~mpo_ros.robot.episode`: the episode / reset / evaluation state;
- :mod:`~mpo_ros.robot.actor`: :class:`~mpo_ros.robot.actor.RobotActor`, all of it together;
- :mod:`~mpo_ros.robot.arm`: the actor's parameters and the helpers the learner shares.

Pure Python, numpy and torch (never rclpy or message packages): the actor node in
:mod:`mpo_ros.ros.actor_node` is a thin ROS shell around :class:`RobotActor`.
"""
