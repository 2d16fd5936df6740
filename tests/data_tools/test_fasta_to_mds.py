import json
import re
import time

import numpy as np
import pytest

from data_tools import InputError
from data_tools.fasta_to_mds import MANIFEST, convert, convert_sample, main, read_manifest
from dnax.tokenizer import encode

SEQ_LEN = 2**16


def write_fasta(path, seqs, width=60):
    with open(path, "w") as f:
        for name, s in seqs.items():
            f.write(f">{name}\n" + "".join(s[i : i + width] + "\n" for i in range(0, len(s), width)))
    return path


def random_seqs(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return {name: "".join(rng.choice(list("ACGT"), size=n)) for name, n in lengths.items()}


def read_split(root, split):
    """[(chrom_index, start, tokens)] of a split, in stored order, through streaming's reader."""
    from streaming import StreamingDataset

    ds = StreamingDataset(local=str(root / split), shuffle=False, batch_size=1)
    return [(int(s["chrom_index"]), int(s["start"]), s["tokens"]) for s in (ds[i] for i in range(ds.num_samples))]


def siblings(path):
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name and path.name in p.name)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("small")
    seqs = random_seqs({"c1": 1_200_001, "c2": 200_000, "unused": 70_000})
    fasta = write_fasta(tmp / "g.fa", seqs)
    bed = tmp / "g.bed"
    bed.write_text("c1\t0\t100\ttrain\nc2\t5\t100\tvalid\nc1\t1000000\t1131072\ttest\nc2\t100000\t200000\ttrain\n")
    return tmp, fasta, bed, seqs


def test_bed_conversion_reproduces_reference_windows(small):
    tmp, fasta, bed, seqs = small
    s = convert(fasta, tmp / "out", SEQ_LEN, bed=bed, progress=False)
    assert s["mode"] == "bed" and s["chroms"] == ["c1", "c2", "unused"]
    assert s["windows"] == {"train": 32, "valid": 16, "test": 16}
    assert s["tokens"]["train"] == 32 * SEQ_LEN
    names = read_manifest(tmp / "out")["summary"]["chroms"]
    for split, rows in {"train": [("c1", 0), ("c2", 100_000)], "valid": [("c2", 5)],
                        "test": [("c1", 1_000_000)]}.items():
        got = read_split(tmp / "out", split)
        expected = []
        for chrom, start in rows:  # reference: window i at start + i*L, shifted back to end at the chromosome end
            for i in range(16):
                st = min(start + i * SEQ_LEN, len(seqs[chrom]) - SEQ_LEN)
                expected.append((chrom, st))
        assert [(names[c], st) for c, st, _ in got] == expected
        for c, st, ids in got:
            np.testing.assert_array_equal(ids, encode(seqs[names[c]][st : st + SEQ_LEN]))


