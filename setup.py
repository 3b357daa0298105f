"""Packaging for the ``mpo_ros`` ament_python package (used by colcon and by pip)."""

from glob import glob
import os

from setuptools import find_packages
from setuptools import setup

package_name = 'mpo_ros'


def files(pattern):
    """Return the regular files matching ``pattern`` (data_files cannot hold directories)."""
    return sorted(path for path in glob(pattern) if os.path.isfile(path))


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', files('launch/*.py')),
        ('share/' + package_name + '/config', files('config/*.yaml')),
        ('share/' + package_name + '/sim', files('sim/*')),
    ],
    python_requires='>=3.10',
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='mpo_ros maintainers',
    maintainer_email='maintainers@users.noreply.b-seed-debc9837.example',
    description='Online MPO training of robot controllers as ROS 2 nodes.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'mpo-ros-train = mpo_ros.trainer:main',
            'mpo-ros-launch = mpo_ros.ros.launcher:main',
            'bridge = mpo_ros.ros.bridge_node:main',
            'actor = mpo_ros.ros.actor_node:main',
            'learner = mpo_ros.ros.learner_node:main',
        ],
    },
)
