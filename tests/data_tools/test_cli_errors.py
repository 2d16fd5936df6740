"""What a user of the data_tools CLIs sees on bad input, bad output paths and interruptions: one `error:` line,
exit status 2 (130 when interrupted), no traceback, nothing half-written, and a rerun that works."""
import gzip
import os
import signal
import zlib

import pytest

from data_tools import InputError
from data_tools import fasta_to_mds, genomic_benchmarks, hg38
from data_tools.fasta import iter_fasta
from data_tools.windows import parse_bed

CHRM = ("ATCTACNTTCAAATTCCTCCCTGTACGAAAGGACAAGAGAAATAAGGCCTACTTCACAAAGCGCCTTCCCCCGTAAATGATATCATCTCAACTTAGTATT"
        "ATACCCACACCCACCCAAGAACAGGGTTTgttaagatggcagagcccggtaatcgcataaaacttaaaactttacagtcagaggttcaattcctcttctt")
# hg38 chrM [3100, 3300) as in shared/data/human_dna/hg38_chrM.fa: its one N and 71 soft-masked (lowercase) bases


def one_error_line(capsys, rc, expected_rc=2):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == expected_rc and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def lines_decoded_before_damage(data: bytes) -> int:
    """1-based number of the line in which a damaged gzip stream stops decoding (independent of data_tools)."""
    return zlib.decompressobj(31).decompress(data).count(b"\n") + 1


