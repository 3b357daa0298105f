"""Docstrings: pydocstyle with the convention ament_pep257 applies by default must be clean."""

import subprocess
import sys
import textwrap

from lint_paths import lint_paths
from lint_paths import REPO_ROOT

# ament_pep257's default ("ament" convention, ament_lint ament_pep257/main.py): check every
# pydocstyle code except these. Note D213 stays on: a multi-line docstring starts with an
# empty line and the summary goes on the second line, as in the ROS 2 code base.
AMENT_IGNORE = ('D100', 'D101', 'D102', 'D103', 'D104', 'D105', 'D106', 'D107',
                'D203', 'D212', 'D404')


def run_pydocstyle(paths, cwd=REPO_ROOT):
    """Run pydocstyle as ament_pep257 does; return (exit code, report text)."""
    proc = subprocess.run(
        [sys.executable, '-m', 'pydocstyle', '--ignore=' + ','.join(AMENT_IGNORE),
         '--match', r'.*\.py', '--match-dir', r'[^\._].*', *paths],
        cwd=cwd, capture_output=True, text=True, timeout=300)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def test_pep257_clean():
    paths = lint_paths()
    assert 'mpo_ros' in paths and 'test' in paths
    rc, report = run_pydocstyle(paths)
    # pydocstyle prints two lines per problem: location, then the message.
    n = sum(1 for line in report.splitlines() if line.startswith(' '))
    assert rc == 0, 'pydocstyle (ament convention) found {} problem(s) in {}:\n{}'.format(
        n, ' '.join(paths), report)


def test_pep257_detects_problems(tmp_path):
    """Guard against a vacuous pass: known docstring problems must be reported."""
    bad = tmp_path / 'bad.py'
    bad.write_text(textwrap.dedent('''\
        def f():
            """no capital, no period"""


        def g():
            """Summary on the first line of a multi-line docstring.

            Ament wants it on the second line (D213).
            """
        '''))
    rc, report = run_pydocstyle([str(bad)], cwd=tmp_path)
    assert rc != 0
    assert 'D400' in report and 'D213' in report, report
