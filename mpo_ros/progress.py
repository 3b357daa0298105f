"""
Progress bookkeeping shared by both runners: evaluation rows, ``progress.csv``, log lines, plots.

The in-process trainer and the ROS learner node write the same columns: the run's counters
(:data:`BASE_FIELDS`) followed by the learner's own metric names (``loss/...``, ``dual/...``,
``kl/...``, ...), each averaged over the updates since the previous row. Neither runner knows
which algorithm produced the metrics.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
import time
from typing import Callable, Iterable, Sequence

import numpy as np

BASE_FIELDS = ('env_steps', 'episodes', 'eval_return', 'eval_return_std', 'train_return',
               'wall_time', 'updates', 'updates_per_s')


def window_means(window: Sequence[dict[str, float]], names: Iterable[str]
                 ) -> dict[str, float]:
    """Mean of each named metric over a window of updates (NaN for an empty window)."""
    return {key: float(np.mean([m[key] for m in window])) if window else float('nan')
            for key in names}


class ProgressLog:
    """
    One ``progress.csv`` (and its learning curve) for a run.

    With ``resume`` the rows of an existing file are read back and new rows are appended to
    it; a file whose columns differ (another algorithm) is renamed aside, never overwritten.
    Rows read back that are not finite numbers are left out of :attr:`rows` (and the plot).
    ``plot_period_s`` > 0 limits :meth:`plot` (unless forced) to once per period, so a burst
    of evaluations does not redraw the curve for each.
    """

    def __init__(self, out: Path, metric_names: Sequence[str], title: str,
                 resume: bool = False, plot_period_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Open ``out/progress.csv`` for the given learner metrics."""
        self.plot_period_s, self.clock = plot_period_s, clock
        self._plotted_at = -math.inf
        self._plotted_rows = 0
        self.dropped = 0                 # rows read back that were not finite numbers
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.path = self.out / 'progress.csv'
        self.metric_names = tuple(metric_names)
        self.fields = BASE_FIELDS + self.metric_names
        self.title = title
        self.rows: list[dict[str, float]] = []
        if resume and self.path.exists():
            with open(self.path, newline='') as f:
                reader = csv.DictReader(f)
                if tuple(reader.fieldnames or ()) == self.fields:
                    for r in reader:
                        row = _finite_row(r)
                        if row is None:
                            self.dropped += 1
                        else:
                            self.rows.append(row)
            if not self.rows:
                self.path.rename(self.path.with_suffix('.csv.old'))
        self._file = open(self.path, 'a' if self.rows else 'w', newline='')
        self._writer = csv.DictWriter(self._file, fieldnames=self.fields)
        if not self.rows:
            self._writer.writeheader()
            self._file.flush()

    def record(self, row: dict[str, float], window: Sequence[dict[str, float]]) -> dict:
        """Append ``row`` (the :data:`BASE_FIELDS`) with the window's metric means."""
        full = {**row, **window_means(window, self.metric_names)}
        self._writer.writerow({k: full[k] for k in self.fields})
        self._file.flush()
        self.rows.append(full)
        return full

    def plot(self, force: bool = True) -> Path | None:
        """
        Draw the learning curve of every row so far; return the PNG's path.

        Unless ``force``, nothing is drawn (None) within ``plot_period_s`` of the last drawing
        or when no row came since.
        """
        now = self.clock()
        if not force and (len(self.rows) == self._plotted_rows or
                          now - self._plotted_at < self.plot_period_s):
            return None
        path = self.out / 'learning_curve.png'
        plot_learning_curve(self.rows, path, self.title)
        self._plotted_at, self._plotted_rows = now, len(self.rows)
        return path

    def close(self) -> None:
        """Close the CSV file."""
        self._file.close()


def _finite_row(raw: dict[str, str | None]) -> dict[str, float] | None:
    """Return a CSV row as finite floats, or None if any value is missing or not finite."""
    try:
        row = {k: float(v) for k, v in raw.items()}
    except (TypeError, ValueError):
        return None
    required = ('env_steps', 'eval_return', 'eval_return_std')
    return row if all(math.isfinite(row.get(k, math.nan)) for k in required) else None


def format_row(row: dict[str, float], log_metrics: Sequence[str]) -> str:
    """One progress line: counters, returns, update rate and the learner's chosen metrics."""
    extra = ' '.join(f'{name} {row[name]:.3g}' for name in log_metrics if name in row)
    return (f"steps {int(row['env_steps']):>8d} | episodes {int(row['episodes']):>5d} | "
            f"eval {row['eval_return']:9.1f} ± {row['eval_return_std']:6.1f} | "
            f"train {row['train_return']:9.1f} | upd/s {row['updates_per_s']:6.1f} | "
            f"updates {int(row['updates'])} | {extra} | {row['wall_time']:6.0f}s")


def plot_learning_curve(rows: Sequence[dict], path: Path, title: str) -> None:
    """Plot evaluation return against environment steps, with the std band."""
    plot_curves({'eval return (deterministic)': (
        [r['env_steps'] for r in rows], [r['eval_return'] for r in rows],
        [r['eval_return_std'] for r in rows])}, path, title)


def plot_curves(curves: dict[str, tuple], path: Path, title: str,
                anchor: float | None = None) -> None:
    """Plot labelled ``(steps, returns[, stds])`` curves and an optional anchor line to PNG."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (x, y, *std) in curves.items():
        x, y = np.asarray(x), np.asarray(y)
        ax.plot(x, y, marker='o', ms=3, label=label)
        if std:
            s = np.asarray(std[0])
            ax.fill_between(x, y - s, y + s, alpha=0.25)
    if anchor is not None and math.isfinite(anchor):
        ax.axhline(anchor, color='k', ls='--', lw=1, label=f'anchor {anchor:g}')
    ax.set_xlabel('environment steps')
    ax.set_ylabel('return')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
