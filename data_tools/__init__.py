"""Thin CLIs over pure, unit-tested functions: FASTA/BED -> windows -> MDS shards (see `fasta_to_mds`).

Not a published package (the repository root is on the path). Keep imports here cheap.
"""
from __future__ import annotations

import sys
from collections.abc import Callable


class InputError(ValueError):
    """Bad user input (a file, an argument). The message is one line and names the file and line where known."""


def os_error_message(e: OSError) -> str:
    """`PATH: reason` of an OSError, one line."""
    where = f"{e.filename}: " if e.filename is not None else ""
    return f"{where}{e.strerror or e}"


def run_cli(body: Callable[[], int], *, errors: tuple[type[BaseException], ...] = (), interrupted: str = "") -> int:
    """Run a CLI `body` so that every expected failure ends in one `error: ...` line on stderr and exit status 2.

    Caught: `InputError`, `errors`, and OSError (disk full, permission denied: `PATH: reason`). SIGTERM and SIGINT
    raise KeyboardInterrupt for the duration (`dnax.interrupts`), so that the tools' cleanup (temporary output
    removed) runs for a `kill` or a job scheduler's stop as it does for Ctrl-C; an interruption prints
    `error: interrupted` and `interrupted` (what was left) and returns 130.
    """
    from dnax.interrupts import signals_raise_keyboard_interrupt

    try:
        with signals_raise_keyboard_interrupt():
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
