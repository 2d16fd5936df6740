"""Fetch the reference hg38 pre-training data, then convert it to MDS.

    python -m data_tools.hg38 download [--dir data/hg38]
    python -m data_tools.hg38 convert  [--dir data/hg38] [--seq-len 1024] [--out DIR] [--workers 8]

`convert` writes by default where training reads (`dnax.data.sources.hg38_mds`: `$DNAX_HG38_MDS`, else
`~/.cache/dnax/hg38/mds_<seq_len>`), so `python -m dnax.run experiments.hg38_xlstm` finds it without settings.

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

from data_tools import InputError, os_error_message, run_cli
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
    """Fetch every file of `files` into `directory` (each from its first reachable URL); {name: path}.

    When no URL of a file can be reached, DownloadError names each URL with its reason, once what to do, and a
    `directory` this call created is removed again if it stayed empty."""
    directory = Path(directory)
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{directory}: cannot create the download directory ({os_error_message(e)})") from None
    out = {}
    try:
        for rf in files:
            errors = []
            dest = directory / rf.name
            advice = f"; download it elsewhere and place it at {dest}"
            for url in rf.urls:
                try:
                    out[rf.name] = fetch(url, dest, size=rf.size, sha256=rf.sha256, progress=progress,
                                         timeout=timeout)
                    break
                except DownloadError as e:
                    if dest.exists():  # a local file failed verification: no mirror fixes that
                        raise
                    errors.append(str(e).removesuffix(advice))
            else:
                raise DownloadError(" | ".join(errors) + advice)
    except BaseException:
        if created and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
        raise
    return out


def default_out(seq_len: int) -> str:
    """Where `convert` writes by default: where training reads hg38 at `seq_len` (`dnax.data.sources.hg38_mds`)."""
    from dnax.data.sources import hg38_mds

    return hg38_mds(seq_len)


def convert_command(directory: str | Path, seq_len: int = 1024, out: str | None = None, workers: int = 8) -> str:
    """The `fasta_to_mds` command line for the downloaded files (what `convert` runs)."""
    directory = Path(directory)
    out = out or default_out(seq_len)
    return (f"python -m data_tools.fasta_to_mds --fasta {directory / FASTA_NAME} --bed {directory / BED_NAME} "
            f"--seq-len {seq_len} --out {out} --workers {workers} --compression zstd")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_tools.hg38", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("download", help="fetch hg38.ml.fa.gz and human-sequences.bed")
    d.add_argument("--dir", default=str(DEFAULT_DIR), help="where to put the files (default: %(default)s); an "
                   "interrupted download resumes from <file>.part")
    d.add_argument("--base-url", default=None, help="fetch <base-url>/<file name> instead of the default URLs")
    d.add_argument("--no-progress", action="store_true")
    c = sub.add_parser("convert", help="run fasta_to_mds on the downloaded files (reference BED windows)")
    c.add_argument("--dir", default=str(DEFAULT_DIR), help=f"folder holding {FASTA_NAME} and {BED_NAME} "
                   "(default: %(default)s)")
    c.add_argument("--seq-len", type=int, default=1024, help="window length, a divisor of 2**20 (default: %(default)s)")
    c.add_argument("--out", default=None, help="output directory or object-store URL (default: where training reads: "
                   "$DNAX_HG38_MDS, else ~/.cache/dnax/hg38/mds_<seq-len>); see fasta_to_mds --help")
    c.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="default: %(default)s")
    c.add_argument("--compression", default="zstd", help="MDS shard compression, '' for none (default: %(default)s)")
    c.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)

    def body() -> int:
        if a.command == "download":
            files = EXPECTED
            if a.base_url:
                files = tuple(RemoteFile(f.name, (f"{a.base_url.rstrip('/')}/{f.name}",), f.size, f.sha256)
                              for f in EXPECTED)
            paths = download(a.dir, files=files, progress=not a.no_progress)
            for name, path in paths.items():
                print(f"ok {path}")
            print(f"next: python -m data_tools.hg38 convert --dir {a.dir}   # = {convert_command(a.dir)}")
            return 0
        from data_tools.fasta_to_mds import convert, format_summary

        directory = Path(a.dir)
        out = a.out or default_out(a.seq_len)
        for name in (FASTA_NAME, BED_NAME):
            if not (directory / name).exists():
                raise InputError(f"{directory / name}: missing; run `python -m data_tools.hg38 download "
                                 f"--dir {directory}` first")
        summary = convert(directory / FASTA_NAME, out, a.seq_len, bed=directory / BED_NAME, workers=a.workers,
                          compression=a.compression or None, progress=not a.no_progress)
        print(format_summary(summary))
        return 0

    note = ("run the same command again to resume from the .part files" if a.command == "download"
            else "no finished conversion was written; run the same command again")
    return run_cli(body, errors=(DownloadError,), interrupted=note)


if __name__ == "__main__":
    sys.exit(main())
