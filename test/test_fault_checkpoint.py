"""Checkpoint rotation, corrupt-file fallback and safe loading (mpo_ros.core.checkpoint)."""

import os

from mpo_ros.core import checkpoint
import pytest
import torch


UNPICKLED = []


class Payload:
    """A plain class: unpickling it would call __setstate__ (and record that it ran)."""

    def __setstate__(self, state):
        UNPICKLED.append(state)


def _state(n):
    return {'updates': n, 'weights': torch.full((4,), float(n))}


def test_rotation_keeps_the_newest_and_links_the_fixed_name(tmp_path):
    ckpt_dir, link = tmp_path / 'ckpts', tmp_path / 'checkpoint.pt'
    (ckpt_dir).mkdir()
    stale = ckpt_dir / 'checkpoint_000000000005.pt.abc123.tmp'     # from a killed save
    stale.write_bytes(b'half a file')
    for n in (10, 20, 30, 40):
        path = checkpoint.save_rotating(_state(n), ckpt_dir, n, keep=2, link=link)
    assert path.name == 'checkpoint_000000000040.pt'
    assert [p.name for p in checkpoint.list_checkpoints(ckpt_dir)] == [
        'checkpoint_000000000030.pt', 'checkpoint_000000000040.pt']
    assert not stale.exists()
    assert os.path.samefile(link, path)
    assert checkpoint.load(link)['updates'] == 40
    assert not list(tmp_path.glob('*.tmp')) and not list(ckpt_dir.glob('*.tmp'))


def test_names_sort_by_update_count_not_text(tmp_path):
    for n in (999, 1000, 5):
        checkpoint.save_rotating(_state(n), tmp_path, n, keep=10)
    assert [checkpoint.load(p)['updates'] for p in checkpoint.list_checkpoints(tmp_path)] == \
        [5, 999, 1000]


@pytest.mark.parametrize('damage', ['truncate', 'garbage', 'empty'])
def test_a_damaged_newest_file_falls_back_to_the_previous(tmp_path, damage):
    for n in (1, 2, 3):
        checkpoint.save_rotating(_state(n), tmp_path, n, keep=5)
    newest = checkpoint.list_checkpoints(tmp_path)[-1]
    data = newest.read_bytes()
    newest.write_bytes({'truncate': data[:len(data) // 2], 'garbage': os.urandom(len(data)),
                        'empty': b''}[damage])
    skipped = []
    path, state = checkpoint.load_latest(tmp_path, on_skip=lambda p, why: skipped.append(
        (p, why)))
    assert state['updates'] == 2 and path.name == 'checkpoint_000000000002.pt'
    assert [p for p, _ in skipped] == [newest] and skipped[0][1]


def test_validation_failure_also_falls_back(tmp_path):
    checkpoint.save_rotating(_state(1), tmp_path, 1, keep=5)
    checkpoint.save_rotating({'something': 'else'}, tmp_path, 2, keep=5)

    def validate(state):
        if 'updates' not in state:
            raise ValueError('not a learner checkpoint')

    reasons = []
    _, state = checkpoint.load_latest(tmp_path, validate, lambda p, why: reasons.append(why))
    assert state['updates'] == 1 and 'not a learner checkpoint' in reasons[0]


def test_arbitrary_objects_are_never_unpickled(tmp_path):
    """A file holding a pickled class instance is refused by weights_only loading."""
    checkpoint.save_rotating(_state(1), tmp_path, 1, keep=5)
    evil = Payload()
    evil.marker = 1
    torch.save({'payload': evil}, checkpoint.checkpoint_path(tmp_path, 2))
    assert torch.load(checkpoint.checkpoint_path(tmp_path, 2), weights_only=False)
    assert UNPICKLED == [{'marker': 1}]           # the payload really is a pickled object
    UNPICKLED.clear()
    with pytest.raises(Exception, match='(?i)weights_only|unsupported|global'):
        checkpoint.load(checkpoint.checkpoint_path(tmp_path, 2))
    reasons = []
    _, state = checkpoint.load_latest(tmp_path, on_skip=lambda p, why: reasons.append(why))
    assert state['updates'] == 1 and len(reasons) == 1
    assert UNPICKLED == []


def test_empty_or_missing_directory_gives_nothing(tmp_path):
    assert checkpoint.load_latest(tmp_path / 'missing') == (None, None)
    assert checkpoint.load_latest(tmp_path) == (None, None)
