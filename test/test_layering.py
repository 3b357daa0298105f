"""
Layering rules read from the source with ``ast``: who may import what.

- no ``mpo_ros.ros`` module imports the in-process trainer (the two runners sit side by side);
- the runners (trainer, learner node) and everything outside ``mpo_ros.core.learners`` reach
  learners only through the registry package, never a concrete algorithm module;
- no module imports another module's underscore (private) names.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / 'mpo_ros'


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """Return ``(module, [imported names])`` for every import statement of a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def _modules(under: Path = PACKAGE) -> list[Path]:
    return sorted(p for p in under.rglob('*.py') if '__pycache__' not in p.parts)


def _module_name(path: Path) -> str:
    if not path.is_relative_to(ROOT):
        return path.stem
    return '.'.join(path.relative_to(ROOT).with_suffix('').parts).removesuffix('.__init__')


def trainer_importers(files: list[Path]) -> list[str]:
    """Files that import ``mpo_ros.trainer`` (or names from it)."""
    return [str(f) for f in files for mod, names in _imports(f)
            if mod == 'mpo_ros.trainer' or (mod == 'mpo_ros' and 'trainer' in names)]


def concrete_learner_importers(files: list[Path]) -> list[str]:
    """Files outside the learners package that import an algorithm module directly."""
    bad = []
    for f in files:
        if _module_name(f).startswith('mpo_ros.core.learners'):
            continue
        for mod, names in _imports(f):
            direct = mod.startswith('mpo_ros.core.learners.') and mod != \
                'mpo_ros.core.learners.base'
            via_package = mod == 'mpo_ros.core.learners' and any(
                n not in ('base',) and n[0].islower() and n not in _registry_api() for n in names)
            if direct or via_package:
                bad.append(f'{f}: {mod} {names}')
    return bad


def _registry_api() -> set[str]:
    import mpo_ros.core.learners as registry
    return set(registry.__all__)


def private_importers(files: list[Path]) -> list[str]:
    """``from X import _name`` where X is another module (relative imports included)."""
    return [f'{f}: from {mod} import {n}' for f in files for mod, names in _imports(f)
            for n in names if n.startswith('_') and not n.startswith('__')]


def test_no_ros_module_imports_the_trainer():
    assert trainer_importers(_modules(PACKAGE / 'ros')) == []


def test_runners_reach_learners_only_through_the_registry():
    files = _modules(PACKAGE) + _modules(ROOT / 'bench')
    assert concrete_learner_importers(files) == []
    # The runners do use the registry.
    for runner in (PACKAGE / 'trainer.py', PACKAGE / 'ros' / 'learner_node.py'):
        assert ('mpo_ros.core', ['learners']) in _imports(runner), runner


def test_no_module_imports_private_names():
    assert private_importers(_modules(PACKAGE) + _modules(ROOT / 'bench')) == []


@pytest.mark.parametrize('source, check', [
    ('from mpo_ros.trainer import plot_curves\n', trainer_importers),
    ('from mpo_ros.core.learners.mpo import MPOLearner\n', concrete_learner_importers),
    ('from mpo_ros.core.learners import mpo\n', concrete_learner_importers),
    ('from mpo_ros.core.config import _f\n', private_importers),
])
def test_checks_flag_violations(tmp_path, source, check):
    """Guard against vacuous passes: each rule flags a file that breaks it."""
    path = tmp_path / 'bad.py'
    path.write_text(source)
    assert check([path]) != []


def test_the_actor_node_is_a_thin_shell():
    """The robot logic lives in mpo_ros.robot; the node stays under 300 lines."""
    lines = (PACKAGE / 'ros' / 'actor_node.py').read_text().splitlines()
    assert len(lines) < 300, len(lines)
