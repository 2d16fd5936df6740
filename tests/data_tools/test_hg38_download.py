"""data_tools.hg38 against a local HTTP server on 127.0.0.1 (never the internet)."""
import hashlib
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from data_tools.hg38 import BED_NAME, FASTA_NAME, DownloadError, RemoteFile, download, fetch, main, sidecar

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        srv = self.server
        data = srv.files.get(self.path)
        rng = self.headers.get("Range")
        srv.log.append((self.path, rng))
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng and not srv.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng)[1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cuts.get(self.path, 0) > 0:  # send half, then drop the connection
            srv.cuts[self.path] -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.files, srv.log, srv.cuts, srv.ignore_range = {"/f.bin": PAYLOAD}, [], {}, False
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


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


def test_download_falls_back_to_mirror_and_cli(server, tmp_path, capsys):
    server.files[f"/{FASTA_NAME}"] = PAYLOAD
    server.files[f"/{BED_NAME}"] = b"chr1\t0\t100\ttrain\n"
    files = (RemoteFile("f.bin", (f"{server.base}/missing", f"{server.base}/f.bin"), len(PAYLOAD), SHA),)
    assert download(tmp_path / "m", files=files, progress=False)["f.bin"].read_bytes() == PAYLOAD
    assert main(["download", "--dir", str(tmp_path / "d"), "--base-url", server.base, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "d" / BED_NAME).exists() and "next: python -m data_tools.fasta_to_mds" in out


def test_convert_subcommand(tmp_path, capsys):
    import gzip

    d = tmp_path / "hg38"
    d.mkdir()
    seq = ("ACGTTGCA" * 20_000)[:150_000]
    (d / FASTA_NAME).write_bytes(gzip.compress((">chr1\n" + seq + "\n").encode()))
    (d / BED_NAME).write_text("chr1\t0\t100\ttrain\nchr1\t100000\t131072\tvalid\n")
    assert main(["convert", "--dir", str(d), "--seq-len", str(2**17), "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "mode bed" in out and (tmp_path / "hg38_mds_131072" / "dnax_mds.json").exists()
    assert main(["convert", "--dir", str(tmp_path / "none")]) == 2
    assert "run `python -m data_tools.hg38 download" in capsys.readouterr().err
