"""FASTA (+ optional BED) -> MDS shards of fixed-length token windows, one sub-dataset per split and chromosome.

    python -m data_tools.fasta_to_mds --fasta hg38.ml.fa.gz --bed human-sequences.bed --seq-len 1024 --out DIR
    python -m data_tools.fasta_to_mds --fasta genome.fa.gz --seq-len 1024 --out DIR \\
        --valid-ranges chrX:1000000-2000000 --test-chroms chr8 chr9

Layout of `DIR` (or an object-store URL, see `convert`):

    DIR/<split>/<chrom>/index.json, shard.*.mds[.zstd]   one MDS sub-dataset per split and chromosome
    DIR/<split>/index.json                              streaming's merged index: StreamingDataset(DIR/<split>)
    DIR/dnax_mds.json                                   completion manifest (arguments, counts), written last

MDS columns: `tokens` `ndarray:uint8:<seq_len>` (ids of `dnax.tokenizer`, N kept as N), `chrom_index` `int64` (index
of the record in the FASTA, names in the manifest's `chroms`), `start` `int64` (0-based window start). Window placement
is `data_tools.windows` (the reference BED scheme with `--bed`, tiling otherwise).

Idempotent: an output whose manifest records the same arguments (inputs by file name and byte size, seq_len, splits,
N threshold, compression, shard size; not `--workers`) is left alone (a no-op); different arguments are an error. Atomic: everything is written into a hidden temporary sibling directory that is renamed into place at the end,
and removed on any failure (including bad input discovered midway, Ctrl-C and, from the CLI, SIGTERM); a process
killed with SIGKILL can leave such a `.<name>.tmp-*` sibling behind (safe to delete), never a half-written `DIR`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_tools import InputError, os_error_message, run_cli
from data_tools.fasta import FastaRecord, fai_path, iter_fasta, read_fai
from data_tools.windows import (
    SPLITS,
    BedRow,
    Region,
    bed_windows_for_chrom,
    check_bed_row,
    check_regions_known,
    check_seq_len,
    chrom_segments,
    parse_bed,
    parse_range,
    tile_windows,
)
from dnax.data.object_store import SHARD_HASH, ObjectStoreError, fetch_object
from dnax.data.sources import cache_root, is_url

MANIFEST = "dnax_mds.json"
FORMAT = "dnax-mds/1"
SAMPLE_NAME = "GRCh37_chrX_65-69Mb.fa.gz"
#: the bundled sample's validation range: its last 0.5 Mbp
SAMPLE_VALID_RANGE = "X_65000000_69000000:3500000-4000000"


def columns(seq_len: int) -> dict[str, str]:
    """The MDS columns of a window sample."""
    return {"tokens": f"ndarray:uint8:{seq_len}", "chrom_index": "int64", "start": "int64"}


def sample_fasta() -> Path:
    """The bundled 4 Mbp of real GRCh37 chrX (one record, `X_65000000_69000000`, no N)."""
    return Path(str(resources.files("dnax.data") / "sample" / SAMPLE_NAME))


def read_manifest(out: str | Path) -> dict | None:
    """The completion manifest of a local output directory, or None if the conversion is not finished."""
    path = Path(out) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


# ---------------------------------------------------------------------------------------------------- public API
def convert(
    fasta: str | Path,
    out: str | Path,
    seq_len: int,
    *,
    bed: str | Path | None = None,
    valid_ranges: Sequence[str | Region] = (),
    test_ranges: Sequence[str | Region] = (),
    valid_chroms: Sequence[str] = (),
    test_chroms: Sequence[str] = (),
    max_n_fraction: float = 0.5,
    workers: int = 1,
    compression: str | None = None,
    size_limit: int = 1 << 26,
    local_staging: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Convert `fasta` into MDS window datasets under `out`; returns a summary dict.

    fasta: plain or gzip FASTA. bed: `chrom start end split` intervals; with it, windows follow the reference scheme
    (`data_tools.windows`) and the ranges/chroms arguments are not allowed. Without it, each chromosome is tiled;
    `valid_*`/`test_*` ranges (`NAME:START-END`, 0-based half-open) and whole chromosomes go to valid/test, the rest
    to train, and windows with more than `max_n_fraction` N are skipped. seq_len must divide 2**20.
    workers: processes writing chromosomes in parallel (1: in this process). compression: an MDS compression such as
    `zstd` or `zstd:7` (None: raw). size_limit: MDS shard size in bytes.
    out: a local directory, or an object-store URL (`s3://bucket/prefix`, any scheme streaming uploads to): the
    conversion is then made (atomically, idempotently) in `local_staging` (default
    `~/.cache/dnax/mds-staging/<hash of out>`, `$DNAX_CACHE` replacing `~/.cache/dnax`) and uploaded file by file,
    the manifest last, so a remote prefix with a manifest is complete. A remote manifest with the same arguments
    makes the call a no-op; other arguments are an error.
    progress: a tqdm bar over chromosomes.

    Summary keys: out, skipped (True if nothing was done), seconds, seq_len, mode ('bed' or 'tiles'), chroms (record
    names; `chrom_index` indexes it), windows {split: n}, tokens {split: n * seq_len}, per_chrom {split: {chrom: n}}.
    """
    t0 = time.perf_counter()
    seq_len = check_seq_len(seq_len)
    fasta = Path(fasta).expanduser()
    if not fasta.is_file():
        raise InputError(f"{fasta}: {'a directory, not a FASTA file' if fasta.is_dir() else 'no such file'}")
    valid = [parse_range(r) for r in valid_ranges] + [Region(c) for c in valid_chroms]
    test = [parse_range(r) for r in test_ranges] + [Region(c) for c in test_chroms]
    if bed is not None and (valid or test):
        raise InputError("the BED file fixes the splits: --valid-*/--test-* apply only without --bed")
    bed = None if bed is None else Path(bed).expanduser()
    if bed is not None and not bed.is_file():
        raise InputError(f"{bed}: no such file")
    if not 0.0 <= max_n_fraction <= 1.0:
        raise InputError(f"max_n_fraction must be in [0, 1], got {max_n_fraction}")
    if not (isinstance(workers, int) and workers >= 1):
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    if not (isinstance(size_limit, int) and size_limit >= 1):
        raise InputError(f"size_limit must be a positive number of bytes, got {size_limit!r}")
    if compression:
        from streaming.base.compression import is_compression

        if not is_compression(compression):
            raise InputError(f"unknown MDS compression {compression!r} (e.g. zstd, zstd:7, gz, br, snappy)")
    # what identifies a conversion (compared on a re-run): inputs by file name and size, so that a moved or copied
    # FASTA still matches; the full paths are recorded in the manifest's `inputs`, not compared
    args = {
        "format": FORMAT,
        "fasta": fasta.name,
        "fasta_bytes": fasta.stat().st_size,
        "bed": None if bed is None else bed.name,
        "bed_bytes": None if bed is None else bed.stat().st_size,
        "seq_len": seq_len,
        "valid": sorted(map(str, valid)),
        "test": sorted(map(str, test)),
        "max_n_fraction": None if bed is not None else float(max_n_fraction),
        "compression": compression or None,
        "size_limit": int(size_limit),
    }
    job = dict(fasta=fasta, bed=bed, seq_len=seq_len, valid=valid, test=test, max_n_fraction=max_n_fraction,
               workers=workers, compression=compression or None, size_limit=int(size_limit), progress=progress)
    if is_url(str(out)):
        return _convert_remote(str(out), args, job, local_staging, t0)
    out = Path(out).expanduser().absolute()
    summary = _existing(out, args)
    if summary is None:
        summary = _convert_atomically(out, args, job)
        skipped = False
    else:
        skipped = True
    return {**summary, "out": str(out), "skipped": skipped, "seconds": round(time.perf_counter() - t0, 3)}


