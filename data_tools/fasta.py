"""Stream FASTA records (plain or gzip/BGZF, detected by magic bytes) into uint8 token ids.

The file is read in large blocks and converted with numpy through `dnax.tokenizer.ENCODE_TABLE`; no Python object is
built per base, so a 248 Mbp chromosome costs about its size in memory (the ids of one record at a time).

Every input problem raises `data_tools.InputError` with a one-line message naming the file and, where it has one, the
line (and column): a missing or empty file, no records, sequence before the first header, an empty record name, an
invalid character, a duplicate record name, a corrupt gzip stream (with the line where decoding stops).

    python -m data_tools.fasta FILE...   # check files completely; print each record's name and length
"""
from __future__ import annotations

import gzip
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from data_tools import InputError
from dnax.tokenizer import ENCODE_TABLE, INVALID

GZIP_MAGIC = b"\x1f\x8b"
BLOCK_SIZE = 16 << 20  # bytes read per step


@dataclass(frozen=True)
class FastaRecord:
    index: int  # position of the record in the file, 0-based (the provenance `chrom_index`)
    name: str  # first word of the header line
    line: int  # 1-based line number of the header
    length: int  # number of bases
    tokens: np.ndarray | None  # uint8 ids, shape (length,); None when the record was skipped (see `iter_fasta`)


