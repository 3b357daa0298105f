"""
MPO for ROS 2: learn robot controllers online with Maximum a Posteriori Policy Optimisation.

``mpo_ros.core`` holds the ROS-free algorithm (torch + numpy), ``mpo_ros.envs`` the ROS-free
simulator adapters, and ``mpo_ros.ros`` the thin ROS 2 node shells around them.
"""

__version__ = "0.1.0"
