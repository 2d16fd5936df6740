"""Ctrl-C and a scheduler's SIGTERM as a KeyboardInterrupt, so cleanup and summaries run whatever handlers are set."""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def signals_raise_keyboard_interrupt() -> Iterator[None]:
    """For the duration, SIGINT and SIGTERM raise KeyboardInterrupt in the main thread, whatever handlers the
    process had (importing Composer installs ones that `sys.exit` at once, skipping `finally` cleanup that is not on
    the stack, summaries and one-line messages); the previous handlers are put back afterwards. Outside the main
    thread (where handlers cannot be set) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
