"""Every custom source format on small files (real rows from shared/data copied into fixtures/), and the one-line
errors for malformed input."""
import gzip

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dnax.data.downstream import TaskDataError, custom_task, load_task
from dnax.data.downstream.readers import header_label, read_labelled

from .conftest import FIXTURES


def _tsv_rows(path):
    lines = gzip.open(path, "rt").read().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def test_tsv_gz_reads_every_row():
    path = FIXTURES / "gb_regulatory_sample.tsv.gz"
    rows = read_labelled(path, sequence_column="seq")
    expected = _tsv_rows(path)
    assert [(r[0], r[1]) for r in rows] == [(e["seq"], e["label"]) for e in expected]
    assert rows[0][2] == 2  # line numbers count the header


def test_csv_plain_and_parquet_and_fasta_agree(tmp_path):
    expected = _tsv_rows(FIXTURES / "nt_revised_sample.tsv.gz")
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("label,sequence\n" + "".join(f"{e['label']},{e['sequence'].lower()}\n" for e in expected))
    pq_path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"sequence": [e["sequence"] for e in expected],
                             "label": [int(e["label"]) for e in expected]}), pq_path)
    fa_path = tmp_path / "t.fna.gz"  # the NT files: '>name|label' with the name as in the revised data
    with gzip.open(fa_path, "wt") as f:
        for e in expected:
            seq = e["sequence"]
            f.write(f">{e['name']}\n{seq[:60]}\n{seq[60:]}\n")
    want = [(e["sequence"], e["label"]) for e in expected]
    assert [(s.upper(), l) for s, l, _ in read_labelled(csv_path)] == want
    assert [(s, l) for s, l, _ in read_labelled(pq_path)] == want
    assert [(s, l) for s, l, _ in read_labelled(fa_path)] == want


def test_header_label_forms():
    assert header_label("chr8:66112384-66112784|2") == "2"
    assert header_label("seq7 label=promoter extra") == "promoter"
    assert header_label("seq7 no label") is None


@pytest.mark.parametrize("content, message", [
    ("", r"t\.csv: empty file"),
    ("sequence,y\nACGT,1\n", r"t\.csv:1: no column 'label' in the header \(columns: sequence, y\)"),
    ("sequence,label\nACGT,\n", r"t\.csv:2:2: empty label in column 'label'"),
    ("sequence,label\nACGT,1\nACXT,0\n", r"t\.csv:3:1: invalid nucleotide 'X' at position 2"),
    ("sequence,label\n,1\n", r"t\.csv:2:1: empty sequence"),
    ("sequence,label\nACGT,1,9\n", r"t\.csv:2: 3 fields, the header has 2"),
    ("sequence,label\n", r"t\.csv: no data rows"),
])
def test_malformed_tables_fail_with_one_line(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(TaskDataError, match=message) as err:
        read_labelled(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("content, message", [
    ("ACGT\n>a|1\nACGT\n", r"t\.fa:1: sequence line before the first '>' header"),
    (">a|1\nACGT\n>b\nACGT\n", r"t\.fa:3: no label in FASTA header"),
    (">a|1\n>b|0\nACGT\n", r"t\.fa:1: record without sequence"),
    (">a|1\nAC\nG!\n", r"t\.fa:1: invalid nucleotide '!' at position 3"),
    ("\n", r"t\.fa: no FASTA records"),
])
def test_malformed_fasta_fails_with_one_line(tmp_path, content, message):
    path = tmp_path / "t.fa"
    path.write_text(content)
    with pytest.raises(TaskDataError, match=message):
        read_labelled(path)


def test_missing_file_unknown_type_and_bad_parquet(tmp_path):
    with pytest.raises(TaskDataError, match=r"nope\.csv: no such file"):
        read_labelled(tmp_path / "nope.csv")
    with pytest.raises(TaskDataError, match=r"unknown file type '\.json'"):
        read_labelled(tmp_path / "x.json")
    pq.write_table(pa.table({"seq": ["ACGT"], "label": [1]}), tmp_path / "p.parquet")
    with pytest.raises(TaskDataError, match=r"p\.parquet: no column 'sequence' \(columns: seq, label\)"):
        read_labelled(tmp_path / "p.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(TaskDataError, match=r"bad\.parquet: not a readable Parquet file"):
        read_labelled(tmp_path / "bad.parquet")


def test_label_in_test_file_but_not_in_train_is_named(tmp_path):
    (tmp_path / "train.csv").write_text("sequence,label\nACGT,a\nTTTT,b\n")
    (tmp_path / "test.csv").write_text("sequence,label\nACGT,a\nGGGG,c\n")
    task = custom_task("t", tmp_path / "train.csv", test_path=tmp_path / "test.csv", max_length=8, num_classes=2)
    with pytest.raises(TaskDataError, match=r"test\.csv:3: label 'c' does not occur in the training data"):
        load_task(task)


def test_a_csv_with_a_byte_order_mark_reads_its_header(tmp_path):
    """Spreadsheet programs save CSV as UTF-8 with a BOM; the first column is still `sequence`."""
    from dnax.data.downstream.readers import read_labelled

    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffsequence,label\nacgtN,1\n".encode())
    assert read_labelled(path) == [("acgtN", "1", 2)]


def test_a_table_with_the_other_delimiter_is_named_in_the_error(tmp_path):
    import pytest

    from dnax.data.downstream import TaskDataError
    from dnax.data.downstream.readers import read_labelled

    (tmp_path / "commas.tsv").write_text("sequence,label\nACGT,1\n")
    with pytest.raises(TaskDataError, match=r"commas.tsv:1: no column 'sequence' .*comma-separated, but this file "
                                            r"type is read tab-separated \(name it .csv\)$"):
        read_labelled(tmp_path / "commas.tsv")
