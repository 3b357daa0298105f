"""
Packaging: manifests, versions, the installed entry point and the interface documentation.

These guard what `make` and colcon rely on: valid format-3 package.xml files (catkin_pkg is the
parser ament_cmake uses), one version everywhere, and the `mpo-ros-train` console script in the
venv's bin/ taking the flags the Makefile passes.
"""

import glob
import importlib.metadata
import os
import re
import subprocess
import sys

from catkin_pkg.package import parse_package
import mpo_ros

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTERFACES = os.path.join(REPO_ROOT, 'mpo_ros_interfaces')


def test_mpo_ros_manifest():
    pkg = parse_package(os.path.join(REPO_ROOT, 'package.xml'))
    pkg.validate()
    assert pkg.name == 'mpo_ros' and pkg.package_format == 3
    assert pkg.get_build_type() == 'ament_python'
    assert pkg.version == mpo_ros.__version__
    assert [str(lic) for lic in pkg.licenses] == ['Apache-2.0']
    exec_depends = {d.name for d in pkg.exec_depends}
    assert {'rclpy', 'std_msgs', 'sensor_msgs', 'geometry_msgs', 'rosgraph_msgs', 'std_srvs',
            'mpo_ros_interfaces'} <= exec_depends
    assert {'ament_flake8', 'ament_pep257', 'python3-pytest'} <= {
        d.name for d in pkg.test_depends}


def test_interfaces_manifest():
    pkg = parse_package(os.path.join(INTERFACES, 'package.xml'))
    pkg.validate()
    assert pkg.name == 'mpo_ros_interfaces' and pkg.package_format == 3
    assert pkg.get_build_type() == 'ament_cmake'
    assert pkg.version == mpo_ros.__version__
    assert 'rosidl_interface_packages' in [g.name for g in pkg.member_of_groups]
    assert 'rosidl_default_generators' in [d.name for d in pkg.buildtool_depends]


def test_one_version_everywhere():
    with open(os.path.join(REPO_ROOT, 'setup.py')) as f:
        setup_version = re.search(r"version='([^']+)'", f.read()).group(1)
    assert setup_version == mpo_ros.__version__
    # The editable install in the venv is this checkout, not a stale copy.
    assert importlib.metadata.version('mpo_ros') == mpo_ros.__version__
    assert os.path.dirname(os.path.abspath(mpo_ros.__file__)) == os.path.join(
        REPO_ROOT, 'mpo_ros')


def test_console_script_in_venv_bin():
    """`make train` runs .venv/bin/mpo-ros-train --task --steps --seed --out."""
    script = os.path.join(os.path.dirname(sys.executable), 'mpo-ros-train')
    assert os.access(script, os.X_OK), '{} missing: run `make setup`'.format(script)
    proc = subprocess.run([script, '--help'], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for flag in ('--task', '--steps', '--seed', '--out'):
        assert flag in proc.stdout, '{} not accepted by mpo-ros-train'.format(flag)


def test_every_interface_field_is_documented():
    """Each field of each .msg / .srv is directly preceded by a comment line."""
    files = sorted(glob.glob(os.path.join(INTERFACES, 'msg', '*.msg'))
                   + glob.glob(os.path.join(INTERFACES, 'srv', '*.srv')))
    assert [os.path.basename(f) for f in files] == [
        'LearnerStats.msg', 'PolicyWeights.msg', 'Trajectory.msg', 'GetAction.srv']
    undocumented = []
    for path in files:
        previous = ''
        with open(path) as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if line and not line.startswith('#') and line != '---':
                    if not previous.startswith('#'):
                        undocumented.append('{}:{}: {}'.format(
                            os.path.basename(path), number, line))
                previous = line
    assert undocumented == []
