"""Pure functions that place fixed-length windows on chromosomes: the reference BED scheme and plain tiling.

Coordinates are 0-based, half-open (BED style) everywhere.

**Reference scheme** (DNA-xLSTM / Caduceus / HyenaDNA `src/dataloaders/datasets/hg38_dataset.py`, `HG38Dataset` and
`FastaInterval`). The BED (`human-sequences.bed`, the Basenji `sequences_human.bed`) has the columns
`chrom start end split`. For one split, the reference keeps that split's rows in file order, **ignores the BED `end`**
(it overwrites it with `start + 2**20`) and yields `2**20 // seq_len` windows per row; window `i` of a row is
`[start + i*seq_len, start + (i+1)*seq_len)`. A window that ends past the chromosome end is shifted back so that it
ends exactly at the chromosome end: `[chrom_len - seq_len, chrom_len)`. So `window_start = min(start + i*seq_len,
chrom_len - seq_len)`. `seq_len` must divide `2**20` (the reference asserts it). Windows of neighbouring rows overlap
(rows are ~131 kbp apart, a row spans 1 Mbp): that redundancy is the reference's and is kept.
One deliberate difference: for a chromosome shorter than `seq_len` the reference slices with a negative start; here it
is an error (no such chromosome occurs in hg38 with `seq_len <= 2**20`).

**Tiling** (a FASTA without BED): non-overlapping windows of `seq_len` laid from the start of each split segment of
each chromosome; validation/test segments are given as whole chromosomes or `NAME:START-END` ranges, everything else is
train; a window never straddles two segments (the remainder at a segment end is dropped) and windows with more than
`max_n_fraction` of N are skipped.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_tools import InputError
from dnax.tokenizer import N

MAX_ALLOWED_LENGTH = 2**20  # the reference's MAX_ALLOWED_LENGTH: each BED row spans this many bases
SPLITS = ("train", "valid", "test")


def check_seq_len(seq_len: int) -> int:
    """`seq_len` if it is a positive divisor of 2**20 (what the reference window scheme needs), else InputError."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len <= 0:
        raise InputError(f"seq_len must be a positive integer, got {seq_len!r}")
    if MAX_ALLOWED_LENGTH % seq_len:
        raise InputError(
            f"seq_len {seq_len} must divide 2**20 = {MAX_ALLOWED_LENGTH} (a power of two <= 2**20), "
            "as in the reference hg38 window scheme"
        )
    return int(seq_len)


# ---------------------------------------------------------------------------------------------------------- BED
@dataclass(frozen=True)
class BedRow:
    chrom: str
    start: int
    end: int
    split: str
    line: int  # 1-based line in the BED file


def parse_bed(path: str | Path, chrom_lengths: Mapping[str, int] | None = None) -> list[BedRow]:
    """Rows of a `chrom start end split` BED file (plain or gzip; whitespace separated; blank, `#`, `track` and
    `browser` lines skipped).

    With `chrom_lengths`, every row is also checked against it (`check_bed_row`); without, do that later, per
    chromosome, as lengths become known.
    """
    from data_tools.fasta import GZIP_ERRORS, gzip_error, open_maybe_gzip

    path = Path(path)
    rows: list[BedRow] = []
    line_no = 0
    with open_maybe_gzip(path) as f:
        lines = iter(f)
        while True:
            try:
                raw = next(lines, None)
            except GZIP_ERRORS as e:
                raise gzip_error(path, line_no + 1, e) from None
            if raw is None:
                break
            line_no += 1
            text = raw.decode("utf-8", "replace").strip()
            if not text or text.startswith("#") or text.split(None, 1)[0] in ("track", "browser"):
                continue
            cols = text.split()
            if len(cols) != 4:
                raise InputError(f"{path}:{line_no}: expected 4 columns (chrom start end split), got {len(cols)}")
            chrom, start_s, end_s, split = cols
            coords = []
            for what, s in (("start", start_s), ("end", end_s)):
                if not re.fullmatch(r"[0-9]+", s):
                    raise InputError(f"{path}:{line_no}: {what} {s!r} is not a non-negative integer")
                coords.append(int(s))
            start, end = coords
            if start >= end:
                raise InputError(f"{path}:{line_no}: start {start} >= end {end}")
            if split not in SPLITS:
                raise InputError(f"{path}:{line_no}: unknown split {split!r} (expected one of {', '.join(SPLITS)})")
            row = BedRow(chrom, start, end, split, line_no)
            if chrom_lengths is not None:
                check_bed_row(row, chrom_lengths, path)
            rows.append(row)
    if not rows:
        raise InputError(f"{path}: no intervals")
    return rows


