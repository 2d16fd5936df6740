"""Read labelled sequences from local files: CSV/TSV (optionally gzip), Parquet, FASTA with the label in the header,
and the Genomic Benchmarks on-disk layout `<task>/{train,test}/<class>/<id>.txt`.

Every reader returns `Rows`: (sequence, label name, line or row number) triples, sequences stripped of surrounding
whitespace and checked against `dnax.tokenizer` (ACGT, lowercase and IUPAC codes accepted). Every problem raises
`TaskDataError` with one line naming the file and, where it has one, the line (and column).
"""
from __future__ import annotations

import csv
import gzip
import io
import re
from pathlib import Path

from dnax.data.downstream.tasks import TaskDataError
from dnax.tokenizer import encode

Rows = list[tuple[str, str, int]]  # (sequence, label name, 1-based line (text) or row (parquet) number)

GZIP_MAGIC = b"\x1f\x8b"
FASTA_SUFFIXES = {".fa", ".fasta", ".fna", ".ffn", ".fas"}
TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
_LABEL_IN_HEADER = re.compile(r"(?:^|\s)label=(\S+)")


def file_format(path: str | Path) -> str:
    """'csv', 'tsv', 'parquet' or 'fasta', from the name (a trailing `.gz` is ignored)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in FASTA_SUFFIXES:
        return "fasta"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in TABLE_DELIMITERS:
        return "csv" if suffix == ".csv" else "tsv"
    raise TaskDataError(f"{path}: unknown file type {suffix or '(none)'!r} (expected .csv, .tsv, .parquet or FASTA "
                        f"{'/'.join(sorted(FASTA_SUFFIXES))}, optionally .gz)")


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a text file, gunzipping when it starts with the gzip magic bytes."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
    except FileNotFoundError:
        raise TaskDataError(f"{path}: no such file") from None
    except OSError as e:
        raise TaskDataError(f"{path}: cannot open: {e.strerror or e}") from None
    raw = gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")  # -sig: drops a BOM (Excel)


def check_sequence(seq: str, where: str) -> str:
    """`seq` stripped; raises naming `where` on an empty sequence or a character the tokenizer rejects."""
    seq = seq.strip()
    if not seq:
        raise TaskDataError(f"{where}: empty sequence")
    try:
        encode(seq)
    except ValueError as e:
        raise TaskDataError(f"{where}: {e}") from None
    return seq


def read_labelled(path: str | Path, *, sequence_column: str = "sequence", label_column: str = "label") -> Rows:
    """All (sequence, label, line) rows of one file, its format chosen by `file_format`."""
    fmt = file_format(path)
    if fmt == "fasta":
        return read_fasta_labelled(path)
    if fmt == "parquet":
        return read_parquet(path, sequence_column, label_column)
    return read_table(path, sequence_column, label_column, TABLE_DELIMITERS[".csv" if fmt == "csv" else ".tsv"])


def read_table(path: str | Path, sequence_column: str, label_column: str, delimiter: str) -> Rows:
    """A delimited text file with a header row naming `sequence_column` and `label_column`."""
    rows: Rows = []
    try:
        with open_text(path) as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise TaskDataError(f"{path}: empty file")
            header = [h.strip() for h in header]
            missing = [c for c in (sequence_column, label_column) if c not in header]
            if missing:
                raise TaskDataError(f"{path}:1: no column {missing[0]!r} in the header (columns: {', '.join(header)})"
                                    f"{_delimiter_hint(header, delimiter)}")
            seq_i, label_i = header.index(sequence_column), header.index(label_column)
            for fields in reader:
                line = reader.line_num
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue  # blank line
                if len(fields) != len(header):
                    raise TaskDataError(f"{path}:{line}: {len(fields)} fields, the header has {len(header)}")
                label = fields[label_i].strip()
                if not label:
                    raise TaskDataError(f"{path}:{line}:{label_i + 1}: empty label in column {label_column!r}")
                seq = check_sequence(fields[seq_i], f"{path}:{line}:{seq_i + 1}")
                rows.append((seq, label, line))
    except (EOFError, OSError, csv.Error) as e:
        raise TaskDataError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    if not rows:
        raise TaskDataError(f"{path}: no data rows")
    return rows


def _delimiter_hint(header: list[str], delimiter: str) -> str:
    """'; ...' when a one-column header looks delimited by the other of comma and tab (a .tsv with commas)."""
    other = {",": "\t", "\t": ","}.get(delimiter)
    if len(header) == 1 and other and other in header[0]:
        names = {",": "comma", "\t": "tab"}
        return (f"; the header looks {names[other]}-separated, but this file type is read "
                f"{names[delimiter]}-separated (name it {'.csv' if other == ',' else '.tsv'})")
    return ""


def read_parquet(path: str | Path, sequence_column: str, label_column: str) -> Rows:
    """A Parquet file with `sequence_column` and `label_column`; positions are 1-based row numbers."""
    import pyarrow.parquet as pq

    if not Path(path).exists():
        raise TaskDataError(f"{path}: no such file")
    try:
        names = pq.read_schema(path).names
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise TaskDataError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None
    missing = [c for c in (sequence_column, label_column) if c not in names]
    if missing:
        raise TaskDataError(f"{path}: no column {missing[0]!r} (columns: {', '.join(names)})")
    table = pq.read_table(path, columns=[sequence_column, label_column])
    rows: Rows = []
    for i, (seq, label) in enumerate(zip(table.column(0).to_pylist(), table.column(1).to_pylist()), 1):
        if label is None or not str(label).strip():
            raise TaskDataError(f"{path}: row {i}: empty label in column {label_column!r}")
        if not isinstance(seq, str):
            raise TaskDataError(f"{path}: row {i}: column {sequence_column!r} is not text")
        rows.append((check_sequence(seq, f"{path}: row {i}"), str(label).strip(), i))
    if not rows:
        raise TaskDataError(f"{path}: no data rows")
    return rows


def header_label(header: str) -> str | None:
    """The label of a FASTA header (without '>'): a `label=X` word, else the last `|` field of the first word
    (the Nucleotide Transformer files use `>name|label`)."""
    found = _LABEL_IN_HEADER.search(header)
    if found:
        return found.group(1)
    words = header.split()
    if words and "|" in words[0]:
        return words[0].rsplit("|", 1)[1] or None
    return None


def read_fasta_labelled(path: str | Path) -> Rows:
    """A FASTA file whose headers carry the label (`>id|label` or `>id label=label`)."""
    rows: Rows = []
    label: str | None = None
    header_line = 0
    pieces: list[str] = []

    def finish() -> None:
        if label is not None:
            if not pieces:
                raise TaskDataError(f"{path}:{header_line}: record without sequence")
            rows.append((check_sequence("".join(pieces), f"{path}:{header_line}"), label, header_line))

    try:
        with open_text(path) as f:
            for line_no, line in enumerate(f, 1):
                line = line.strip()
                if line.startswith(">"):
                    finish()
                    label, header_line, pieces = header_label(line[1:]), line_no, []
                    if label is None:
                        raise TaskDataError(
                            f"{path}:{line_no}: no label in FASTA header (expected '>id|label' or 'label=...')")
                elif line:
                    if label is None:
                        raise TaskDataError(f"{path}:{line_no}: sequence line before the first '>' header")
                    pieces.append(line)
    except (EOFError, OSError) as e:
        raise TaskDataError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    finish()
    if not rows:
        raise TaskDataError(f"{path}: no FASTA records")
    return rows


def _file_order(path: Path) -> tuple:
    return (0, int(path.stem), "") if path.stem.isdigit() else (1, 0, path.stem)


def read_genomic_benchmarks_layout(task_dir: str | Path) -> dict[str, Rows]:
    """{'train': rows, 'test': rows} from `<task_dir>/{train,test}/<class>/<id>.txt`; labels are the class folder
    names; files are read in numeric-id order (line number 0: there is one sequence per file)."""
    task_dir = Path(task_dir)
    splits: dict[str, Rows] = {}
    for split in ("train", "test"):
        split_dir = task_dir / split
        if not split_dir.is_dir():
            raise TaskDataError(f"{split_dir}: missing (expected the Genomic Benchmarks layout "
                                "<task>/{train,test}/<class>/<id>.txt)")
        classes = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise TaskDataError(f"{split_dir}: no class folders")
        rows: Rows = []
        for class_dir in classes:
            files = sorted((p for p in class_dir.glob("*.txt")), key=_file_order)
            if not files:
                raise TaskDataError(f"{class_dir}: no .txt sequence files")
            for file in files:
                rows.append((check_sequence(file.read_text(encoding="ascii", errors="replace"), str(file)),
                             class_dir.name, 0))
        splits[split] = rows
    train_classes = {label for _, label, _ in splits["train"]}
    extra = sorted({label for _, label, _ in splits["test"]} - train_classes)
    if extra:
        raise TaskDataError(f"{task_dir / 'test'}: class folder {extra[0]!r} has no counterpart in train/")
    return splits
