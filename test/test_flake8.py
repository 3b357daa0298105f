"""Code style: flake8 (max line length 99, as setup.cfg and ament_flake8 use) must be clean."""

import subprocess
import sys
import textwrap

from lint_paths import lint_paths
from lint_paths import REPO_ROOT

MAX_LINE_LENGTH = 99


def run_flake8(paths, cwd=REPO_ROOT):
    """Run flake8 on ``paths``; return (exit code, report text)."""
    proc = subprocess.run(
        [sys.executable, '-m', 'flake8', '--max-line-length', str(MAX_LINE_LENGTH),
         '--exclude', '.git,.venv,build,install,log,__pycache__,*.egg-info', *paths],
        cwd=cwd, capture_output=True, text=True, timeout=300)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def test_flake8_clean():
    paths = lint_paths()
    assert 'mpo_ros' in paths and 'test' in paths
    rc, report = run_flake8(paths)
    n = len(report.splitlines())
    assert rc == 0, 'flake8 found {} problem(s) in {}:\n{}'.format(n, ' '.join(paths), report)


def test_flake8_detects_problems(tmp_path):
    """Guard against a vacuous pass: a file with known problems must be reported."""
    bad = tmp_path / 'bad.py'
    bad.write_text(textwrap.dedent('''\
        import os
        x = 1  # {}
        ''').format('y' * MAX_LINE_LENGTH))
    rc, report = run_flake8([str(bad)], cwd=tmp_path)
    assert rc != 0
    assert 'F401' in report and 'E501' in report, report