def convert_sample(out: str | Path, seq_len: int = 1024, **kwargs) -> dict:
    """`convert` of the bundled sample (`sample_fasta()`), its last 0.5 Mbp as validation (seconds, single process)."""
    kwargs.setdefault("valid_ranges", [SAMPLE_VALID_RANGE])
    return convert(sample_fasta(), out, seq_len, **kwargs)


# ------------------------------------------------------------------------------------------------- local output
def _existing(out: Path, args: dict) -> dict | None:
    """The summary of a finished conversion with the same arguments; None if `out` is absent or an empty dir."""
    if not out.exists():
        return None
    manifest = read_manifest(out) if out.is_dir() else None
    if manifest is not None:
        if manifest.get("args") != args:
            raise InputError(f"{out} holds a conversion with other arguments ({_diff(manifest.get('args'), args)}); "
                             "remove it or choose another output")
        return manifest["summary"]
    if out.is_dir() and not any(out.iterdir()):
        return None
    raise InputError(f"{out} exists and is not a finished fasta_to_mds output (no {MANIFEST}); "
                     "remove it or choose another output")


def _diff(old: dict | None, new: dict) -> str:
    old = old or {}
    keys = [k for k in new if old.get(k) != new[k]] + [k for k in old if k not in new]
    return "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys)


