"""The scheduler's stop on SIGINT/SIGTERM: its handler takes no lock. A handler runs in the
main thread between any two of its steps; ``Event.set`` takes the event's lock, which the main
thread holds for a moment on every ``stop.wait()`` of its loop, so a handler setting the event
itself could wait on its own thread forever (gunicorn's worker had the same kind of bug with
its thread pool: tests/unit/test_worker.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_CAUGHT_HOLDING_THE_LOCK = """
import os, signal, sys, threading, time
from engine.scheduler.runner import stop_on_signals

stop = threading.Event()
stop_on_signals(stop, (signal.SIGINT, signal.SIGTERM))
with stop._cond:  # what the main thread holds inside stop.wait() for a moment
    os.kill(os.getpid(), signal.{sig})
    time.sleep(0.2)  # the handler has run by now
print("stopped" if stop.wait(5) else "not stopped", flush=True)
os.kill(os.getpid(), signal.{sig})  # a second one changes nothing
print("again", flush=True)
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_caught_while_the_loop_holds_the_events_lock_still_stops_it(sig: str) -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CAUGHT_HOLDING_THE_LOCK.format(sig=sig)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:  # run() kills it
        pytest.fail("the handler waited on the event's lock")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["stopped", "again"], done.stdout + done.stderr


def test_only_the_given_signals_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    import signal
    import threading

    from engine.scheduler import runner

    installed: dict[int, object] = {}
    monkeypatch.setattr(signal, "signal", lambda sig, handler: installed.__setitem__(sig, handler))
    runner.stop_on_signals(threading.Event(), (signal.SIGTERM,))
    assert list(installed) == [signal.SIGTERM]
