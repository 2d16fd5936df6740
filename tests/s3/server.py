"""A real S3 server on 127.0.0.1 for tests: `s3rver` (npm, a Node.js implementation of the S3 REST API).

`make test` installs it (`npm install --prefix .cache/s3rver s3rver@3.7.1`); `$DNAX_S3RVER` may name another
executable. Credentials are s3rver's fixed account: access key and secret `S3RVER`.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = ROOT / ".cache" / "s3rver" / "node_modules" / ".bin" / "s3rver"
INSTALL_HINT = ("install it with `make test` (or `npm install --prefix .cache/s3rver s3rver@3.7.1` in the "
                "repository root), or set DNAX_S3RVER to an s3rver executable")
CREDENTIALS = "S3RVER"
REGION = "us-east-1"


def s3rver_executable() -> str:
    """The s3rver executable: `$DNAX_S3RVER`, else the one `make test` installs; RuntimeError with how to install."""
    exe = os.environ.get("DNAX_S3RVER") or str(INSTALLED)
    if not (Path(exe).is_file() and os.access(exe, os.X_OK)):
        raise RuntimeError(f"the S3 tests need s3rver, not found at {exe}: {INSTALL_HINT}")
    if shutil.which("node") is None and not os.environ.get("DNAX_S3RVER"):
        raise RuntimeError(f"s3rver needs Node.js (`node`) on PATH: {INSTALL_HINT}")
    return exe


class S3rver:
    """One s3rver process serving `directory` (its buckets persist there across `stop()`/`start()`)."""

    def __init__(self, directory: Path, port: int = 0):
        self.directory, self.port = Path(directory), port
        self.proc: subprocess.Popen | None = None
        self.log = self.directory.parent / f"{self.directory.name}.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> float:
        """Start the server (on the port it had, if restarted) and wait until it answers; returns seconds taken."""
        t0 = time.perf_counter()
        self.directory.mkdir(parents=True, exist_ok=True)
        start = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:  # its output (the "listening on" line, errors) goes to the log
            self.proc = subprocess.Popen([s3rver_executable(), "--silent", "--address", "127.0.0.1", "--port",
                                          str(self.port), "--directory", str(self.directory)],
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        while True:
            with open(self.log, "rb") as f:
                f.seek(start)
                m = re.search(rb"listening on [\d.]+:(\d+)", f.read())
            if m:
                self.port = int(m[1])
                break
            if self.proc.poll() is not None or time.perf_counter() - t0 > timeout:
                self.stop()
                tail = self.log.read_bytes()[start:].decode(errors="replace").strip().splitlines()[-1:]
                raise RuntimeError(f"s3rver did not start: {' '.join(tail) or 'no output'} (log: {self.log})")
            time.sleep(0.02)
        return time.perf_counter() - t0

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL); the data directory stays."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
