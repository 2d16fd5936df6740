"""Fetch the reference hg38 pre-training data, then convert it to MDS.

    python -m data_tools.hg38 download [--dir data/hg38]
    python -m data_tools.hg38 convert  [--dir data/hg38] --seq-len 1024 --out data/hg38_mds_1024 [--workers 8]

The two files are those of the DNA-xLSTM README (`ml.jku.at/.../DNA-xLSTM/data/hg38/`), which mirrors the files that
Caduceus and HyenaDNA take from the Basenji bucket (`storage.googleapis.com/basenji_barnyard2/`: `hg38.ml.fa.gz`, and
`sequences_human.bed` saved as `human-sequences.bed`); each file is tried at those URLs in that order.
The FASTA stays gzip-compressed: `fasta_to_mds` reads gzip directly.

Verification, truthfully: no published checksum or size of these files was found, so `EXPECTED` holds none (fill in
`size`/`sha256` there once known and they are enforced). `dnax.download.fetch` checks a download against the
server's Content-Length (or Content-Range total), records its sha256 in a sidecar `<file>.sha256`, and re-hashes
the file against it on every later run before skipping it; downloads resume from `<file>.part` with HTTP Range.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from data_tools import InputError
from dnax.download import DownloadError, fetch, sha256_file, sidecar, verify  # noqa: F401 (re-exported)

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
    except (InputError, DownloadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
