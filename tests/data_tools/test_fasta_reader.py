import gzip

import numpy as np
import pytest

from data_tools import InputError
from data_tools.fasta import chrom_lengths, iter_fasta, read_fasta
from dnax.tokenizer import encode

TEXT = ">chr1 first record\nACGTN\nacgtn\r\n\nRYKMSWBDHV\n>chr2\nGGGG\nCC\n>empty\n>chr3\nT\n"
EXPECTED = {"chr1": "ACGTNacgtnRYKMSWBDHV", "chr2": "GGGGCC", "empty": "", "chr3": "T"}


def write(path, text, gz=False):
    data = text.encode() if isinstance(text, str) else text
    if gz:
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("block_size", [3, 17, 1 << 20])
def test_records_match_tokenizer(tmp_path, gz, block_size):
    path = write(tmp_path / ("x.fa.gz" if gz else "x.fa"), TEXT, gz)
    records = list(iter_fasta(path, block_size=block_size))
    assert [r.name for r in records] == list(EXPECTED)
    assert [r.index for r in records] == [0, 1, 2, 3]
    assert [r.line for r in records] == [1, 6, 9, 10]
    for r in records:
        assert r.tokens.dtype == np.uint8 and r.length == len(EXPECTED[r.name])
        np.testing.assert_array_equal(r.tokens, encode(EXPECTED[r.name]))


def test_only_skips_decoding_but_measures(tmp_path):
    path = write(tmp_path / "x.fa", TEXT.replace("GGGG", "GG#G"))  # invalid in a skipped record: not checked
    records = list(iter_fasta(path, only={"chr3"}))
    assert [(r.name, r.length, r.tokens is None) for r in records] == [
        ("chr1", 20, True), ("chr2", 6, True), ("empty", 0, True), ("chr3", 1, False)]


def test_chrom_lengths_from_fai_or_reading(tmp_path):
    path = write(tmp_path / "x.fa", TEXT)
    assert chrom_lengths(path) == {k: len(v) for k, v in EXPECTED.items()}
    (tmp_path / "x.fa.fai").write_text("chr1\t999\t6\t5\t6\n")  # a .fai is trusted as is
    assert chrom_lengths(path) == {"chr1": 999}


def test_real_sample_reads():
    from data_tools.fasta_to_mds import sample_fasta

    (rec,) = iter_fasta(sample_fasta())
    assert rec.name == "X_65000000_69000000" and rec.length == 4_000_000
    assert set(np.unique(rec.tokens)) <= {7, 8, 9, 10}  # ACGT only


def one_line_error(path, line=None, *, match, **kw):
    with pytest.raises(InputError) as info:
        list(iter_fasta(path, **kw))
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and match in msg, msg
    if line is not None:
        assert f"{path}:{line}:" in msg, msg
    return msg


@pytest.mark.parametrize("text, line, match", [
    ("", None, "empty file"),
    ("\n\n", None, "no FASTA records"),
    ("\nACGT\n>a\nAC\n", 2, "before the first '>' header"),
    (">a\nACGT\nACXT\n", 3, "invalid character 'X'"),
    (">a\nACGT\nAC GT\n", 3, "invalid character"),
    (">a\nAC\n>b\nGG\n>a\nTT\n", 5, "duplicate record name 'a' (first at line 1)"),
    (">\nACGT\n", 1, "empty record name"),
])
def test_bad_input_one_line_errors(tmp_path, text, line, match):
    one_line_error(write(tmp_path / "bad.fa", text), line, match=match)


def test_invalid_character_line_and_column_across_blocks(tmp_path):
    lines = [">chrA"] + ["ACGT" * 15] * 3000
    lines[1234] = "ACGT" * 5 + "ACG*" + "ACGT" * 10  # file line 1235, column 24
    path = write(tmp_path / "bad.fa.gz", "\n".join(lines) + "\n", gz=True)
    msg = one_line_error(path, 1235, match="invalid character '*' in record 'chrA'", block_size=100)
    assert f"{path}:1235:24:" in msg


def test_missing_and_corrupt_gzip(tmp_path):
    one_line_error(tmp_path / "nope.fa", match="no such file")
    data = gzip.compress((">a\n" + "ACGT" * 50_000 + "\n").encode())
    one_line_error(write(tmp_path / "trunc.fa.gz", data[: len(data) // 2]), match="corrupt or truncated gzip")


def test_read_fasta_dict(tmp_path):
    out = read_fasta(write(tmp_path / "x.fa", TEXT))
    assert list(out) == list(EXPECTED)
