"""data_tools.genomic_benchmarks: coordinates + reference FASTA -> the GB on-disk layout, on a synthetic reference."""
import gzip
import random

import pytest

from data_tools import InputError
from data_tools.genomic_benchmarks import main, read_intervals, read_metadata, rebuild
from dnax.data.downstream import load_task

from .conftest import FIXTURES, SHARED_DATA

GENOME_URL = "http://ftp.ensembl.org/pub/release-97/fasta/homo_sapiens/dna/Homo_sapiens.GRCh38.dna.toplevel.fa.gz"
CDNA_URL = "http://ftp.ensembl.org/pub/release-97/fasta/homo_sapiens/cdna/Homo_sapiens.GRCh38.cdna.all.fa.gz"
COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def _expected(seq, start, end, strand):
    """The reference's rule written out independently: slice, uppercase, IUPAC -> N, reverse complement on '-'."""
    text = "".join(c if c in "ACGTN" else "N" for c in seq[start:end].upper())
    return text.translate(COMPLEMENT)[::-1] if strand == "-" else text


def _write_coords(path, rows):
    with gzip.open(path, "wt") as f:
        f.write("id,region,start,end,strand\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


@pytest.fixture
def synthetic(tmp_path):
    rng = random.Random(0)
    genome = {"1": "".join(rng.choice("ACGTacgt") for _ in range(300)),
              "X": "".join(rng.choice("ACGT") for _ in range(90))}
    genome["X"] = genome["X"][:40] + "R" + genome["X"][41:]  # an IUPAC code
    cdna = {"ENST00000000001.4": "".join(rng.choice("ACGT") for _ in range(120))}
    refs = tmp_path / "refs"
    refs.mkdir()
    for name, records in (("Homo_sapiens.GRCh38.dna.toplevel.fa.gz", genome),
                          ("Homo_sapiens.GRCh38.cdna.all.fa.gz", cdna)):
        with gzip.open(refs / name, "wt") as f:
            for rec, seq in records.items():
                lines = "\n".join(seq[i:i + 60] for i in range(0, len(seq), 60))
                f.write(f">{rec} extra header words\n{lines}\n")
    task = tmp_path / "coords" / "demo_coding_vs_intergenomic_seqs"
    for split in ("train", "test"):
        (task / split).mkdir(parents=True)
    (task / "metadata.yaml").write_text(
        f"classes:\n  coding_seqs:\n    type: fa.gz\n    url: {CDNA_URL}\n"
        f"  intergenomic_seqs:\n    type: fa.gz\n    url: {GENOME_URL}\nversion: 0\n")
    rows = {
        ("train", "intergenomic_seqs"): [(0, "chr1", 10, 50, "+"), (1, "chr1", 100, 160, "-"), (2, "chrX", 30, 60, "")],
        ("train", "coding_seqs"): [(7, "ENST00000000001", 0, 30, "+"), (8, "ENST00000000001", 60, 120, "-")],
        ("test", "intergenomic_seqs"): [(3, "chr1", 250, 300, "-")],
        ("test", "coding_seqs"): [(9, "ENST00000000001", 5, 25, "+")],
    }
    for (split, cls), r in rows.items():
        _write_coords(task / split / f"{cls}.csv.gz", r)
    sources = {"chr1": genome["1"], "chrX": genome["X"], "ENST00000000001": cdna["ENST00000000001.4"]}
    return task, refs, rows, sources


def test_rebuild_writes_the_layout_with_minus_strand_reverse_complemented(tmp_path, synthetic):
    task, refs, rows, sources = synthetic
    fastas = [str(p) for p in sorted(refs.iterdir())]
    out = rebuild(task, fastas, tmp_path / "out")
    assert out == tmp_path / "out" / "demo_coding_vs_intergenomic_seqs"
    for (split, cls), r in rows.items():
        files = sorted(p.name for p in (out / split / cls).iterdir())
        assert files == sorted(f"{row[0]}.txt" for row in r)
        for id_, region, start, end, strand in r:
            assert (out / split / cls / f"{id_}.txt").read_text() == _expected(sources[region], start, end, strand)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["demo_coding_vs_intergenomic_seqs"]  # no temp left
    data = load_task("demo_coding_vs_intergenomic_seqs", source="disk", data_dir=tmp_path / "out", val_fraction=0.0)
    assert data.class_names == ["coding_seqs", "intergenomic_seqs"]
    assert (out / "train" / "intergenomic_seqs" / "1.txt").read_text() in {s for s, y in data.train if y == 1}


def test_cli_rebuilds_again_in_place_and_reports(tmp_path, synthetic, capsys):
    task, refs, rows, _ = synthetic
    args = ["rebuild", "--task", task.name, "--coords", str(task.parent), "--out", str(tmp_path / "out")]
    for p in sorted(refs.iterdir()):
        args += ["--fasta", str(p)]
    assert main(args) == 0
    stale = tmp_path / "out" / task.name / "train" / "coding_seqs" / "stale.txt"
    stale.write_text("ACGT")
    assert main(args) == 0  # replaces the whole folder
    assert not stale.exists()
    assert "train 5, test 2" in capsys.readouterr().out


def test_class_equals_path_and_errors(tmp_path, synthetic, capsys):
    task, refs, rows, _ = synthetic
    genome, cdna = refs / "Homo_sapiens.GRCh38.dna.toplevel.fa.gz", refs / "Homo_sapiens.GRCh38.cdna.all.fa.gz"
    renamed = tmp_path / "tx.fa.gz"
    renamed.write_bytes(cdna.read_bytes())
    assert rebuild(task, [str(genome), f"coding_seqs={renamed}"], tmp_path / "o1").is_dir()
    with pytest.raises(InputError, match="class 'coding_seqs': no --fasta for its reference"):
        rebuild(task, [str(genome), str(renamed)], tmp_path / "o2")
    _write_coords(task / "test" / "intergenomic_seqs.csv.gz", [(3, "chr1", 250, 301, "-")])
    with pytest.raises(InputError, match=r"intergenomic_seqs\.csv\.gz:2: interval \[250, 301\) runs past the end of "
                                         r"FASTA record '1' \(300 bp\)"):
        rebuild(task, [str(genome), str(cdna)], tmp_path / "o3")
    assert not (tmp_path / "o3" / task.name).exists()  # nothing half-written
    _write_coords(task / "test" / "intergenomic_seqs.csv.gz", [(3, "chr7", 0, 10, "+")])
    with pytest.raises(InputError, match=r"no record for region\(s\) chr7"):
        rebuild(task, [str(genome), str(cdna)], tmp_path / "o4")
    assert main(["rebuild", "--task", "nope", "--coords", str(task.parent), "--fasta", str(genome)]) == 2
    assert "no Genomic Benchmarks task folder 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("rows, message", [
    ("id,region,start,end\n0,chr1,1,2\n", "header is"),
    ("id,region,start,end,strand\n0,chr1,5,5,+\n", r":2: empty interval \[5, 5\)"),
    ("id,region,start,end,strand\n0,chr1,-1,5,+\n", ":2: start/end must be non-negative integers"),
    ("id,region,start,end,strand\n0,chr1,1,5,x\n", ":2: strand must be"),
    ("id,region,start,end,strand\n0,chr1,1,5,+\n0,chr1,1,5,+\n", ":3: duplicate id '0' \\(first at line 2\\)"),
])
def test_bad_coordinate_rows(tmp_path, rows, message):
    path = tmp_path / "c.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write(rows)
    with pytest.raises(InputError, match=message):
        read_intervals(path)


def test_real_coordinate_files_parse():
    task = FIXTURES / "gb_coords" / "dummy_mouse_enhancers_ensembl"
    assert set(read_metadata(task)) == {"negative", "positive"}
    rows = read_intervals(task / "train" / "negative.csv.gz")
    raw = gzip.open(task / "train" / "negative.csv.gz", "rt").read().splitlines()[1:]
    assert [(r.id, r.region, r.start, r.end, "-" if r.minus else "+") for r in rows] == \
           [tuple(int(x) if x.isdigit() and i in (2, 3) else x for i, x in enumerate(line.split(","))) for line in raw]


@pytest.mark.skipif(not (SHARED_DATA / "genomic_benchmarks_coords").is_dir(), reason="shared GB coordinates absent")
def test_full_shared_coordinate_files_have_the_documented_row_counts():
    task = SHARED_DATA / "genomic_benchmarks_coords" / "dummy_mouse_enhancers_ensembl"
    counts = {(s, c): len(read_intervals(task / s / f"{c}.csv.gz")) for s in ("train", "test")
              for c in ("negative", "positive")}
    assert counts == {("train", "negative"): 484, ("train", "positive"): 484, ("test", "negative"): 121,
                      ("test", "positive"): 121}