def _convert_atomically(out: Path, args: dict, job: dict) -> dict:
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as e:
        raise InputError(f"{out}: cannot create the output here ({os_error_message(e)})") from None
    try:
        started = time.perf_counter()
        summary = _write_all(tmp, **job)
        manifest = {
            "format": FORMAT,
            "args": args,
            "inputs": {"fasta": str(job["fasta"].resolve()),
                       "bed": None if job["bed"] is None else str(job["bed"].resolve())},
            "summary": summary,
            "columns": columns(job["seq_len"]),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 3),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")  # last: marks completion
        try:
            if out.exists():
                out.rmdir()  # an empty directory (checked by _existing)
            os.rename(tmp, out)
        except OSError:
            # another process finished first: accept its result if it is the same conversion
            done = _existing(out, args)
            if done is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return done
        return summary
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def chrom_dirname(record: FastaRecord) -> str:
    """Sub-dataset directory name of a record: its name when path-safe, else `_rec<index>`."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}", record.name):
        return record.name
    return f"_rec{record.index:06d}"


def _write_all(tmp: Path, *, fasta: Path, bed: Path | None, seq_len: int, valid: list[Region], test: list[Region],
               max_n_fraction: float, workers: int, compression: str | None, size_limit: int,
               progress: bool) -> dict:
    """Stream the FASTA once, plan each chromosome's windows and write them; then merge the per-split indexes."""
    known = read_fai(fai_path(fasta)) if fai_path(fasta).exists() else None
    rows_by_chrom: dict[str, list[BedRow]] = {}
    wanted = None
    if bed is not None:
        for row in parse_bed(bed, known):  # with a .fai every row is checked now; else per record as it arrives
            rows_by_chrom.setdefault(row.chrom, []).append(row)
        wanted = set(rows_by_chrom)
    elif known is not None:  # fail fast on bad ranges
        check_regions_known(valid + test, known, fasta)
        for chrom in {r.chrom for r in valid + test}:
            chrom_segments(chrom, known[chrom], valid, test)

    names: list[str] = []
    longest = 0
    per_chrom: dict[str, dict[str, int]] = {}
    bar = tqdm(total=len(wanted) if wanted is not None else (len(known) if known else None), unit="chrom",
               desc="fasta_to_mds", disable=not progress)

    def collect(chrom: str, counts: dict[str, int]) -> None:
        for split, n in counts.items():
            per_chrom.setdefault(split, {})[chrom] = n
        bar.update(1)
        bar.set_postfix(windows=sum(sum(d.values()) for d in per_chrom.values()), refresh=False)

    executor = None
    if workers > 1:
        import multiprocessing

        executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    pending: dict[Future, str] = {}
    try:
        for rec in iter_fasta(fasta, only=wanted):
            names.append(rec.name)
            longest = max(longest, rec.length)
            if rec.tokens is None:
                continue
            if bed is not None:
                rows = rows_by_chrom[rec.name]
                for row in rows:
                    check_bed_row(row, {rec.name: rec.length}, bed)
                windows = bed_windows_for_chrom(rows, rec.name, rec.length, seq_len)
            else:
                windows = tile_windows(rec.tokens, rec.name, seq_len, valid, test, max_n_fraction)
            task = (str(tmp), chrom_dirname(rec), rec.index, rec.tokens, windows, seq_len, compression, size_limit)
            if executor is None:
                collect(rec.name, write_chrom(*task))
                continue
            pending[executor.submit(write_chrom, *task)] = rec.name
            while len(pending) >= workers:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    collect(pending.pop(fut), fut.result())
        # chromosomes named by the BED or the ranges but absent from the FASTA
        seen = set(names)
        for chrom, rows in rows_by_chrom.items():
            if chrom not in seen:
                check_bed_row(rows[0], {}, bed)
        check_regions_known(valid + test, seen, fasta)
        for fut in list(pending):
            collect(pending.pop(fut), fut.result())
    finally:
        bar.close()
        if executor is not None:
            for fut in pending:
                fut.cancel()
            executor.shutdown(wait=True, cancel_futures=True)

    windows = {split: sum(per_chrom.get(split, {}).values()) for split in SPLITS}
    if not any(windows.values()):  # tiling only: the BED scheme always places windows (or raises)
        raise InputError(f"{fasta}: no windows of seq_len {seq_len} (longest record {longest} bp; windows with "
                         f"more than {max_n_fraction:g} N are skipped): nothing to write")
    _merge_split_indexes(tmp, per_chrom, names)
    return {
        "seq_len": seq_len,
        "mode": "bed" if bed is not None else "tiles",
        "chroms": names,
        "windows": windows,
        "tokens": {split: n * seq_len for split, n in windows.items()},
        "per_chrom": {split: per_chrom[split] for split in SPLITS if split in per_chrom},
    }


