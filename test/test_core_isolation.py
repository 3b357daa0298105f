"""
Layering: the ROS-free packages must not pull in rclpy or any ROS message module.

Each check runs in a fresh interpreter (this test process may already have imported rclpy),
imports the package and every submodule found by pkgutil.walk_packages, then inspects
sys.modules.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Packages that must stay importable without ROS (see the architecture: ros -> core, never back).
ROS_FREE_PACKAGES = ('mpo_ros.core', 'mpo_ros.envs', 'mpo_ros.robot')

_CHECKER = textwrap.dedent('''\
    import importlib, json, pkgutil, sys
    name = sys.argv[1]
    package = importlib.import_module(name)
    imported = [name]
    for info in pkgutil.walk_packages(package.__path__, prefix=name + '.'):
        importlib.import_module(info.name)
        imported.append(info.name)

    def forbidden(mod):
        top = mod.split('.')[0]
        return (top in ('rclpy', 'rosidl_runtime_py', 'mpo_ros_interfaces')
                or top.endswith('_msgs') or top.endswith('_srvs')
                or mod == 'mpo_ros.ros' or mod.startswith('mpo_ros.ros.'))

    print(json.dumps({'imported': imported,
                      'forbidden': sorted(m for m in sys.modules if forbidden(m))}))
    ''')


def check_ros_free(package, extra_path=None):
    """Import ``package`` and its submodules in a subprocess; return the report dict."""
    env = dict(os.environ)
    if extra_path:
        env['PYTHONPATH'] = os.pathsep.join(filter(None, [extra_path, env.get('PYTHONPATH')]))
    proc = subprocess.run([sys.executable, '-c', _CHECKER, package], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, 'importing {} failed:\n{}{}'.format(
        package, proc.stdout, proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('package', ROS_FREE_PACKAGES)
def test_package_does_not_import_ros(package):
    path = os.path.join(REPO_ROOT, *package.split('.'))
    if package != 'mpo_ros.core' and not os.path.isdir(path):
        pytest.skip('{} does not exist yet'.format(package))
    # mpo_ros.core is the heart of the project: it must exist, never skipped.
    assert os.path.isfile(os.path.join(path, '__init__.py')), '{} is missing'.format(package)
    report = check_ros_free(package)
    assert report['forbidden'] == [], '{} imports ROS modules: {}'.format(
        package, report['forbidden'])
    assert len(report['imported']) >= 1


def test_checker_detects_ros_import(tmp_path):
    """Guard against a vacuous pass: a package importing rclpy and std_msgs is flagged."""
    pkg = tmp_path / 'leaky_pkg'
    (pkg / 'sub').mkdir(parents=True)
    (pkg / '__init__.py').write_text('"""Clean top level."""\n')
    (pkg / 'sub' / '__init__.py').write_text('"""Clean."""\n')
    (pkg / 'sub' / 'leak.py').write_text('"""Leaks ROS."""\nimport rclpy  # noqa\n'
                                         'import std_msgs.msg  # noqa\n')
    report = check_ros_free('leaky_pkg', extra_path=str(tmp_path))
    assert 'leaky_pkg.sub.leak' in report['imported']
    assert 'rclpy' in report['forbidden'] and 'std_msgs' in report['forbidden']
