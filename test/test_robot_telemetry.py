"""The actor's rejection counts, log throttling and latency report, without ROS."""

import math
import time

import numpy as np

from mpo_ros.robot.telemetry import Latency, Rejections, Throttle


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_throttle_passes_each_key_once_per_period_and_stays_bounded():
    clock = FakeClock()
    th = Throttle(period_s=5.0, max_keys=3, clock=clock)
    assert th.allow('a') and not th.allow('a') and th.allow('b')
    clock.t += 5.0
    assert not th.allow('a')           # exactly one period later: still quiet
    clock.t += 0.01
    assert th.allow('a')
    for k in 'cdef':
        th.allow(k)
    assert len(th._last) <= 4          # cleared past max_keys, whatever arrives


def test_rejections_count_every_input_but_log_one_line_per_reason_and_period():
    clock = FakeClock()
    rej = Rejections(Throttle(5.0, clock=clock))
    first = rej.reject('step', 'task step rejected: sequence 17 too far')
    assert first == 'task step rejected: sequence 17 too far (1 step input(s) rejected so far)'
    assert rej.reject('step', 'task step rejected: sequence 99 too far') is None   # same reason
    assert rej.reject('step', 'task step rejected: NaN') is not None               # new reason
    clock.t += 6.0
    assert rej.reject('step', 'task step rejected: sequence 5 too far').startswith(
        'task step rejected: sequence 5 too far (4 step')
    assert rej.counts['step'] == 4


def test_latency_report_percentiles_rate_and_saved_pairs(tmp_path):
    lat = Latency(keep_all=True)
    now = time.perf_counter()
    for offset in (0.001, 0.002, 0.003):
        lat.acted(now - offset, True)
    lat.acted(now - 1.0, False)        # no command: not a latency
    lat.window_start -= 2.0            # pretend the window lasted about 2 s
    p50, p99, n, rate = lat.report(steps_seen=10)
    assert n == 3 and 2.0 <= p50 < 3.0 and 2.9 <= p99 < 4.5
    assert 4.0 < rate <= 5.0           # 10 steps in ~2 s
    p50, p99, n, rate = lat.report(steps_seen=10)
    assert math.isnan(p50) and n == 0 and rate == 0.0
    lat.save(str(tmp_path / 'lat.npy'))
    saved = np.load(tmp_path / 'lat.npy')
    assert saved.shape == (3, 2) and np.all(saved[:, 1] > 0.0009)
