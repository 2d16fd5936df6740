"""`dnax.download.fetch` against a local HTTP server (tests/local_http.py): resume, verification, offline errors."""
import hashlib
import socket

import pytest

from dnax.download import DownloadError, fetch, sidecar

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server(http_server):
    http_server.files["/f.bin"] = PAYLOAD
    return http_server


def test_interrupted_download_resumes_with_range(server, tmp_path):
    server.cuts["/f.bin"] = 1
    dest = fetch(f"{server.base}/f.bin", tmp_path / "f.bin", sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.log == [("/f.bin", None), ("/f.bin", f"bytes={len(PAYLOAD) // 2}-")]
    assert sidecar(dest).read_text().split() == [SHA, "f.bin"]
    assert not (tmp_path / "f.bin.part").exists()


def test_resume_across_runs_from_part_file(server, tmp_path):
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:1000])  # a previous run stopped here
    fetch(f"{server.base}/f.bin", tmp_path / "f.bin", progress=False)  # checksum unknown: size checked, sha recorded
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert server.log == [("/f.bin", "bytes=1000-")]
    assert sidecar(tmp_path / "f.bin").read_text().split()[0] == SHA


def test_complete_part_file_and_server_without_range(server, tmp_path):
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)  # complete already: the server answers 416
    fetch(f"{server.base}/f.bin", tmp_path / "f.bin", progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    server.ignore_range = True
    (tmp_path / "g.part").write_bytes(b"junk")
    fetch(f"{server.base}/f.bin", tmp_path / "g", progress=False)  # 200 to a Range request: starts over
    assert (tmp_path / "g").read_bytes() == PAYLOAD


def test_cached_file_is_verified_then_skipped(server, tmp_path):
    dest = fetch(f"{server.base}/f.bin", tmp_path / "f.bin", progress=False)
    n = len(server.log)
    fetch(f"{server.base}/f.bin", dest, progress=False)
    assert len(server.log) == n  # no request
    data = bytearray(PAYLOAD)
    data[5000] ^= 1
    dest.write_bytes(bytes(data))  # corrupted on disk after the download
    with pytest.raises(DownloadError, match="corrupted") as info:
        fetch(f"{server.base}/f.bin", dest, progress=False)
    assert "\n" not in str(info.value) and str(dest) in str(info.value)


def test_reusing_a_cached_file_prints_no_hashing_bar(server, tmp_path, capsys):
    dest = fetch(f"{server.base}/f.bin", tmp_path / "f.bin", progress=True)
    capsys.readouterr()
    fetch(f"{server.base}/f.bin", dest, progress=True)  # 100 kB hash: well under the bar's 2 s delay
    assert capsys.readouterr().err == ""


def test_corrupted_download_detected_with_known_checksum(server, tmp_path):
    bad = bytearray(PAYLOAD[:2000])
    bad[10] ^= 0xFF
    (tmp_path / "f.bin.part").write_bytes(bytes(bad))  # a wrong prefix: only the checksum can tell
    with pytest.raises(DownloadError, match="does not match the known checksum"):
        fetch(f"{server.base}/f.bin", tmp_path / "f.bin", sha256=SHA, progress=False)
    assert not (tmp_path / "f.bin").exists() and not (tmp_path / "f.bin.part").exists()
    with pytest.raises(DownloadError, match="expected 5"):
        fetch(f"{server.base}/f.bin", tmp_path / "f.bin", size=5, progress=False)


def test_offline_error_names_url_and_destination(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}/hg38.ml.fa.gz"
    with pytest.raises(DownloadError) as info:
        fetch(url, tmp_path / "hg38.ml.fa.gz", progress=False, timeout=5)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"cannot reach {url}: ")
    assert f"download it elsewhere and place it at {tmp_path / 'hg38.ml.fa.gz'}" in msg
