"""Fetch the reference hg38 pre-training data, then convert it to MDS.

    python -m data_tools.hg38 download [--dir data/hg38]
    python -m data_tools.hg38 convert  [--dir data/hg38] --seq-len 1024 --out data/hg38_mds_1024 [--workers 8]

The two files are those of the DNA-xLSTM README (`ml.jku.at/.../DNA-xLSTM/data/hg38/`), which mirrors the files that
Caduceus and HyenaDNA take from the Basenji bucket (`storage.googleapis.com/basenji_barnyard2/`: `hg38.ml.fa.gz`, and
`sequences_human.bed` saved as `human-sequences.bed`); each file is tried at those URLs in that order.
The FASTA stays gzip-compressed: `fasta_to_mds` reads gzip directly.

Verification, truthfully: no published checksum or size of these files was found, so `EXPECTED` holds none (fill in
`size`/`sha256` there once known and they are enforced). A download is checked against the server's Content-Length
(or Content-Range total); its sha256 is then recorded in a sidecar `<file>.sha256` (sha256sum format), and every
later run re-hashes the file and compares it to the sidecar before skipping it. A file found without a sidecar (placed
by hand) is trusted once and its sidecar written. Downloads go to `<file>.part` and resume with HTTP Range requests.
Standard library only (urllib) for HTTP.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from data_tools import InputError

DEFAULT_DIR = Path("data/hg38")
FASTA_NAME = "hg38.ml.fa.gz"
BED_NAME = "human-sequences.bed"


@dataclass(frozen=True)
class RemoteFile:
    name: str  # local file name
    urls: tuple[str, ...]  # tried in order
    size: int | None = None  # bytes, if known
    sha256: str | None = None  # hex, if known


EXPECTED = (
    RemoteFile(FASTA_NAME, (
        "https://ml.jku.at/research/Bio-xLSTM/downloads/DNA-xLSTM/data/hg38/hg38.ml.fa.gz",
        "https://storage.googleapis.com/basenji_barnyard2/hg38.ml.fa.gz",
    )),
    RemoteFile(BED_NAME, (
        "https://ml.jku.at/research/Bio-xLSTM/downloads/DNA-xLSTM/data/hg38/human-sequences.bed",
        "https://storage.googleapis.com/basenji_barnyard2/sequences_human.bed",
    )),
)

CHUNK = 1 << 20


class DownloadError(InputError):
    """A download failed (network, size or checksum); one line."""


def sha256_file(path: str | Path, progress: bool = False) -> str:
    h = hashlib.sha256()
    path = Path(path)
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
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


def download(directory: str | Path = DEFAULT_DIR, *, files: Sequence[RemoteFile] = EXPECTED,
             progress: bool = True, timeout: float = 60.0) -> dict[str, Path]:
    """Fetch every file of `files` into `directory` (each from its first reachable URL); {name: path}."""
    directory = Path(directory)
    out = {}
    for rf in files:
        errors = []
        for url in rf.urls:
            try:
                out[rf.name] = fetch(url, directory / rf.name, size=rf.size, sha256=rf.sha256, progress=progress,
                                     timeout=timeout)
                break
            except DownloadError as e:
                if (directory / rf.name).exists():  # a local file failed verification: no mirror fixes that
                    raise
                errors.append(str(e))
        else:
            raise DownloadError(" | ".join(errors))
    return out


def convert_command(directory: str | Path, seq_len: int = 1024, out: str | None = None, workers: int = 8) -> str:
    """The `fasta_to_mds` command line for the downloaded files."""
    directory = Path(directory)
    out = out or str(directory.parent / f"{directory.name}_mds_{seq_len}")
    return (f"python -m data_tools.fasta_to_mds --fasta {directory / FASTA_NAME} --bed {directory / BED_NAME} "
            f"--seq-len {seq_len} --out {out} --workers {workers} --compression zstd")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_tools.hg38", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("download", help="fetch hg38.ml.fa.gz and human-sequences.bed")
    d.add_argument("--dir", default=str(DEFAULT_DIR))
    d.add_argument("--base-url", default=None, help="fetch <base-url>/<file name> instead of the default URLs")
    d.add_argument("--no-progress", action="store_true")
    c = sub.add_parser("convert", help="run fasta_to_mds on the downloaded files (reference BED windows)")
    c.add_argument("--dir", default=str(DEFAULT_DIR))
    c.add_argument("--seq-len", type=int, default=1024)
    c.add_argument("--out", default=None, help="default: <dir>_mds_<seq-len> beside --dir")
    c.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    c.add_argument("--compression", default="zstd")
    c.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    try:
        if a.command == "download":
            files = EXPECTED
            if a.base_url:
                files = tuple(RemoteFile(f.name, (f"{a.base_url.rstrip('/')}/{f.name}",), f.size, f.sha256)
                              for f in EXPECTED)
            paths = download(a.dir, files=files, progress=not a.no_progress)
            for name, path in paths.items():
                print(f"ok {path}")
            print(f"next: {convert_command(a.dir)}")
        else:
            from data_tools.fasta_to_mds import convert, format_summary

            directory = Path(a.dir)
            out = a.out or str(directory.parent / f"{directory.name}_mds_{a.seq_len}")
            for name in (FASTA_NAME, BED_NAME):
                if not (directory / name).exists():
                    raise InputError(f"{directory / name}: missing; run `python -m data_tools.hg38 download "
                                     f"--dir {directory}` first")
            summary = convert(directory / FASTA_NAME, out, a.seq_len, bed=directory / BED_NAME, workers=a.workers,
                              compression=a.compression or None, progress=not a.no_progress)
            print(format_summary(summary))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
