"""ROS 2 node shells (rclpy): the only package that imports rclpy and message types."""
