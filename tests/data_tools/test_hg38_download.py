"""data_tools.hg38 (download from the first reachable mirror, convert) against a local HTTP server."""
import hashlib

from data_tools.hg38 import BED_NAME, FASTA_NAME, RemoteFile, download, main

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_falls_back_to_mirror_and_cli(http_server, tmp_path, capsys):
    server = http_server
    server.files["/f.bin"] = PAYLOAD
    server.files[f"/{FASTA_NAME}"] = PAYLOAD
    server.files[f"/{BED_NAME}"] = b"chr1\t0\t100\ttrain\n"
    files = (RemoteFile("f.bin", (f"{server.base}/missing", f"{server.base}/f.bin"), len(PAYLOAD), SHA),)
    assert download(tmp_path / "m", files=files, progress=False)["f.bin"].read_bytes() == PAYLOAD
    assert main(["download", "--dir", str(tmp_path / "d"), "--base-url", server.base, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "d" / BED_NAME).exists() and "next: python -m data_tools.hg38 convert" in out


def test_convert_subcommand(tmp_path, capsys, monkeypatch):
    import gzip

    monkeypatch.delenv("DNAX_HG38_MDS", raising=False)
    monkeypatch.setenv("DNAX_CACHE", str(tmp_path / "cache"))  # the default --out: where training reads

    d = tmp_path / "hg38"
    d.mkdir()
    seq = ("ACGTTGCA" * 20_000)[:150_000]
    (d / FASTA_NAME).write_bytes(gzip.compress((">chr1\n" + seq + "\n").encode()))
    (d / BED_NAME).write_text("chr1\t0\t100\ttrain\nchr1\t100000\t131072\tvalid\n")
    assert main(["convert", "--dir", str(d), "--seq-len", str(2**17), "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "mode bed" in out and (tmp_path / "cache" / "hg38" / "mds_131072" / "dnax_mds.json").exists()
    assert main(["convert", "--dir", str(tmp_path / "none")]) == 2
    assert "run `python -m data_tools.hg38 download" in capsys.readouterr().err