def open_maybe_gzip(path: str | Path) -> BinaryIO:
    """Open `path` for binary reading, decompressing when it starts with the gzip magic bytes (gzip and BGZF)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot open: {e.strerror or e}") from None
    return gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")


GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def read_block(f: BinaryIO, size: int) -> tuple[bytes, Exception | None]:
    """Up to `size` bytes of `f` (fewer only at the end). On a corrupt or truncated gzip stream: the bytes decoded
    before the damage and the error (a plain `read` would drop them, and with them where the damage is)."""
    if not isinstance(f, gzip.GzipFile):
        return f.read(size), None
    parts, got = [], 0
    try:
        while got < size:
            chunk = f.read1(size - got)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
    except GZIP_ERRORS as e:
        return b"".join(parts), e
    return b"".join(parts), None


def gzip_error(path: str | Path, line: int, error: Exception) -> InputError:
    return InputError(f"{path}:{line}: corrupt or truncated gzip stream (decoding stops in this line): {error}")


def _describe(byte: int) -> str:
    return repr(chr(byte)) if 32 < byte < 127 else f"byte 0x{byte:02x}"


def iter_fasta(
    path: str | Path, *, only: Collection[str] | None = None, block_size: int = BLOCK_SIZE
) -> Iterator[FastaRecord]:
    """Yield every record of a FASTA file in order, one at a time.

    `only`: names of the records to decode; the others are still yielded (with their `index` and `length`) but with
    `tokens=None`, and their characters are not validated. `only=()` validates the structure and measures lengths.
    Lowercase bases and IUPAC codes are accepted as `dnax.tokenizer` maps them; `\\r\\n` line ends are accepted.
    """
    path = Path(path)
    seen: dict[str, int] = {}
    name: str | None = None
    keep = False
    header_line = 0
    length = 0
    pieces: list[np.ndarray] = []
    index = -1

    def finish() -> FastaRecord | None:
        if name is None:
            return None
        tokens = None
        if keep:
            tokens = np.concatenate(pieces) if pieces else np.zeros(0, np.uint8)
        return FastaRecord(index, name, header_line, length, tokens)

    total = 0
    line_no = 1  # line number of buf[0]
    carry: list[bytes] = []
    damage: Exception | None = None  # a gzip error, raised once the lines decoded before it are checked
    try:
        f = open_maybe_gzip(path)
        with f:
            while True:
                if damage is not None:
                    raise gzip_error(path, line_no, damage)
                block, damage = read_block(f, block_size)
                if damage is not None and not block:
                    continue
                total += len(block)
                if block and b"\n" not in block:
                    carry.append(block)  # a very long line: join once a newline (or EOF) arrives
                    continue
                buf = b"".join(carry) + block if carry else block
                carry = []
                if block:
                    cut = buf.rfind(b"\n") + 1
                    buf, rest = buf[:cut], buf[cut:]
                    if rest:
                        carry.append(rest)
                elif not buf:
                    break
                # buf holds whole lines (the last one may lack its newline at EOF)
                pos, pos_line, n = 0, line_no, len(buf)
                while pos < n:
                    if buf[pos] == 62:  # '>' at a line start: a header
                        end = buf.find(b"\n", pos)
                        end = n if end < 0 else end
                        words = buf[pos + 1 : end].split()
                        if not words:
                            raise InputError(f"{path}:{pos_line}: empty record name in header line")
                        record = finish()
                        if record is not None:
                            yield record
                        name = words[0].decode("utf-8", "replace")
                        if name in seen:
                            raise InputError(
                                f"{path}:{pos_line}: duplicate record name {name!r} (first at line {seen[name]})"
                            )
                        seen[name] = header_line = pos_line
                        index += 1
                        keep = only is None or name in only
                        length, pieces = 0, []
                        pos, pos_line = end + 1, pos_line + 1
                        continue
                    nxt = buf.find(b"\n>", pos)
                    seg_end = n if nxt < 0 else nxt + 1
                    seg = buf[pos:seg_end]
                    if name is None:
                        if seg.strip():
                            first = len(seg) - len(seg.lstrip())
                            line = pos_line + seg.count(b"\n", 0, first)
                            raise InputError(f"{path}:{line}: sequence line before the first '>' header")
                    elif keep:
                        ids = ENCODE_TABLE[np.frombuffer(seg.translate(None, b"\r\n"), np.uint8)]
                        if ids.size and ids.max() == INVALID:
                            raw = np.frombuffer(seg, np.uint8)
                            bad = int(np.argmax((ENCODE_TABLE[raw] == INVALID) & (raw != 10) & (raw != 13)))
                            line = pos_line + seg.count(b"\n", 0, bad)
                            col = bad - (seg.rfind(b"\n", 0, bad) + 1) + 1
                            raise InputError(
                                f"{path}:{line}:{col}: invalid character {_describe(raw[bad])} in record {name!r}"
                            )
                        pieces.append(ids)
                        length += ids.size
                    else:
                        length += len(seg) - seg.count(b"\n") - seg.count(b"\r")
                    pos_line += seg.count(b"\n")
                    pos = seg_end
                line_no += buf.count(b"\n")
                if not block:
                    break
    except GZIP_ERRORS as e:  # e.g. while reading the gzip header
        raise gzip_error(path, line_no, e) from None
    if total == 0:
        raise InputError(f"{path}: empty file")
    if name is None:
        raise InputError(f"{path}: no FASTA records (no line starts with '>')")
    record = finish()
    assert record is not None
    yield record


def read_fasta(path: str | Path) -> dict[str, np.ndarray]:
    """All records of a (small) FASTA file as {name: uint8 token ids}."""
    return {r.name: r.tokens for r in iter_fasta(path)}


def read_fai(fai: str | Path) -> dict[str, int]:
    """{name: length} from a samtools `.fai` index (columns: name, length, offset, linebases, linewidth)."""
    lengths: dict[str, int] = {}
    with open(fai, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 2 or not cols[1].isdigit():
                raise InputError(f"{fai}:{line_no}: malformed .fai line (expected NAME<TAB>LENGTH<TAB>...)")
            if cols[0] in lengths:
                raise InputError(f"{fai}:{line_no}: duplicate record name {cols[0]!r}")
            lengths[cols[0]] = int(cols[1])
    if not lengths:
        raise InputError(f"{fai}: empty .fai index")
    return lengths


def fai_path(fasta: str | Path) -> Path:
    return Path(f"{fasta}.fai")


def chrom_lengths(fasta: str | Path) -> dict[str, int]:
    """{name: length} in file order: from `<fasta>.fai` when it exists (trusted as is), else by reading the file."""
    if not Path(fasta).exists():
        raise InputError(f"{fasta}: no such file")
    fai = fai_path(fasta)
    if fai.exists():
        return read_fai(fai)
    return {r.name: r.length for r in iter_fasta(fasta, only=())}


def main(argv: list[str] | None = None) -> int:
    """`python -m data_tools.fasta FILE...`: check each FASTA completely and print `file<TAB>record<TAB>length`."""
    import argparse

    from data_tools import run_cli

    p = argparse.ArgumentParser(prog="python -m data_tools.fasta", description="Check FASTA files as fasta_to_mds "
                                "reads them (every character, gzip integrity) and list their records and lengths.")
    p.add_argument("files", nargs="+", metavar="FILE", help="FASTA, plain or gzip/BGZF")
    a = p.parse_args(argv)

    def body() -> int:
        for path in a.files:
            for record in iter_fasta(path):
                print(f"{path}\t{record.name}\t{record.length}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