def test_idempotent_and_mismatch(tmp_path):
    seqs = random_seqs({"a": 50_000})
    fasta = write_fasta(tmp_path / "a.fa", seqs)
    out = tmp_path / "out"
    first = convert(fasta, out, 1024, valid_ranges=["a:40000-50000"], progress=False)
    assert not first["skipped"] and first["windows"]["valid"] == 9
    manifest = (out / MANIFEST).stat().st_mtime_ns
    t0 = time.perf_counter()
    again = convert(fasta, out, 1024, valid_ranges=["a:40,000-50,000"], progress=False)
    assert again["skipped"] and time.perf_counter() - t0 < 1.0
    assert again["windows"] == first["windows"] and (out / MANIFEST).stat().st_mtime_ns == manifest
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "a.fa").write_bytes(fasta.read_bytes())  # the same file elsewhere: still the same conversion
    assert convert(moved / "a.fa", out, 1024, valid_ranges=["a:40000-50000"], progress=False)["skipped"]
    with pytest.raises(InputError, match="other arguments.*seq_len: 1024 there, 2048 now") as info:
        convert(fasta, out, 2048, valid_ranges=["a:40000-50000"], progress=False)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="valid"):
        convert(fasta, out, 1024, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x").write_text("x")
    with pytest.raises(InputError, match="not a finished fasta_to_mds output"):
        convert(fasta, foreign, 1024, progress=False)


def test_atomic_when_a_bad_bed_line_is_found_late(small):
    tmp, fasta, _, _ = small
    bed = tmp / "late.bed"  # no .fai: c2 lengths are only known once c2 is read, after c1 was written
    bed.write_text("c1\t0\t100\ttrain\nc2\t5\t100\tvalid\nc2\t199990\t200001\ttrain\n")
    out = tmp / "late_out"
    with pytest.raises(InputError) as info:
        convert(fasta, out, SEQ_LEN, bed=bed, progress=False)
    assert f"{bed}:3:" in str(info.value) and "extends past the end of c2" in str(info.value)
    assert not out.exists() and siblings(out) == []
    bed.write_text("c1\t0\t100\ttrain\nchrQ\t5\t100\tvalid\n")  # unknown chromosome: found after the whole FASTA
    with pytest.raises(InputError, match=re.escape(f"{bed}:2: unknown chromosome 'chrQ'")):
        convert(fasta, out, SEQ_LEN, bed=bed, progress=False)
    assert not out.exists() and siblings(out) == []


def test_atomic_when_the_fasta_is_bad_late(tmp_path):
    fasta = tmp_path / "g.fa"
    fasta.write_text(">a\n" + "ACGT" * 1000 + "\n>b\nACGT\nAC!T\n")
    out = tmp_path / "out"
    with pytest.raises(InputError, match=re.escape(f"{fasta}:5:3: invalid character '!' in record 'b'")):
        convert(fasta, out, 128, progress=False)
    assert not out.exists() and siblings(out) == []


def test_bad_arguments(tmp_path):
    fasta = write_fasta(tmp_path / "a.fa", random_seqs({"a": 5000}))
    with pytest.raises(InputError, match="must divide 2\\*\\*20"):
        convert(fasta, tmp_path / "o", 1000, progress=False)
    with pytest.raises(InputError, match="unknown chromosome 'b'"):
        convert(fasta, tmp_path / "o", 128, test_chroms=["b"], progress=False)
    with pytest.raises(InputError, match="fixes the splits"):
        convert(fasta, tmp_path / "o", 128, bed=fasta, valid_chroms=["a"], progress=False)
    with pytest.raises(InputError, match="no such file"):
        convert(tmp_path / "missing.fa", tmp_path / "o", 128, progress=False)
    assert not (tmp_path / "o").exists()


def test_cli_summary_and_one_line_error(tmp_path, capsys):
    fasta = write_fasta(tmp_path / "a.fa", random_seqs({"a": 20_000, "b": 9_000}))
    out = tmp_path / "out"
    assert main(["--fasta", str(fasta), "--seq-len", "1024", "--out", str(out), "--test-chroms", "b",
                 "--compression", "zstd", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and "train" in text and "19 windows" in text and "8 windows" in text
    assert json.loads((out / MANIFEST).read_text())["args"]["compression"] == "zstd"
    assert main(["--fasta", str(fasta), "--seq-len", "1000", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "1000" in err


def test_workers_write_the_same_windows(tmp_path):
    fasta = write_fasta(tmp_path / "g.fa", random_seqs({"a": 30_000, "b": 20_000, "c": 10_000}, seed=3))
    one = convert(fasta, tmp_path / "one", 1024, test_chroms=["c"], progress=False)
    two = convert(fasta, tmp_path / "two", 1024, test_chroms=["c"], workers=2, progress=False)
    assert one["per_chrom"] == two["per_chrom"]
    for split in ("train", "test"):
        a, b = read_split(tmp_path / "one", split), read_split(tmp_path / "two", split)
        assert [(c, s) for c, s, _ in a] == [(c, s) for c, s, _ in b]


def test_sample_conversion_is_quick(tmp_path):
    t0 = time.perf_counter()
    s = convert_sample(tmp_path / "sample", progress=False)
    assert time.perf_counter() - t0 < 30
    assert s["chroms"] == ["X_65000000_69000000"]
    assert s["windows"] == {"train": 3417, "valid": 488, "test": 0}  # 3.5 Mbp // 1024, 0.5 Mbp // 1024


def test_remote_out_stages_locally_and_uploads_manifest_last(tmp_path, monkeypatch):
    """The object-store path with streaming's uploader/downloader replaced by a local 'bucket' directory."""
    import shutil

    from streaming.base.storage import CloudDownloader
    from streaming.base.storage import upload as upload_mod

    bucket, uploaded = tmp_path / "bucket", []

    class FakeUploader:
        def __init__(self, out):
            self.local, self.remote = out

        def upload_file(self, rel):
            assert self.remote == "s3://bkt/genome"
            uploaded.append(rel)
            (bucket / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f"{self.local}/{rel}", bucket / rel)

    real_download = CloudDownloader.direct_download  # merge_index also uses it, for local files

    def fake_download(remote, local, timeout=60):
        if not remote.startswith("s3://"):
            return real_download(remote, local, timeout)
        src = bucket / remote.removeprefix("s3://bkt/genome/")
        if not src.exists():
            raise FileNotFoundError(remote)
        shutil.copy(src, local)

    real_get = upload_mod.CloudUploader.get  # MDSWriter also uses it, for local directories

    def fake_get(out, *args, **kwargs):
        return FakeUploader(out) if isinstance(out, tuple) else real_get(out, *args, **kwargs)

    monkeypatch.setattr(upload_mod.CloudUploader, "get", staticmethod(fake_get))
    monkeypatch.setattr(CloudDownloader, "direct_download", staticmethod(fake_download))
    fasta = write_fasta(tmp_path / "a.fa", random_seqs({"a": 20_000, "b": 9_000}))
    s = convert(fasta, "s3://bkt/genome", 1024, test_chroms=["b"], local_staging=tmp_path / "stage", progress=False)
    assert s["out"] == "s3://bkt/genome" and not s["skipped"] and s["windows"]["test"] == 8
    assert uploaded[-1] == MANIFEST and "train/index.json" in uploaded and "test/b/index.json" in uploaded
    staged = sorted(str(p.relative_to(tmp_path / "stage")) for p in (tmp_path / "stage").rglob("*") if p.is_file())
    assert sorted(uploaded) == staged
    again = convert(fasta, "s3://bkt/genome", 1024, test_chroms=["b"], local_staging=tmp_path / "x", progress=False)
    assert again["skipped"] and not (tmp_path / "x").exists()
    with pytest.raises(InputError, match="other arguments"):
        convert(fasta, "s3://bkt/genome", 2048, test_chroms=["b"], progress=False)