def check_bed_row(row: BedRow, chrom_lengths: Mapping[str, int], path: str | Path) -> None:
    """InputError if the row's chromosome is unknown or the interval runs past the chromosome end."""
    if row.chrom not in chrom_lengths:
        raise InputError(f"{path}:{row.line}: unknown chromosome {row.chrom!r} (not in the FASTA)")
    length = chrom_lengths[row.chrom]
    if row.end > length:
        raise InputError(
            f"{path}:{row.line}: interval {row.chrom}:{row.start}-{row.end} extends past the end of "
            f"{row.chrom} (length {length})"
        )


def reference_window(row_start: int, i_shift: int, seq_len: int, chrom_len: int) -> tuple[int, int]:
    """Window `i_shift` of a BED row, exactly as the reference `FastaInterval` computes it (scalar version)."""
    check_seq_len(seq_len)
    if chrom_len < seq_len:
        raise InputError(f"chromosome of length {chrom_len} is shorter than seq_len {seq_len}")
    start = row_start + i_shift * seq_len
    end = start + seq_len
    if end > chrom_len:  # shifted back so that the window ends at the chromosome end
        start, end = chrom_len - seq_len, chrom_len
    return start, end


def bed_window_starts(row_starts: Sequence[int] | np.ndarray, seq_len: int, chrom_len: int) -> np.ndarray:
    """Window starts (int64) of the reference scheme for one chromosome's rows, row-major: row r, shift i at
    `r * (2**20 // seq_len) + i`."""
    check_seq_len(seq_len)
    if chrom_len < seq_len:
        raise InputError(f"chromosome of length {chrom_len} is shorter than seq_len {seq_len}")
    starts = np.asarray(row_starts, dtype=np.int64)[:, None] + np.arange(MAX_ALLOWED_LENGTH // seq_len) * seq_len
    return np.minimum(starts, chrom_len - seq_len).reshape(-1)


def bed_windows_for_chrom(
    rows: Iterable[BedRow], chrom: str, chrom_len: int, seq_len: int
) -> dict[str, np.ndarray]:
    """{split: window starts} of one chromosome (its rows in file order) under the reference scheme."""
    by_split: dict[str, list[int]] = {}
    for row in rows:
        if row.chrom == chrom:
            by_split.setdefault(row.split, []).append(row.start)
    if by_split and chrom_len < seq_len:
        raise InputError(f"chromosome {chrom!r} (length {chrom_len}) is shorter than seq_len {seq_len}")
    return {split: bed_window_starts(starts, seq_len, chrom_len) for split, starts in by_split.items()}


# ------------------------------------------------------------------------------------------------------- tiling
@dataclass(frozen=True)
class Region:
    chrom: str
    start: int | None = None  # None: the whole chromosome
    end: int | None = None

    def __str__(self) -> str:
        return self.chrom if self.start is None else f"{self.chrom}:{self.start}-{self.end}"


_RANGE = re.compile(r"^(?P<chrom>\S+):(?P<start>[0-9][0-9,_]*)-(?P<end>[0-9][0-9,_]*)$")


def parse_range(text: str | Region) -> Region:
    """`NAME:START-END` (0-based, half-open; `,`/`_` digit separators allowed) -> Region. A whole chromosome is
    `Region(name)` (the `--valid-chroms`/`--test-chroms` flags)."""
    if isinstance(text, Region):
        return text
    m = _RANGE.match(text.strip())
    if m is None:
        raise InputError(f"bad range {text!r}: expected NAME:START-END (0-based, half-open), e.g. chrX:1000-2000")
    start, end = (int(m[k].replace(",", "").replace("_", "")) for k in ("start", "end"))
    if start >= end:
        raise InputError(f"bad range {text!r}: start {start} >= end {end}")
    return Region(m["chrom"], start, end)


def chrom_segments(
    chrom: str, chrom_len: int, valid: Sequence[Region] = (), test: Sequence[Region] = ()
) -> list[tuple[int, int, str]]:
    """Split `[0, chrom_len)` into sorted `(start, end, split)` segments: the given valid/test regions of this
    chromosome, and train for the rest. Overlapping regions of one split merge; a valid/test overlap is an error."""
    spans: list[tuple[int, int, str]] = []
    for split, regions in (("valid", valid), ("test", test)):
        for r in regions:
            if r.chrom != chrom:
                continue
            start, end = (0, chrom_len) if r.start is None else (r.start, r.end)
            assert end is not None
            if end > chrom_len:
                raise InputError(f"{split} region {r} extends past the end of {chrom} (length {chrom_len})")
            spans.append((start, end, split))
    spans.sort()
    merged: list[tuple[int, int, str]] = []
    for start, end, split in spans:
        if merged and start < merged[-1][1]:
            if merged[-1][2] != split:
                raise InputError(f"{merged[-1][2]} and {split} regions overlap on {chrom} at {start}")
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]), split)
        else:
            merged.append((start, end, split))
    segments, pos = [], 0
    for start, end, split in merged:
        if start > pos:
            segments.append((pos, start, "train"))
        segments.append((start, end, split))
        pos = end
    if pos < chrom_len:
        segments.append((pos, chrom_len, "train"))
    return segments