def write_chrom(root: str, dirname: str, chrom_index: int, tokens: np.ndarray, windows: dict[str, np.ndarray],
                seq_len: int, compression: str | None, size_limit: int) -> dict[str, int]:
    """Write one chromosome's windows as `root/<split>/<dirname>/` MDS datasets; returns {split: windows}."""
    from streaming import MDSWriter
    from streaming.base.format.mds.encodings import mds_encode

    cols = columns(seq_len)
    tokens = np.ascontiguousarray(tokens, dtype=np.uint8)
    index_bytes = mds_encode(cols["chrom_index"], chrom_index)
    counts = {}
    for split, starts in windows.items():
        if not len(starts):
            continue
        # Columns are passed pre-encoded (MDSWriter stores bytes as given and still checks fixed sizes): streaming's
        # per-value encoder lookup costs ~60 us a sample. The first sample is checked against streaming's encoders.
        start_bytes = np.asarray(starts, dtype="<i8")
        s0 = int(starts[0])
        assert mds_encode(cols["tokens"], tokens[s0 : s0 + seq_len]) == tokens[s0 : s0 + seq_len].tobytes()
        assert mds_encode(cols["start"], s0) == start_bytes[:1].tobytes()
        with MDSWriter(out=os.path.join(root, split, dirname), columns=cols, compression=compression,
                       size_limit=size_limit, hashes=[SHARD_HASH]) as writer:  # checked after each download
            for i, s in enumerate(starts.tolist()):
                writer.write({"tokens": tokens[s : s + seq_len].tobytes(), "chrom_index": index_bytes,
                              "start": start_bytes[i : i + 1].tobytes()})
        counts[split] = len(starts)
    return counts


def _merge_split_indexes(root: Path, per_chrom: dict[str, dict[str, int]], names: list[str]) -> None:
    """`root/<split>/index.json` from the split's chromosome sub-datasets (in FASTA order), via streaming."""
    from streaming.base.util import merge_index

    for split, counts in per_chrom.items():
        split_dir = root / split
        parts = [str(p / "index.json") for p in sorted(split_dir.iterdir(), key=_fasta_order(names)) if p.is_dir()]
        logging.disable(logging.WARNING)  # merge_index logs a warning about its temporary folder on every call
        try:
            merge_index(parts, str(split_dir))
        finally:
            logging.disable(logging.NOTSET)


def _fasta_order(names: list[str]):
    order = {name: i for i, name in enumerate(names)}

    def key(path: Path) -> int:
        m = re.fullmatch(r"_rec(\d+)", path.name)
        return int(m[1]) if m else order.get(path.name, len(order))

    return key


# ------------------------------------------------------------------------------------------------ remote output
def _staging_dir(url: str) -> Path:
    return cache_root() / "mds-staging" / hashlib.blake2s(url.encode(), digest_size=8).hexdigest()


def _read_remote_manifest(url: str) -> dict | None:
    """The manifest at `url`, None if absent; InputError (one line) if the store cannot be read (unreachable,
    credentials refused, no such bucket), before anything is converted."""
    with tempfile.TemporaryDirectory() as d:
        dest = os.path.join(d, MANIFEST)
        try:
            if not fetch_object(f"{url.rstrip('/')}/{MANIFEST}", dest):
                return None
        except ObjectStoreError as e:
            raise InputError(f"cannot write to {url}: {e}") from None
        with open(dest) as f:
            return json.load(f)


