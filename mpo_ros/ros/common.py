"""Shared node plumbing: the console-script main loop and QoS profiles."""

from __future__ import annotations

import signal
import sys
from typing import Callable

from mpo_ros.ros.parameters import ParameterError
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

# Lockstep data must not be dropped: reliable, generous depth.
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                      history=HistoryPolicy.KEEP_LAST)
# The latest value matters to late joiners (policy weights, step budget).
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL,
                     history=HistoryPolicy.KEEP_LAST)


class StartupError(RuntimeError):
    """The node cannot start (bad task, bad configuration); the message says why."""


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f'signal {signum}')


def run(make_node: Callable[[], Node], prog: str, args: list[str] | None = None) -> int:
    """
    Init rclpy, build the node, spin until Ctrl-C / SIGTERM / shutdown; return an exit code.

    A ParameterError or StartupError while building the node prints the reason (naming the
    parameter) to stderr and returns 2, so a bad configuration stops the node at start.
    SIGINT and SIGTERM are handled here rather than by rclpy (whose handler shuts the context
    down at once), so ``close()`` still runs with a live context: the actor can publish its
    zero command and the learner can checkpoint before the node goes.
    """
    rclpy.init(args=args if args is not None else sys.argv,
               signal_handler_options=SignalHandlerOptions.NO)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    node = None
    code = 0
    try:
        try:
            node = make_node()
        except (ParameterError, StartupError) as exc:
            print(f'{prog}: {exc}', file=sys.stderr, flush=True)
            return 2
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        # A node ends itself by setting ``done`` (e.g. the learner after max_env_steps).
        while rclpy.ok() and not getattr(node, 'done', False):
            executor.spin_once(timeout_sec=0.2)
        code = getattr(node, 'exit_code', 0)
    except (KeyboardInterrupt, ExternalShutdownException):
        code = getattr(node, 'exit_code', 0) if node is not None else 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):   # a second one must not break cleanup
            signal.signal(signum, signal.SIG_IGN)
        if node is not None:
            close = getattr(node, 'close', None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code
