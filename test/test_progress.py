"""Progress CSV shared by both runners: columns, window means, resume, log line, plot."""

import csv
import math

import pytest

from mpo_ros.progress import BASE_FIELDS, format_row, ProgressLog, window_means

NAMES = ('loss/critic', 'dual/temperature')


def _row(steps):
    return {'env_steps': steps, 'episodes': 3, 'eval_return': -10.5, 'eval_return_std': 1.5,
            'train_return': -12.0, 'wall_time': 4.0, 'updates': 7, 'updates_per_s': 2.0}


def test_columns_and_window_means(tmp_path):
    log = ProgressLog(tmp_path, NAMES, 'title')
    window = [{'loss/critic': 1.0, 'dual/temperature': 0.5, 'perf/x': 9.0},
              {'loss/critic': 3.0, 'dual/temperature': 1.5, 'perf/x': 9.0}]
    row = log.record(_row(100), window)
    log.record(_row(200), [])
    log.close()
    assert row['loss/critic'] == 2.0 and row['dual/temperature'] == 1.0
    rows = list(csv.DictReader(open(tmp_path / 'progress.csv')))
    assert tuple(rows[0]) == BASE_FIELDS + NAMES           # only the learner's named metrics
    assert float(rows[0]['loss/critic']) == 2.0
    assert math.isnan(float(rows[1]['loss/critic']))       # no updates in that window
    assert window_means([], NAMES) == {k: pytest.approx(float('nan'), nan_ok=True)
                                       for k in NAMES}


def test_resume_appends_and_other_columns_are_set_aside(tmp_path):
    first = ProgressLog(tmp_path, NAMES, 't')
    first.record(_row(100), [])
    first.close()
    resumed = ProgressLog(tmp_path, NAMES, 't', resume=True)
    assert [r['env_steps'] for r in resumed.rows] == [100.0]
    resumed.record(_row(200), [])
    resumed.close()
    assert [int(r['env_steps']) for r in csv.DictReader(open(tmp_path / 'progress.csv'))] == \
        [100, 200]
    other = ProgressLog(tmp_path, ('loss/value',), 't', resume=True)   # another algorithm
    other.close()
    assert other.rows == []
    assert (tmp_path / 'progress.csv.old').exists()
    assert tuple(next(csv.reader(open(tmp_path / 'progress.csv')))) == \
        BASE_FIELDS + ('loss/value',)
    fresh = ProgressLog(tmp_path, ('loss/value',), 't', resume=False)
    fresh.close()
    assert fresh.rows == []


def test_log_line_and_plot(tmp_path):
    log = ProgressLog(tmp_path, NAMES, 'a title')
    row = log.record(_row(100), [{'loss/critic': 1.0, 'dual/temperature': 0.25}])
    line = format_row(row, ('dual/temperature',))
    assert 'steps      100' in line and 'dual/temperature 0.25' in line
    assert 'critic' not in line
    assert log.plot().read_bytes()[:4] == b'\x89PNG'
    log.close()


def test_plot_is_rate_limited_unless_forced_and_bad_rows_are_not_read_back(tmp_path):
    now = [0.0]
    log = ProgressLog(tmp_path, NAMES, 't', plot_period_s=30.0, clock=lambda: now[0])
    log.record(_row(100), [])
    assert log.plot(force=False) is not None                # the first one is drawn
    drawn = (tmp_path / 'learning_curve.png').stat().st_mtime_ns
    for steps in range(200, 2000, 100):                      # a burst of evaluations
        log.record(_row(steps), [])
        now[0] += 1.0
        assert log.plot(force=False) is None
    assert (tmp_path / 'learning_curve.png').stat().st_mtime_ns == drawn
    now[0] += 12.0
    assert log.plot(force=False) is not None                 # once the period is over
    assert log.plot(force=False) is None                     # nothing new since
    assert log.plot() is not None                            # the end: always
    with open(tmp_path / 'progress.csv', 'a') as f:          # rows a hostile peer wrote
        f.write('5,1,inf,1,0,1,1,1,0,0\n6,1,x,1,0,1,1,1,0,0\n')
    log.close()
    resumed = ProgressLog(tmp_path, NAMES, 't', resume=True)
    assert resumed.dropped == 2 and len(resumed.rows) == 19
    resumed.plot()
    resumed.close()
