"""Paths the style tests check (shared by test_flake8.py and test_pep257.py)."""

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Directories and files with Python code of this repository; missing ones are skipped.
CANDIDATES = ('mpo_ros', 'test', 'bench', 'launch', 'tools', 'setup.py')


def lint_paths():
    """Return the existing lint targets, relative to the repository root."""
    return [p for p in CANDIDATES if os.path.exists(os.path.join(REPO_ROOT, p))]
