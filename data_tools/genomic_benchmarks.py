"""Rebuild a Genomic Benchmarks task's sequences from its official coordinate files and reference FASTAs.

    python -m data_tools.genomic_benchmarks rebuild --task human_nontata_promoters \
        --coords shared/data/genomic_benchmarks_coords --fasta Homo_sapiens.GRCh38.dna.toplevel.fa.gz [--out DIR]

The coordinate folder is GB's `datasets/<task>/`: `metadata.yaml` (per class: the reference FASTA URL) and
`{train,test}/<class>.csv.gz` with columns `id,region,start,end,strand` (0-based, half-open; `-` = reverse
complement, empty = `+`). Each row becomes `<out>/<task>/<split>/<class>/<id>.txt` holding `fasta[region][start:end]`,
reverse-complemented on `-`: the layout GB's `download_dataset` writes and `dnax.data.downstream` reads. The task
folder is written under a temporary name and renamed into place, so it is never half-written.

References: `--fasta PATH` is used for the classes whose metadata URL ends in PATH's file name, or for every class when
it is the only one given; `--fasta CLASS=PATH` names the class. Regions match a FASTA record by name, by name without
the `chr` prefix (Ensembl records are `1`, `X`, ...; GB adds `chr`), or by name without a `.N` version suffix
(Ensembl cDNA ids). Sequences are written uppercase with IUPAC ambiguity codes as N (the FASTA is read through
`dnax.tokenizer`), which tokenizes exactly like the original text. Out-of-range intervals are errors (the reference's
Python slicing would silently shorten them).
"""
from __future__ import annotations

import argparse
import csv
import gzip
import io
import os
import re
import shutil
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_tools import InputError, os_error_message, run_cli
from data_tools.fasta import GZIP_ERRORS, gzip_error, iter_fasta
from dnax.tokenizer import COMPLEMENT, decode

SPLITS = ("train", "test")
COLUMNS = ["id", "region", "start", "end", "strand"]
_VERSION = re.compile(r"\.\d+$")


@dataclass(frozen=True)
class Interval:
    id: str
    region: str
    start: int
    end: int
    minus: bool  # strand '-'
    source: str  # "file:line" of the coordinate row


def read_metadata(task_dir: str | Path) -> dict[str, str]:
    """{class name: reference FASTA URL} from `<task_dir>/metadata.yaml`."""
    import yaml

    path = Path(task_dir) / "metadata.yaml"
    if not path.is_file():
        raise InputError(f"{path}: no such file (is {task_dir} a Genomic Benchmarks task folder?)")
    try:
        meta = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise InputError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    classes = meta.get("classes") if isinstance(meta, dict) else None
    if not isinstance(classes, dict) or not classes:
        raise InputError(f"{path}: no 'classes' mapping")
    out = {}
    for name, info in classes.items():
        if not isinstance(info, dict) or not info.get("url"):
            raise InputError(f"{path}: class {name!r} has no reference 'url'")
        out[str(name)] = str(info["url"])
    return out


def read_intervals(path: str | Path) -> list[Interval]:
    """The rows of one `<class>.csv.gz` coordinate file, checked (header, integers, start < end, strand)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    raw = gzip.open(path, "rb") if gzipped else open(path, "rb")
    with io.TextIOWrapper(raw, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        try:
            return _checked_rows(path, reader)
        except GZIP_ERRORS as e:
            raise gzip_error(path, reader.line_num + 1, e) from None
        except UnicodeDecodeError:
            raise InputError(f"{path}:{reader.line_num + 1}: not UTF-8 text") from None


def _checked_rows(path: Path, reader) -> list[Interval]:
    """The intervals of a `csv.reader` over a coordinate file (see `read_intervals`)."""
    header = next(reader, None)
    if header is None:
        raise InputError(f"{path}: empty file")
    if [h.strip() for h in header] != COLUMNS:
        raise InputError(f"{path}:1: header is {','.join(header)!r}, expected {','.join(COLUMNS)!r}")
    rows: list[Interval] = []
    ids: dict[str, int] = {}
    for fields in reader:
        line = reader.line_num
        if not fields:
            continue
        if len(fields) != len(COLUMNS):
            raise InputError(f"{path}:{line}: {len(fields)} fields, expected {len(COLUMNS)}")
        id_, region, start, end, strand = (x.strip() for x in fields)
        if not (start.isdigit() and end.isdigit()):
            raise InputError(f"{path}:{line}: start/end must be non-negative integers, got {start!r}, {end!r}")
        if int(start) >= int(end):
            raise InputError(f"{path}:{line}: empty interval [{start}, {end})")
        if strand not in ("", "+", "-"):
            raise InputError(f"{path}:{line}: strand must be '+', '-' or empty, got {strand!r}")
        if not id_ or not region:
            raise InputError(f"{path}:{line}: empty id or region")
        if id_ in ids:
            raise InputError(f"{path}:{line}: duplicate id {id_!r} (first at line {ids[id_]})")
        ids[id_] = line
        rows.append(Interval(id_, region, int(start), int(end), strand == "-", f"{path}:{line}"))
    if not rows:
        raise InputError(f"{path}: no coordinate rows")
    return rows


def record_aliases(record_name: str) -> set[str]:
    """Region names that denote FASTA record `record_name`: itself, with a `chr` prefix, without a `.N` version."""
    return {record_name, f"chr{record_name}", _VERSION.sub("", record_name)}


class _NeededRecords:
    """`name in needed` for `iter_fasta(only=...)`: is the record one of the wanted regions under some alias?"""

    def __init__(self, regions: set[str]):
        self.regions = regions
        self.found: dict[str, str] = {}  # region -> record name

    def __contains__(self, record_name: object) -> bool:
        hits = record_aliases(str(record_name)) & self.regions
        for region in hits:
            self.found.setdefault(region, str(record_name))
        return bool(hits)


def extract(interval: Interval, tokens: np.ndarray, record: str) -> str:
    """The interval's sequence from the record's token ids, reverse-complemented on the minus strand."""
    if interval.end > len(tokens):
        raise InputError(f"{interval.source}: interval [{interval.start}, {interval.end}) runs past the end of "
                         f"FASTA record {record!r} ({len(tokens)} bp): wrong reference assembly?")
    ids = tokens[interval.start:interval.end]
    return decode(COMPLEMENT[ids[::-1]] if interval.minus else ids)


def assign_references(classes: dict[str, str], fastas: Sequence[str]) -> dict[str, Path]:
    """{class: FASTA path} from `--fasta` values (`PATH` or `CLASS=PATH`); see the module docstring."""
    explicit: dict[str, Path] = {}
    plain: list[Path] = []
    for value in fastas:
        name, sep, rest = value.partition("=")
        if sep and name in classes:
            explicit[name] = Path(rest)
        else:
            plain.append(Path(value))
    out = {}
    for cls, url in classes.items():
        if cls in explicit:
            out[cls] = explicit[cls]
            continue
        by_name = [p for p in plain if p.name == url.rsplit("/", 1)[-1]]
        if by_name:
            out[cls] = by_name[0]
        elif len(plain) == 1:
            out[cls] = plain[0]
        else:
            raise InputError(f"class {cls!r}: no --fasta for its reference {url.rsplit('/', 1)[-1]!r}; "
                             f"pass --fasta {cls}=PATH")
    for path in set(out.values()):
        if not path.is_file():
            raise InputError(f"{path}: no such file")
    return out


def task_folder(coords: str | Path, task: str) -> Path:
    """`coords/<task>` when it holds metadata.yaml, else `coords` itself when it is that task's folder."""
    coords = Path(coords)
    if (coords / task / "metadata.yaml").is_file():
        return coords / task
    if coords.name == task and (coords / "metadata.yaml").is_file():
        return coords
    raise InputError(f"{coords}: no Genomic Benchmarks task folder {task!r} (expected {coords / task}/metadata.yaml)")


