"""
``mpo-ros-launch``: start a pipeline's nodes without launch_ros (which is not on PyPI).

    mpo-ros-launch <pipeline> [task:=...] [config:=file.yaml] [namespace:=ns]
                   [use_sim_time:=false] [<argument>:=<value> ...] [<node>.<param>:=<value> ...]

Pipelines (:data:`mpo_ros.ros.pipeline.PIPELINES`): ``sim_train``, ``sim_arm`` and
``real_arm``; ``mpo-ros-launch --help`` lists them with their arguments. Starts the
executables of the pipeline's nodes (found next to ``sys.executable``, where pip puts console
scripts) with the same YAML, arguments and remapping rules as ``launch/<pipeline>.launch.py``:
``--ros-args -r __node:=<name> [-r __ns:=<ns>] [-r <from>:=<to> ...] --params-file <config>
-p task:=<task> ...``. ``<node>.<param>:=<value>`` adds ``-p`` to that node only. Ctrl-C /
SIGTERM are forwarded to every node; when one node exits, the others are stopped (SIGINT, then
SIGKILL after a grace period). The exit status is the first non-zero status of a node, else 0.
Plain Python: no rclpy here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

from mpo_ros.ros import pipeline

PIPELINES = pipeline.PIPELINES
GRACE_S = 20.0


def parse(argv: list[str], name: str = pipeline.DEFAULT
          ) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Split ``name:=value`` arguments of pipeline ``name`` into arguments and node overrides."""
    pipe = PIPELINES[name]
    values = {k: d for k, (d, _) in pipe.arguments.items()}
    extra: dict[str, list[str]] = {spec.name: [] for spec in pipe.nodes}
    for arg in argv:
        key, sep, value = arg.partition(':=')
        if not sep:
            raise SystemExit(f'mpo-ros-launch: expected name:=value, got {arg!r}')
        node, dot, param = key.partition('.')
        if key in values:
            values[key] = value
        elif dot and node in extra and param:
            extra[node].append(f'{param}:={value}')
        else:
            raise SystemExit(f'mpo-ros-launch {name}: unknown argument {key!r} (arguments: '
                             f"{', '.join(values)}; or <node>.<param> with node in "
                             f"{', '.join(extra)})")
    if not values['config']:
        values['config'] = pipe.default_config()
    if not os.path.isfile(values['config']):
        raise SystemExit(f"mpo-ros-launch: config file {values['config']!r} not found")
    return values, extra


def executable(name: str) -> list[str]:
    """Return the command that runs console script ``name`` (next to sys.executable first)."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(here, os.X_OK):
        return [here]
    found = shutil.which(name)
    if found:
        return [found]
    return [sys.executable, '-m', f'mpo_ros.ros.{name}_node']


def commands(values: dict[str, str], extra: dict[str, list[str]],
             name: str = pipeline.DEFAULT) -> list[tuple[str, list]]:
    """Return (node name, argv) for each node of pipeline ``name``."""
    pipe = PIPELINES[name]
    out = []
    for spec in pipe.nodes:
        cmd = executable(spec.executable) + ['--ros-args', '-r', f'__node:={spec.name}']
        if values['namespace']:
            cmd += ['-r', f"__ns:=/{values['namespace'].strip('/')}"]
        for source, target in pipe.remappings(spec, values.__getitem__):
            cmd += ['-r', f"{source}:={''.join(target)}"]
        cmd += ['--params-file', os.path.abspath(values['config'])]
        for key, value in pipeline.node_parameters(
                spec, values['task'], values['use_sim_time']).items():
            cmd += ['-p', f'{key}:={value}']
        for item in extra[spec.name]:
            cmd += ['-p', item]
        out.append((spec.name, cmd))
    return out


def supervise(cmds: list[tuple[str, list]]) -> int:
    """Run the commands; stop all when one ends or on SIGINT / SIGTERM; return the status."""
    procs: dict[str, subprocess.Popen] = {}
    stopping = {'signal': None}

    def on_signal(signum, frame):
        stopping['signal'] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        for name, cmd in cmds:
            print(f'[mpo-ros-launch] starting {name}: {" ".join(cmd)}', flush=True)
            procs[name] = subprocess.Popen(cmd)
        while stopping['signal'] is None:
            ended = [(n, p.returncode) for n, p in procs.items() if p.poll() is not None]
            if ended:
                for name, code in ended:
                    print(f'[mpo-ros-launch] {name} exited with status {code}; stopping the '
                          f'others', flush=True)
                    status = status or code
                break
            time.sleep(0.2)
        if stopping['signal'] is not None:
            print(f"[mpo-ros-launch] signal {stopping['signal']}: stopping all nodes",
                  flush=True)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + GRACE_S
        for name, p in procs.items():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f'[mpo-ros-launch] {name} did not stop; killing it', flush=True)
                p.kill()
                p.wait()
        for s, handler in old.items():
            signal.signal(s, handler)
    if status == 0 and stopping['signal'] is not None:
        return 0
    return status if status >= 0 else 128 - status


def usage() -> str:
    """Return the help text: usage, then each pipeline with its arguments."""
    lines = [__doc__.strip().split('\n\n')[1], '', 'pipelines:']
    for pipe in PIPELINES.values():
        lines.append(f'  {pipe.name}: {pipe.summary}')
        lines.append(f"    nodes: {', '.join(spec.name for spec in pipe.nodes)}")
        for arg, (default, text) in pipe.arguments.items():
            lines.append(f'    {arg}:={default or "..."}  {text}')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``mpo-ros-launch``."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ('-h', '--help') or argv[0] not in PIPELINES:
        if argv and argv[0] not in ('-h', '--help'):
            print(f'mpo-ros-launch: unknown pipeline {argv[0]!r}', file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 0 if argv and argv[0] in ('-h', '--help') else 2
    values, extra = parse(argv[1:], argv[0])
    conflicts = pipeline.shared_parameter_conflicts(node_params(values['config'], extra))
    if conflicts:
        print(f"mpo-ros-launch: actor and learner must agree on {', '.join(conflicts)}",
              file=sys.stderr)
        return 2
    return supervise(commands(values, extra, argv[0]))


def node_params(config: str, extra: dict[str, list[str]]) -> dict[str, dict]:
    """Return {node: flat parameters} from the YAML ``config`` and the ``-p`` overrides."""
    import yaml
    with open(config) as f:
        data = yaml.safe_load(f) or {}

    def flatten(section: dict, prefix: str = '') -> dict:
        out = {}
        for key, value in section.items():
            out.update(flatten(value, f'{prefix}{key}.') if isinstance(value, dict)
                       else {prefix + key: value})
        return out

    params = {}
    for node, overrides in extra.items():
        section = data.get(f'/**/{node}', data.get(node, {})) or {}
        params[node] = flatten(section.get('ros__parameters', {}))
        for item in overrides:
            key, _, value = item.partition(':=')
            params[node][key] = yaml.safe_load(value)
    return params


if __name__ == '__main__':
    sys.exit(main())
