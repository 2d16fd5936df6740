"""Resumable, verified HTTP(S) downloads into a local file (standard library only: urllib).

`fetch(url, dest)` writes `<dest>.part`, resumes it with HTTP Range requests after an interruption (also across
runs), checks the size against the server's Content-Length / Content-Range total (or a known size), checks a known
sha256, and renames it into place. Where no checksum is published, the sha256 of the finished download is recorded
in a sidecar `<dest>.sha256` (sha256sum format) and every later `fetch` re-hashes the file against it before
using it; a file placed by hand without a sidecar is trusted once and its sidecar written. Errors are
`DownloadError`, one line naming the URL or file and what to do (offline: download it elsewhere and place it at
`dest`).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

CHUNK = 1 << 20


class DownloadError(ValueError):
    """A download failed (network, size or checksum); one line, with what to do."""


def sha256_file(path: str | Path, progress: bool = False) -> str:
    """The file's sha256 (hex); with `progress`, a bar once hashing has taken over 2 s (large files only)."""
    h = hashlib.sha256()
    path = Path(path)
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, delay=2.0,
                                      desc=f"sha256 {path.name}", disable=not progress) as bar:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_sidecar(path: Path) -> str | None:
    side = sidecar(path)
    if not side.exists():
        return None
    words = side.read_text().split()
    return words[0].lower() if words else None


def _check(path: Path, size: int | None, sha256: str | None, source: str, progress: bool) -> str:
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise DownloadError(f"{path}: size {actual_size} bytes, expected {size}; delete it and download again")
    digest = sha256_file(path, progress)
    if sha256 is not None and digest != sha256.lower():
        raise DownloadError(f"{path}: sha256 {digest} does not match the {source} {sha256}; the file is "
                            "corrupted: delete it (and its .sha256) and download again")
    return digest


def verify(path: str | Path, *, size: int | None = None, sha256: str | None = None, progress: bool = False) -> str:
    """Check a finished file against the known size/sha256, else against its sidecar; write the sidecar if absent.
    Returns the sha256. DownloadError (one line, with what to do) on a mismatch."""
    path = Path(path)
    recorded = _read_sidecar(path)
    if sha256:
        digest = _check(path, size, sha256, "known checksum", progress)
    else:
        digest = _check(path, size, recorded, f"checksum recorded in {sidecar(path)}", progress)
    if recorded != digest:
        sidecar(path).write_text(f"{digest}  {path.name}\n")
    return digest


def _total_from_headers(resp: http.client.HTTPResponse, offset: int) -> int | None:
    content_range = resp.headers.get("Content-Range")  # bytes a-b/total
    if content_range and "/" in content_range and not content_range.endswith("/*"):
        return int(content_range.rsplit("/", 1)[1])
    length = resp.headers.get("Content-Length")
    return None if length is None else int(length) + offset


def fetch(url: str, dest: str | Path, *, size: int | None = None, sha256: str | None = None, progress: bool = True,
          timeout: float = 60.0, retries: int = 3) -> Path:
    """Download `url` to `dest` through `dest.part`, resuming with HTTP Range after an interruption (also across
    runs), then verify (`verify`) and rename. An existing `dest` is verified and kept. Returns `dest`."""
    dest = Path(dest)
    if dest.exists():
        verify(dest, size=size, sha256=sha256, progress=progress)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for _attempt in range(retries + 1):
        offset = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"User-Agent": "dnax-data-tools"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            resp = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and offset:  # nothing left to send: the .part may already be complete
                total = _total_from_headers(e, 0) if e.headers.get("Content-Range") else None
                if total is not None and total == offset and (size is None or size == offset):
                    break
                part.unlink()
                last_error = e
                continue
            raise DownloadError(f"cannot download {url}: HTTP {e.code} {e.reason}; download it elsewhere and "
                                f"place it at {dest}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise DownloadError(f"cannot reach {url}: {reason}; download it elsewhere and place it at "
                                f"{dest}") from None
        with resp:
            if offset and resp.status != 206:  # the server ignored the Range header: start over
                offset = 0
            total = _total_from_headers(resp, offset)
            if size is not None and total is not None and total != size:
                raise DownloadError(f"{url}: server reports {total} bytes, expected {size}")
            try:
                with open(part, "ab" if offset else "wb") as f, tqdm(
                        total=total, initial=offset, unit="B", unit_scale=True, desc=dest.name,
                        disable=not progress) as bar:
                    while chunk := resp.read(CHUNK):
                        f.write(chunk)
                        bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as e:  # interrupted: resume from the .part
                last_error = e
                continue
        got = part.stat().st_size
        expected_total = size if size is not None else total
        if expected_total is not None and got < expected_total:
            last_error = DownloadError(f"{url}: connection closed after {got} of {expected_total} bytes")
            continue
        if expected_total is not None and got > expected_total:
            part.unlink()
            raise DownloadError(f"{url}: received {got} bytes, more than the expected {expected_total}; "
                                "removed the partial file, run again")
        break
    else:
        raise DownloadError(f"cannot download {url}: {last_error}; run again to resume from {part}")
    try:
        digest = _check(part, size, sha256, "known checksum", progress)
    except DownloadError:
        part.unlink()
        raise
    sidecar(dest).write_text(f"{digest}  {dest.name}\n")
    os.replace(part, dest)
    return dest