def rebuild(task_dir: str | Path, fastas: Sequence[str], out: str | Path) -> Path:
    """Write `<out>/<task>/{train,test}/<class>/<id>.txt` for the task in `task_dir`; returns that folder."""
    task_dir = Path(task_dir)
    classes = read_metadata(task_dir)
    references = assign_references(classes, fastas)
    jobs: dict[Path, list[tuple[str, str, Interval]]] = defaultdict(list)  # fasta -> (split, class, interval)
    for split in SPLITS:
        for cls in classes:
            for interval in read_intervals(task_dir / split / f"{cls}.csv.gz"):
                jobs[references[cls]].append((split, cls, interval))

    target = Path(out) / task_dir.name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{task_dir.name}.", suffix=".tmp"))
    except OSError as e:
        raise InputError(f"{target}: cannot create the output here ({os_error_message(e)})") from None
    try:
        for split in SPLITS:
            for cls in classes:
                (tmp / split / cls).mkdir(parents=True)
        for fasta, items in jobs.items():
            by_region: dict[str, list[tuple[str, str, Interval]]] = defaultdict(list)
            for item in items:
                by_region[item[2].region].append(item)
            needed = _NeededRecords(set(by_region))
            for record in iter_fasta(fasta, only=needed):
                if record.tokens is None:
                    continue
                for region in [r for r, name in needed.found.items() if name == record.name]:
                    for split, cls, interval in by_region.pop(region, []):
                        (tmp / split / cls / f"{interval.id}.txt").write_text(extract(interval, record.tokens,
                                                                                       record.name))
            if by_region:
                missing = sorted(by_region)
                first_use = by_region[missing[0]][0][2].source
                raise InputError(f"{fasta}: no record for region(s) {', '.join(missing[:5])}"
                                 f"{' ...' if len(missing) > 5 else ''} (needed by {first_use})")
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    from dnax.data.sources import cache_root

    parser = argparse.ArgumentParser(prog="python -m data_tools.genomic_benchmarks", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("rebuild", help="coordinates + reference FASTA -> <out>/<task>/{train,test}/<class>/<id>.txt")
    p.add_argument("--task", required=True)
    p.add_argument("--coords", required=True, help="GB datasets/ folder (or the task's own folder)")
    p.add_argument("--fasta", action="append", required=True, help="PATH or CLASS=PATH; repeat for several references")
    p.add_argument("--out", default=str(cache_root() / "genomic_benchmarks"),
                   help="output root (default: where dnax.data.downstream looks, <dnax cache>/genomic_benchmarks)")
    args = parser.parse_args(argv)

    def body() -> int:
        target = rebuild(task_folder(args.coords, args.task), args.fasta, args.out)
        counts = {split: sum(1 for _ in (target / split).rglob("*.txt")) for split in SPLITS}
        print(f"wrote {target}: " + ", ".join(f"{split} {n}" for split, n in counts.items()))
        return 0

    return run_cli(body, interrupted="the task folder was left as it was; run the same command again")


if __name__ == "__main__":
    sys.exit(main())