def truncated_gzip(text: str) -> bytes:
    data = gzip.compress(text.encode(), mtime=0)
    return data[: len(data) * 2 // 3]


def test_truncated_gzip_fasta_names_the_line_where_decoding_stops(tmp_path):
    text = ">a\n" + "".join(f"{'ACGT' * 15}\n" for _ in range(20_000)) + ">b\nACGT\n"
    damaged = truncated_gzip(text.replace("ACGTACGTACGT\n", "ACGTACGTACGA\n", 1))  # not all-identical blocks
    path = tmp_path / "t.fa.gz"
    path.write_bytes(damaged)
    line = lines_decoded_before_damage(damaged)
    assert line > 1000
    for block_size in (1 << 16, 1 << 24):
        with pytest.raises(InputError, match=rf"^{path}:{line}: corrupt or truncated gzip stream"):
            list(iter_fasta(path, block_size=block_size))


def test_bed_truncated_gzip_and_track_lines(tmp_path):
    bed = tmp_path / "b.bed.gz"
    damaged = truncated_gzip("".join(f"c1\t{i}\t{i + 7}\ttrain\n" for i in range(20_000)))
    bed.write_bytes(damaged)
    with pytest.raises(InputError, match=rf"^{bed}:{lines_decoded_before_damage(damaged)}: corrupt or truncated"):
        parse_bed(bed)
    ucsc = tmp_path / "u.bed"
    ucsc.write_text("browser position c1:1-100\ntrack name=splits\nc1\t0\t10\tvalid\n")
    assert [(r.chrom, r.start, r.split, r.line) for r in parse_bed(ucsc)] == [("c1", 0, "valid", 3)]


@pytest.fixture
def fasta(tmp_path):
    path = tmp_path / "m.fa"
    path.write_text(">chrM\n" + CHRM[:100] + "\n" + CHRM[100:] + "\n")
    return path


def test_output_path_that_cannot_be_created(tmp_path, fasta, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc = fasta_to_mds.main(["--fasta", str(fasta), "--seq-len", "64", "--out", str(blocker / "out"),
                            "--no-progress"])
    assert f"{blocker / 'out'}: cannot create the output here" in one_error_line(capsys, rc)


def test_bad_size_limit_and_directory_as_fasta(tmp_path, fasta, capsys):
    for bad in ("0", "-5"):
        rc = fasta_to_mds.main(["--fasta", str(fasta), "--seq-len", "64", "--out", str(tmp_path / "o"),
                                "--size-limit", bad, "--no-progress"])
        assert "size_limit must be a positive number of bytes" in one_error_line(capsys, rc)
    rc = fasta_to_mds.main(["--fasta", str(tmp_path), "--seq-len", "64", "--out", str(tmp_path / "o")])
    assert "a directory, not a FASTA file" in one_error_line(capsys, rc)
    assert not (tmp_path / "o").exists()


def test_no_windows_is_an_error_and_leaves_nothing(tmp_path, fasta, capsys):
    out = tmp_path / "out"
    rc = fasta_to_mds.main(["--fasta", str(fasta), "--seq-len", "256", "--out", str(out), "--no-progress"])
    assert "no windows of seq_len 256 (longest record 200 bp" in one_error_line(capsys, rc)
    assert sorted(os.listdir(tmp_path)) == ["m.fa"]
    assert fasta_to_mds.main(["--fasta", str(fasta), "--seq-len", "64", "--out", str(out), "--no-progress"]) == 0
    got = {int(s): t for _, s, t in _read_windows(out / "train")}
    assert sorted(got) == [0, 64, 128]  # 3 tiles; lowercase bases are bases, the one N stays N
    from dnax.tokenizer import encode

    for start, tokens in got.items():
        assert tokens.tolist() == encode(CHRM[start : start + 64]).tolist()


def _read_windows(split_dir):
    from streaming import StreamingDataset

    ds = StreamingDataset(local=str(split_dir), shuffle=False, batch_size=1)
    return [(int(s["chrom_index"]), int(s["start"]), s["tokens"]) for s in (ds[i] for i in range(ds.num_samples))]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupted_conversion_leaves_nothing_and_reruns(tmp_path, fasta, capsys, monkeypatch, sig):
    out = tmp_path / "out"
    real_write = fasta_to_mds.write_chrom

    def interrupted(*args, **kwargs):
        real_write(*args, **kwargs)  # some shards are on disk in the temporary directory
        os.kill(os.getpid(), sig)

    monkeypatch.setattr(fasta_to_mds, "write_chrom", interrupted)
    argv = ["--fasta", str(fasta), "--seq-len", "64", "--out", str(out), "--no-progress"]

    def exits_at_once(signum, frame):  # what a Composer Trainer leaves installed in its process
        raise SystemExit(128 + signum)

    before = {s: signal.signal(s, exits_at_once) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        line = one_error_line(capsys, fasta_to_mds.main(argv), expected_rc=130)
        assert all(signal.getsignal(s) is exits_at_once for s in before)  # the handlers are put back
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    assert line.startswith("error: interrupted;") and str(out) in line
    assert sorted(os.listdir(tmp_path)) == ["m.fa"]  # no output, no .out.tmp-* sibling
    monkeypatch.setattr(fasta_to_mds, "write_chrom", real_write)
    assert fasta_to_mds.main(argv) == 0
    assert fasta_to_mds.read_manifest(out)["summary"]["windows"]["train"] == 3


def test_run_cli_turns_os_errors_into_one_line(capsys):
    from data_tools import run_cli

    def disk_full():
        raise OSError(28, "No space left on device", "/data/x/shard.00003.mds")

    assert "/data/x/shard.00003.mds: No space left on device" in one_error_line(capsys, run_cli(disk_full))


def test_hg38_download_offline_one_line_and_no_directory_left(tmp_path, capsys):
    files = (hg38.RemoteFile("hg38.ml.fa.gz", ("http://127.0.0.1:9/a/hg38.ml.fa.gz",
                                               "http://127.0.0.1:9/b/hg38.ml.fa.gz")),)
    with pytest.raises(hg38.DownloadError) as info:
        hg38.download(tmp_path / "new" / "hg38", files=files, progress=False, timeout=5)
    msg = str(info.value)
    assert "\n" not in msg and "127.0.0.1:9/a/" in msg and "127.0.0.1:9/b/" in msg
    assert msg.count("place it at") == 1 and msg.endswith(f"place it at {tmp_path / 'new' / 'hg38' / 'hg38.ml.fa.gz'}")
    assert not (tmp_path / "new" / "hg38").exists()
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc = hg38.main(["download", "--dir", str(blocker / "d"), "--base-url", "http://127.0.0.1:9", "--no-progress"])
    assert "cannot create the download directory" in one_error_line(capsys, rc)


def test_hg38_convert_writes_where_training_reads(tmp_path, monkeypatch, capsys):
    from dnax.data.sources import hg38_mds

    monkeypatch.setenv("DNAX_HG38_MDS", str(tmp_path / "store" / "mds_{seq_len}"))
    d = tmp_path / "hg38"
    d.mkdir()
    (d / hg38.FASTA_NAME).write_bytes(gzip.compress((">chrM\n" + CHRM * 700 + "\n").encode()))
    (d / hg38.BED_NAME).write_text("chrM\t0\t100\ttrain\n")
    assert hg38.main(["convert", "--dir", str(d), "--seq-len", str(2**16), "--workers", "1", "--no-progress"]) == 0
    assert (tmp_path / "store" / "mds_65536" / "dnax_mds.json").exists()
    assert hg38_mds(2**16) in capsys.readouterr().out


def test_genomic_benchmarks_bad_coordinates_and_output(tmp_path, fasta, capsys):
    task = tmp_path / "coords" / "mt"
    for split in ("train", "test"):
        (task / split).mkdir(parents=True)
        (task / split / "a.csv.gz").write_bytes(gzip.compress(b"id,region,start,end,strand\nx1,chrM,10,30,-\n"))
    (task / "metadata.yaml").write_text("classes:\n  a:\n    url: http://x/m.fa\n")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    argv = ["rebuild", "--task", "mt", "--coords", str(tmp_path / "coords"), "--fasta", str(fasta)]
    rc = genomic_benchmarks.main(argv + ["--out", str(blocker)])
    assert f"{blocker / 'mt'}: cannot create the output here" in one_error_line(capsys, rc)
    damaged = truncated_gzip("id,region,start,end,strand\n" + "".join(f"r{i},chrM,0,9,\n" for i in range(9000)))
    (task / "train" / "a.csv.gz").write_bytes(damaged)
    rc = genomic_benchmarks.main(argv + ["--out", str(tmp_path / "gb")])
    line = one_error_line(capsys, rc)
    assert f"a.csv.gz:{lines_decoded_before_damage(damaged)}: corrupt or truncated gzip stream" in line
    assert not (tmp_path / "gb" / "mt").exists()


def test_fasta_cli_checks_and_lists(tmp_path, fasta, capsys):
    from data_tools.fasta import main as fasta_main

    assert fasta_main([str(fasta)]) == 0
    assert capsys.readouterr().out == f"{fasta}\tchrM\t200\n"
    bad = tmp_path / "bad.fa"
    bad.write_text(">s\nACGT\nAC!T\n")
    assert one_error_line(capsys, fasta_main([str(fasta), str(bad)])) == f"error: {bad}:3:3: invalid character '!' in record 's'"