def _convert_remote(url: str, args: dict, job: dict, local_staging: str | Path | None, t0: float) -> dict:
    manifest = _read_remote_manifest(url)
    if manifest is not None:
        if manifest.get("args") != args:
            raise InputError(f"{url} holds a conversion with other arguments ({_diff(manifest.get('args'), args)})")
        return {**manifest["summary"], "out": url, "skipped": True, "seconds": round(time.perf_counter() - t0, 3)}
    staging = Path(local_staging).expanduser().absolute() if local_staging else _staging_dir(url)
    summary = _existing(staging, args) or _convert_atomically(staging, args, job)
    upload_tree(staging, url, progress=job["progress"])
    return {**summary, "out": url, "staging": str(staging), "skipped": False,
            "seconds": round(time.perf_counter() - t0, 3)}


def upload_tree(local: str | Path, url: str, progress: bool = True) -> None:
    """Upload every file under `local` to `url` with streaming's uploader (same relative paths), the manifest last."""
    from streaming.base.storage.upload import CloudUploader

    local = Path(local)
    files = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    files.sort(key=lambda f: f == MANIFEST)
    uploader = CloudUploader.get((str(local), url), keep_local=True, exist_ok=True)
    for rel in tqdm(files, desc=f"upload {url}", unit="file", disable=not progress):
        uploader.upload_file(rel)


# ---------------------------------------------------------------------------------------------------------- CLI
def format_summary(summary: dict) -> str:
    lines = [f"{'skipped (already done)' if summary['skipped'] else 'wrote'} {summary['out']}: "
             f"{len(summary['chroms'])} records, seq_len {summary['seq_len']}, mode {summary['mode']}, "
             f"{summary['seconds']:.1f} s"]
    for split in SPLITS:
        n = summary["windows"].get(split, 0)
        lines.append(f"  {split:5s} {n:>12,} windows {summary['tokens'].get(split, 0):>16,} tokens")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_tools.fasta_to_mds", description=__doc__.split("\n")[0])
    p.add_argument("--fasta", required=True, help="FASTA file, plain or gzip")
    p.add_argument("--bed", help="chrom start end split intervals: the reference window scheme")
    p.add_argument("--seq-len", type=int, required=True, help="window length, a divisor of 2**20")
    p.add_argument("--out", required=True,
                   help="output directory or object-store URL (s3://...). Written under a temporary name and renamed "
                        "when complete, so an error or interruption leaves nothing there. If it exists: a finished "
                        "conversion with the same arguments is kept (nothing to do), other arguments or other "
                        "content are an error; an empty directory is used")
    for split in ("valid", "test"):
        p.add_argument(f"--{split}-ranges", nargs="+", default=[], action="extend", metavar="NAME:START-END",
                       help=f"{split} ranges (0-based, half-open), without --bed")
        p.add_argument(f"--{split}-chroms", nargs="+", default=[], action="extend", metavar="NAME",
                       help=f"whole {split} chromosomes, without --bed")
    p.add_argument("--max-n-fraction", type=float, default=0.5, help="skip tiles with more N than this (no --bed)")
    p.add_argument("--workers", type=int, default=1, help="parallel writer processes")
    p.add_argument("--compression", default=None, help="MDS shard compression, e.g. zstd")
    p.add_argument("--size-limit", type=int, default=1 << 26, help="MDS shard size in bytes")
    p.add_argument("--local-staging", default=None, help="local directory for a remote --out")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)

    def body() -> int:
        summary = convert(a.fasta, a.out, a.seq_len, bed=a.bed, valid_ranges=a.valid_ranges,
                          test_ranges=a.test_ranges, valid_chroms=a.valid_chroms, test_chroms=a.test_chroms,
                          max_n_fraction=a.max_n_fraction, workers=a.workers, compression=a.compression,
                          size_limit=a.size_limit, local_staging=a.local_staging, progress=not a.no_progress)
        print(format_summary(summary))
        return 0

    return run_cli(body, interrupted=f"{a.out} holds no finished conversion from this run; run the same command again")


if __name__ == "__main__":
    sys.exit(main())
