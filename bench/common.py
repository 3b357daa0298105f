"""Shared helpers for benchmarks: provenance (command, commit, machine) and result files."""

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / 'results'


def provenance(started: float, finished: float) -> dict:
    """Return the exact command, commit, machine and wall time of this benchmark run."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                                    cwd=root, capture_output=True, text=True,
                                    timeout=10).stdout.strip())
    except OSError:
        commit, dirty = 'unknown', False
    cpu = 'unknown'
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    import torch
    return {
        'command': ' '.join([os.path.relpath(sys.executable, root) if sys.executable.startswith(
            str(root)) else sys.executable] + sys.argv),
        'commit': commit + ('+dirty' if dirty else ''),
        'machine': f'{platform.node()}: {os.cpu_count()} cores, {cpu}, {platform.platform()}',
        'python': platform.python_version(), 'torch': torch.__version__,
        'date_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'wall_time_s': round(finished - started, 1),
        'load_average_1_5_15min_at_end': [round(x, 2) for x in os.getloadavg()],
    }


def write_result(name: str, data: dict) -> Path:
    """Write ``bench/results/<name>.json`` and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f'{name}.json'
    path.write_text(json.dumps(data, indent=2) + '\n')
    return path
