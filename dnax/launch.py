"""`dnax-launch`: Composer's multi-process launcher, for dnax runs.

    dnax-launch -n 8 -m dnax.run experiments.hg38_xlstm            # 8 processes on this node
    dnax-launch -n 8 --world_size 16 --node_rank 0 --master_addr HOST -m dnax.run experiments.hg38_xlstm

It is `composer` (composer.cli.launcher) under a dnax name: the same flags (`-n/--nproc`, `--world_size`,
`--node_rank`, `--master_addr`, `--master_port`, `-m` for a module) and environment variables. On CPU machines the
torchvision stand-in (requirements/torchvision-stub) is an installed package, so every child process imports
composer cleanly. Two things differ from `composer`:

- a bad launcher argument (`-n 0`, a `--node_rank` without `--world_size`) is one `dnax-launch: error: ...` line and
  exit status 2, not a traceback;
- the exit status is that of the rank that failed first (e.g. 2 for a bad override), 128 + N for a rank killed by
  signal N, 130 after Ctrl-C (143 after SIGTERM), with one line naming the rank; composer returns the code of the
  lowest rank that is not 0, usually -15 (exit status 241) of a rank it stopped itself after another failed.
"""
from __future__ import annotations

import signal
import subprocess
import sys

PROG = "dnax-launch"


def first_failure_in(codes: dict[int, int | None]) -> tuple[int, int] | None:
    """The lowest rank with a non-zero return code, as `(rank, returncode)`; None if none failed (yet)."""
    return next(((rank, code) for rank, code in codes.items() if code), None)


def exit_status(first_failure: tuple[int, int] | None, stopped: int | None, codes: dict[int, int | None]) -> int:
    """The launcher's exit status from the first rank to fail (`(rank, returncode)`, seen before the others were
    stopped), the status of a launcher stopped by a signal (130 Ctrl-C, 143 SIGTERM; None if it was not), and every
    rank's final return code (None: still running)."""
    if any(code is None for code in codes.values()):
        return 1
    if first_failure is None and stopped is None:
        first_failure = first_failure_in(codes)
    if first_failure is None:
        return stopped or 0
    code = first_failure[1]
    return code if code > 0 else 128 - code


def _describe(rank: int, code: int) -> str:
    if code < 0:
        try:
            return f"rank {rank} was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"rank {rank} was killed by signal {-code}"
    return f"rank {rank} failed with exit code {code}"


def main() -> int:
    from composer.cli import launcher

    parse_args, monitor, aggregate = (launcher._parse_args, launcher._monitor_processes,
                                      launcher._aggregate_process_returncode)
    seen: dict = {"failure": None, "stopped": None}

    def checked_args():
        try:
            return parse_args()
        except ValueError as e:  # composer's own checks of -n, --world_size, --node_rank, ...
            print(f"{PROG}: error: {e}", file=sys.stderr)
            raise SystemExit(2) from None

    def watched(processes: dict[int, subprocess.Popen]) -> None:
        try:  # returns on the first failed rank, when all ranks are done, or after Ctrl-C
            monitor(processes)
        except SystemExit as e:  # composer.core.engine turns SIGINT / SIGTERM into SystemExit(128 + signal)
            seen["stopped"] = e.code if isinstance(e.code, int) else 1
            return
        codes = {rank: p.poll() for rank, p in processes.items()}
        seen["failure"] = first_failure_in(codes)
        if seen["failure"] is None and any(code is None for code in codes.values()):
            seen["stopped"] = 130  # composer's monitor caught a KeyboardInterrupt

    def status(processes: dict[int, subprocess.Popen]) -> int:
        codes = {rank: p.poll() for rank, p in processes.items()}
        code = exit_status(seen["failure"], seen["stopped"], codes)
        failure = seen["failure"] or first_failure_in(codes)
        stuck = [rank for rank, c in codes.items() if c is None]
        if stuck:
            print(f"{PROG}: rank(s) {stuck} did not exit (exit status {code})", file=sys.stderr)
        elif seen["stopped"] and seen["failure"] is None:
            print(f"{PROG}: interrupted; the ranks were stopped (exit status {code})", file=sys.stderr)
        elif failure:
            stopped = any(-c in (signal.SIGTERM, signal.SIGKILL) for r, c in codes.items() if r != failure[0])
            print(f"{PROG}: {_describe(*failure)}{'; the other ranks were stopped' if stopped else ''} "
                  f"(exit status {code})", file=sys.stderr)
        return code

    sys.argv[0] = PROG  # the name in usage lines and argparse errors
    launcher._parse_args, launcher._monitor_processes, launcher._aggregate_process_returncode = (
        checked_args, watched, status)
    try:
        return launcher.main() or 0
    finally:
        launcher._parse_args, launcher._monitor_processes, launcher._aggregate_process_returncode = (
            parse_args, monitor, aggregate)


if __name__ == "__main__":
    sys.exit(main())
