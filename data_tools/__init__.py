"""Thin CLIs over pure, unit-tested functions: FASTA/BED -> windows -> MDS shards (see `fasta_to_mds`).

Not a published package (the repository root is on the path). Keep imports here cheap.
"""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable


class InputError(ValueError):
    """Bad user input (a file, an argument). The message is one line and names the file and line where known."""


def os_error_message(e: OSError) -> str:
    """`PATH: reason` of an OSError, one line."""
    where = f"{e.filename}: " if e.filename is not None else ""
    return f"{where}{e.strerror or e}"


def run_cli(body: Callable[[], int], *, errors: tuple[type[BaseException], ...] = (), interrupted: str = "") -> int:
    """Run a CLI `body` so that every expected failure ends in one `error: ...` line on stderr and exit status 2.

    Caught: `InputError`, `errors`, and OSError (disk full, permission denied: `PATH: reason`). For the duration,
    SIGTERM and SIGINT raise KeyboardInterrupt (whatever handlers the process had, e.g. a Composer Trainer's, which
    exit at once), so that the tools' cleanup (temporary output removed) runs for a `kill` or a job scheduler's stop
    as it does for Ctrl-C; an interruption prints `error: interrupted` and `interrupted` (what was left) and returns
    130. The previous handlers are put back afterwards.
    """
    def on_term(signum, frame):
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there only
    previous = {}
    if main_thread:
        previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, on_term),
                    signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    try:
        return body()
    except (InputError, *errors) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {os_error_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"error: interrupted{'; ' + interrupted if interrupted else ''}", file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
