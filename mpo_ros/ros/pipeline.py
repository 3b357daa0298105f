"""
The ``sim_train`` pipeline, described once for both starters.

``launch/sim_train.launch.py`` (launch_ros, for a ROS 2 distribution) and ``mpo-ros-launch``
(:mod:`mpo_ros.ros.launcher`, for pip installs without launch_ros) both build their node list
from :data:`NODES` and :func:`node_parameters`, so they cannot drift apart. Plain Python: no
rclpy import, so the launch file and tests can read it anywhere.
"""

from __future__ import annotations

import os
import sys
from typing import NamedTuple

PACKAGE = 'mpo_ros'


class NodeSpec(NamedTuple):
    """One node of the pipeline."""

    name: str            # node name (and the key of its section in the YAML)
    executable: str      # console script
    sim_time: bool       # takes use_sim_time (the bridge is the clock source, so it does not)


NODES = (
    NodeSpec('bridge', 'bridge', False),
    NodeSpec('actor', 'actor', True),
    NodeSpec('learner', 'learner', True),
)


def default_config() -> str:
    """Return the installed ``config/sim_train.yaml`` (or the source tree's)."""
    here = os.path.dirname(os.path.abspath(__file__))
    source = os.path.join(os.path.dirname(os.path.dirname(here)), 'config', 'sim_train.yaml')
    if os.path.exists(source):
        return source
    installed = os.path.join(sys.prefix, 'share', PACKAGE, 'config', 'sim_train.yaml')
    if os.path.exists(installed):                  # pip install: data_files under the prefix
        return installed
    try:
        from ament_index_python.packages import get_package_share_directory
        return os.path.join(get_package_share_directory(PACKAGE), 'config', 'sim_train.yaml')
    except (ImportError, LookupError):
        return source


# Launch arguments: name -> (default, description). The default of ``config`` is resolved late.
ARGUMENTS = {
    'task': ('gym:Pendulum-v1', 'task id for all nodes: gym:<Id>, dmc:<domain>-<task>, '
             'manip:<name>'),
    'config': ('', 'parameter YAML (default: share/mpo_ros/config/sim_train.yaml)'),
    'namespace': ('', 'namespace of the three nodes'),
    'use_sim_time': ('false', 'actor and learner follow the bridge /clock'),
}


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
