"""
Pure torch/numpy MPO core: configs, distributions, networks, losses, replay, learner.

Nothing in this package imports rclpy or any ROS message type; the ROS nodes are thin shells
around it and the in-process trainer uses it directly.
"""
