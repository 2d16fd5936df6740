import numpy as np
import pytest

from data_tools import InputError
from data_tools.fasta import read_fasta
from data_tools.windows import (
    MAX_ALLOWED_LENGTH,
    Region,
    bed_windows_for_chrom,
    check_seq_len,
    chrom_segments,
    parse_bed,
    parse_range,
    reference_window,
    tile_windows,
)
from dnax.tokenizer import N, encode

SEQ_LEN = 2**16  # 16 windows per BED row


def random_dna(rng, n):
    return "".join(rng.choice(list("ACGTacgt"), size=n))


def write_genome(tmp_path, lengths, seed=0):
    rng = np.random.default_rng(seed)
    seqs = {name: random_dna(rng, n) for name, n in lengths.items()}
    with open(tmp_path / "g.fa", "w") as f:
        for name, s in seqs.items():
            f.write(f">{name}\n")
            for i in range(0, len(s), 60):
                f.write(s[i : i + 60] + "\n")
    return tmp_path / "g.fa", seqs


def brute_force_reference(fasta_path, bed_rows, split, seq_len):
    """The reference HG38Dataset + FastaInterval, on Python strings read line by line."""
    seqs, name = {}, None
    for line in open(fasta_path):
        line = line.strip()
        if line.startswith(">"):
            name = line[1:].split()[0]
            seqs[name] = []
        else:
            seqs[name].append(line)
    seqs = {k: "".join(v) for k, v in seqs.items()}
    out = []
    for chrom, start, _end, row_split in bed_rows:
        if row_split != split:
            continue
        end = start + MAX_ALLOWED_LENGTH  # the reference overwrites the BED end
        for i_shift in range(MAX_ALLOWED_LENGTH // seq_len):
            chrom_len = len(seqs[chrom])
            s, e = (start, end) if seq_len == MAX_ALLOWED_LENGTH else (
                start + i_shift * seq_len, start + (i_shift + 1) * seq_len)
            if e > chrom_len:
                s, e = s - (e - chrom_len), chrom_len
            if s < 0:
                e, s = e - s, 0
            if e > chrom_len:
                s, e = chrom_len - seq_len, chrom_len
            out.append((chrom, s, seqs[chrom][s:e]))
    return out


BED_ROWS = [
    ("c1", 0, 131_072, "train"),
    ("c2", 10_000, 20_000, "valid"),
    ("c1", 500_000, 631_072, "train"),
    ("c1", 1_100_000, 1_231_072, "test"),  # windows run past the end of c1: shifted back
    ("c2", 250_000, 300_000, "train"),  # nearly every window shifted back
]
LENGTHS = {"c1": 1_234_567, "c2": 300_001}


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("genome")
    fasta, _ = write_genome(tmp, LENGTHS)
    bed = tmp / "g.bed"
    bed.write_text("".join(f"{c}\t{s}\t{e}\t{sp}\n" for c, s, e, sp in BED_ROWS))
    return fasta, bed


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_reference_scheme_matches_brute_force(genome, split):
    fasta, bed = genome
    rows = parse_bed(bed, LENGTHS)
    tokens = read_fasta(fasta)
    expected = brute_force_reference(fasta, BED_ROWS, split, SEQ_LEN)
    got = []
    for chrom in LENGTHS:  # chromosome-major, rows in file order inside a chromosome
        starts = bed_windows_for_chrom(rows, chrom, LENGTHS[chrom], SEQ_LEN).get(split, [])
        got += [(chrom, int(s), tokens[chrom][s : s + SEQ_LEN]) for s in starts]
    expected.sort(key=lambda w: list(LENGTHS).index(w[0]))  # stable: keeps row order within a chromosome
    assert [(c, s) for c, s, _ in got] == [(c, s) for c, s, _ in expected]
    for (_, _, ids), (_, _, text) in zip(got, expected):
        np.testing.assert_array_equal(ids, encode(text))
    assert len(got) == sum(r[3] == split for r in BED_ROWS) * (MAX_ALLOWED_LENGTH // SEQ_LEN)
    shifted = [s for c, s, _ in got if s == LENGTHS[c] - SEQ_LEN]
    assert shifted or split == "valid"  # the end-shift case is exercised


def test_reference_window_scalar():
    assert reference_window(100, 3, 1024, 10_000) == (100 + 3 * 1024, 100 + 4 * 1024)
    assert reference_window(9_000, 1, 1024, 10_000) == (10_000 - 1024, 10_000)
    assert reference_window(0, 0, 2**20, 3_000_000) == (0, 2**20)


@pytest.mark.parametrize("bad", [1000, 3 * 1024, 2**21, 0, -1024])
def test_seq_len_must_divide_2_pow_20(bad):
    with pytest.raises(InputError, match="seq_len") as info:
        check_seq_len(bad)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("good", [1, 128, 1024, 2**20])
def test_seq_len_ok(good):
    assert check_seq_len(good) == good


@pytest.mark.parametrize("line, match", [
    ("c1\t0\t100", "expected 4 columns"),
    ("c1\t0\t100\ttrain\textra", "expected 4 columns"),
    ("c1\tzero\t100\ttrain", "start 'zero' is not a non-negative integer"),
    ("c1\t0\t1e5\ttrain", "end '1e5' is not"),
    ("c1\t-5\t100\ttrain", "start '-5' is not"),
    ("c1\t100\t100\ttrain", "start 100 >= end 100"),
    ("c1\t0\t100\ttraining", "unknown split 'training'"),
    ("chrZ\t0\t100\ttrain", "unknown chromosome 'chrZ'"),
    ("c2\t0\t300002\ttrain", "extends past the end of c2 (length 300001)"),
])
def test_bad_bed_lines(tmp_path, line, match):
    bed = tmp_path / "bad.bed"
    bed.write_text(f"# comment\nc1\t0\t10\ttrain\n\n{line}\n")
    with pytest.raises(InputError) as info:
        parse_bed(bed, LENGTHS)
    msg = str(info.value)
    assert "\n" not in msg and f"{bed}:4:" in msg and match in msg, msg


def test_bed_missing_or_empty(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        parse_bed(tmp_path / "nope.bed")
    (tmp_path / "e.bed").write_text("\n# nothing\n")
    with pytest.raises(InputError, match="no intervals"):
        parse_bed(tmp_path / "e.bed")


def test_chromosome_shorter_than_seq_len(tmp_path):
    rows = [r for r in parse_bed_text(tmp_path, "c\t0\t10\ttrain\n")]
    with pytest.raises(InputError, match="shorter than seq_len"):
        bed_windows_for_chrom(rows, "c", 100, 128)


def parse_bed_text(tmp_path, text):
    (tmp_path / "x.bed").write_text(text)
    return parse_bed(tmp_path / "x.bed")


def test_parse_range():
    assert parse_range("chrX:1,000-2_000") == Region("chrX", 1000, 2000)
    assert parse_range("HLA-A*01:01:100-200") == Region("HLA-A*01:01", 100, 200)
    for bad in ["chrX", "chrX:5-1", "chrX:a-b", "chrX:100-", ":1-2"]:
        with pytest.raises(InputError, match="bad range"):
            parse_range(bad)


def test_chrom_segments():
    valid = [Region("c", 100, 200), Region("c", 150, 300), Region("d")]
    test = [Region("c", 500, 600)]
    assert chrom_segments("c", 1000, valid, test) == [
        (0, 100, "train"), (100, 300, "valid"), (300, 500, "train"), (500, 600, "test"), (600, 1000, "train")]
    assert chrom_segments("d", 50, valid, test) == [(0, 50, "valid")]
    with pytest.raises(InputError, match="overlap"):
        chrom_segments("c", 1000, [Region("c", 0, 10)], [Region("c", 5, 20)])
    with pytest.raises(InputError, match="extends past the end of c"):
        chrom_segments("c", 1000, [Region("c", 900, 1001)])


def test_tile_windows_segments_and_n_filter():
    tokens = np.full(10_000, 7, np.uint8)
    tokens[1000:1050] = N  # window [1000, 1100): exactly 50% N: kept
    tokens[2000:2051] = N  # window [2000, 2100): 51% N: skipped
    out = tile_windows(tokens, "c", 100, valid=[Region("c", 5050, 6000)], max_n_fraction=0.5)
    train, valid = out["train"], out["valid"]
    assert 1000 in train and 2000 not in train
    assert train.tolist() == [s for s in range(0, 4951, 100) if s != 2000] + list(range(6000, 9901, 100))
    assert valid.tolist() == list(range(5050, 5901, 100))  # from the segment start; the remainder is dropped
    assert "test" not in out
    everything = tile_windows(tokens, "c", 100, max_n_fraction=1.0)
    assert len(everything["train"]) == 100