def check_regions_known(regions: Iterable[Region], names: Iterable[str], fasta: str | Path) -> None:
    """InputError naming the first region whose chromosome is not a record of the FASTA."""
    names = set(names)
    for r in regions:
        if r.chrom not in names:
            raise InputError(f"region {r}: unknown chromosome {r.chrom!r} (not a record of {fasta})")


def tile_starts(seg_start: int, seg_end: int, seq_len: int) -> np.ndarray:
    """Starts of the non-overlapping windows that fit entirely in `[seg_start, seg_end)`."""
    return np.arange(seg_start, seg_end - seq_len + 1, seq_len, dtype=np.int64)


def count_n(tokens: np.ndarray, starts: np.ndarray, seq_len: int, chunk: int = 4096) -> np.ndarray:
    """Number of N ids in each window `tokens[s:s+seq_len]` (int64, one per start)."""
    counts = np.empty(len(starts), np.int64)
    offsets = np.arange(seq_len)
    for i in range(0, len(starts), chunk):
        idx = starts[i : i + chunk, None] + offsets
        counts[i : i + chunk] = np.count_nonzero(tokens[idx] == N, axis=1)
    return counts


def tile_windows(
    tokens: np.ndarray,
    chrom: str,
    seq_len: int,
    valid: Sequence[Region] = (),
    test: Sequence[Region] = (),
    max_n_fraction: float = 0.5,
) -> dict[str, np.ndarray]:
    """{split: window starts} of one chromosome under tiling, skipping windows with more than `max_n_fraction`
    of N. Splits without windows are absent."""
    if not 0.0 <= max_n_fraction <= 1.0:
        raise InputError(f"max_n_fraction must be in [0, 1], got {max_n_fraction}")
    out: dict[str, list[np.ndarray]] = {}
    for start, end, split in chrom_segments(chrom, len(tokens), valid, test):
        starts = tile_starts(start, end, seq_len)
        if max_n_fraction < 1.0 and len(starts):
            starts = starts[count_n(tokens, starts, seq_len) <= max_n_fraction * seq_len]
        if len(starts):
            out.setdefault(split, []).append(starts)
    return {split: np.concatenate(parts) for split, parts in out.items()}
