"""The in-process trainer end to end on a short run, and its command line."""

import csv
import json
import subprocess
import sys

import pytest

from mpo_ros.core import checkpoint
from mpo_ros.trainer import main


def test_short_run_writes_all_outputs(tmp_path):
    out = tmp_path / 'run'
    rc = main(['--task', 'gym:Pendulum-v1', '--steps', '400', '--seed', '3', '--out', str(out),
               '--eval_every', '200', '--eval_episodes', '1', '--final_eval_episodes', '2',
               '--replay.min_size', '100', '--replay.batch_size', '8',
               '--network.policy_hidden', '16', '16', '--network.critic_hidden', '16', '16'])
    assert rc == 0
    rows = list(csv.DictReader(open(out / 'progress.csv')))
    assert [int(r['env_steps']) for r in rows] == [200, 400]
    assert int(rows[-1]['updates']) == 301 and float(rows[-1]['updates_per_s']) > 0
    summary = json.loads((out / 'summary.json').read_text())
    assert len(summary['final_eval_returns']) == 2
    assert summary['final_eval_return'] == pytest.approx(float(rows[-1]['eval_return']))
    ckpt = checkpoint.load(out / 'checkpoint.pt')
    assert ckpt['env_steps'] == 400 and ckpt['learner']['num_steps'] == 301
    assert ckpt['replay']['meta']['size'] == 400
    assert (out / 'learning_curve.png').read_bytes()[:4] == b'\x89PNG'


def test_cli_rejects_bad_values_with_the_field_name(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'mpo_ros.trainer', '--mpo.epsilon', '-1',
                           '--out', str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and 'MPOConfig.epsilon' in proc.stderr
    proc = subprocess.run([sys.executable, '-m', 'mpo_ros.trainer', '--task', 'gym:Nope-v9',
                           '--steps', '10', '--out', str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and 'Nope-v9' in proc.stderr


def test_evaluate_checkpoint_reproduces_the_final_evaluation(tmp_path):
    """The saved policy, evaluated with the trainer's eval seed, gives the same returns."""
    from mpo_ros.evaluate import evaluate_checkpoint, main as eval_main
    out = tmp_path / 'run'
    main(['--task', 'gym:Pendulum-v1', '--steps', '300', '--seed', '5', '--out', str(out),
          '--eval_every', '300', '--final_eval_episodes', '2', '--replay.min_size', '100',
          '--replay.batch_size', '8', '--network.policy_hidden', '16',
          '--network.critic_hidden', '16'])
    summary = json.loads((out / 'summary.json').read_text())
    result = evaluate_checkpoint(out / 'checkpoint.pt', 2, seed=5 + 10_000)
    assert result['env_steps'] == 300
    assert result['returns'] == pytest.approx(summary['final_eval_returns'], rel=1e-6)
    assert eval_main([str(tmp_path / 'missing.pt')]) == 2
