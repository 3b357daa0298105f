"""
Session-wide test settings.

Every test run gets its own ROS 2 domain and keeps DDS discovery on this machine, so parallel
runs (two checkouts, CI jobs) never see each other's topics. Child processes started by tests
inherit these variables.
"""

import os
import sys
import tempfile

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _test_domain_id():
    """Return a ROS_DOMAIN_ID in 1..100 for this run (MPO_ROS_TEST_DOMAIN_ID overrides)."""
    forced = os.environ.get('MPO_ROS_TEST_DOMAIN_ID')
    if forced:
        return int(forced)
    return 1 + os.getpid() % 100


def pytest_configure(config):
    """Isolate ROS 2 traffic and logs of this run before any test imports rclpy."""
    os.environ['ROS_DOMAIN_ID'] = str(_test_domain_id())
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.pop('ROS_LOCALHOST_ONLY', None)  # deprecated; conflicts with the above
    os.environ.pop('ROS_STATIC_PEERS', None)
    os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    os.environ.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='mpo_ros_test_roslog_'))
    # Small test networks run fastest single-threaded; intra-op threads only contend on 2 cores.
    os.environ.setdefault('OMP_NUM_THREADS', '1')


def pytest_report_header(config):
    """Show the ROS isolation settings in the pytest header."""
    return 'ROS_DOMAIN_ID={} ROS_AUTOMATIC_DISCOVERY_RANGE={} python={}'.format(
        os.environ.get('ROS_DOMAIN_ID'), os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE'),
        sys.executable)


@pytest.fixture(scope='session')
def repo_root():
    """Absolute path of the repository root."""
    return REPO_ROOT
