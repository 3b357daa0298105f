"""
Atomic checkpoint files that load without unpickling arbitrary objects.

A checkpoint directory holds ``checkpoint_<updates>.pt`` files (zero-padded, so names sort
like numbers), each written atomically; :func:`save_rotating` keeps the newest ``keep`` and
:func:`load_latest` returns the newest one that loads, skipping (and reporting) corrupt or
truncated files, so a crash while writing or a damaged disk block costs one checkpoint, not
the run.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

PATTERN = re.compile(r'^checkpoint_(\d+)\.pt$')


def save_atomic(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    """
    Write ``obj`` with torch.save to a temporary file beside ``path``, fsync, then rename.

    A crash at any moment leaves either the previous file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + '.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain containers only)."""
    return torch.load(path, map_location='cpu', weights_only=True)


def checkpoint_path(directory: str | os.PathLike, updates: int) -> Path:
    """Return ``directory/checkpoint_<updates>.pt`` (12 digits, so names sort numerically)."""
    return Path(directory) / f'checkpoint_{int(updates):012d}.pt'


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Return the checkpoint files of ``directory``, oldest first (temporary files excluded)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir()
             if (m := PATTERN.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def save_rotating(obj: dict[str, Any], directory: str | os.PathLike, updates: int,
                  keep: int, link: str | os.PathLike | None = None) -> Path:
    """
    Save ``obj`` as ``checkpoint_<updates>.pt`` in ``directory`` and keep the newest ``keep``.

    Stale temporary files of an interrupted save are removed. With ``link``, that path is made
    (atomically) a hard link to the new file, or a copy where links are impossible, so tools
    that read one fixed file name (``out_dir/checkpoint.pt``) see the newest checkpoint.
    """
    if keep < 1:
        raise ValueError(f'keep must be >= 1, got {keep}')
    directory = Path(directory)
    path = save_atomic(obj, checkpoint_path(directory, updates))
    for old in list_checkpoints(directory)[:-keep]:
        if old != path:
            old.unlink(missing_ok=True)
    for tmp in directory.glob('checkpoint_*.pt.*.tmp'):
        if not tmp.name.startswith(path.name + '.'):
            tmp.unlink(missing_ok=True)
    if link is not None:
        _link_atomic(path, Path(link))
    return path


def _link_atomic(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f'{link.name}.{os.getpid()}.link.tmp')
    tmp.unlink(missing_ok=True)
    try:
        os.link(target, tmp)
    except OSError:                                  # another filesystem: copy instead
        with open(target, 'rb') as src, open(tmp, 'wb') as dst:
            while block := src.read(1 << 20):
                dst.write(block)
            dst.flush()
            os.fsync(dst.fileno())
    os.replace(tmp, link)


def load_latest(directory: str | os.PathLike,
                validate: Callable[[dict[str, Any]], None] | None = None,
                on_skip: Callable[[Path, str], None] | None = None,
                candidates: Iterable[Path] | None = None
                ) -> tuple[Path, dict[str, Any]] | tuple[None, None]:
    """
    Return (path, state) of the newest checkpoint that loads and passes ``validate``.

    A file that fails to load (truncated, corrupt, not a safe checkpoint) or that ``validate``
    rejects (raising any exception) is skipped with ``on_skip(path, reason)``; the next older
    one is tried. (None, None) when nothing usable is found.
    """
    paths = list(candidates) if candidates is not None else list_checkpoints(directory)
    for path in reversed(paths):
        try:
            state = load(path)
            if not isinstance(state, dict):
                raise ValueError(f'holds a {type(state).__name__}, not a dict')
            if validate is not None:
                validate(state)
        except Exception as exc:  # noqa: B902 - any defect means: try the previous file
            if on_skip is not None:
                on_skip(path, f'{type(exc).__name__}: {str(exc).strip()[:300]}')
            continue
        return path, state
    return None, None
