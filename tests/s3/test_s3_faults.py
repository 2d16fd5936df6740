"""Faults reading from a real S3 server: outages, corrupt shards, bad configuration. Each error is one line that
names the URL."""
import shutil
import threading
import time

import pytest
import torch

from data_tools.fasta_to_mds import main as fasta_to_mds_main, sample_fasta
from dnax.data.object_store import ObjectStoreError, ShardDownloadError
from dnax.data.pretrain import build_pretrain_dataloader

SHARD1 = "X_65000000_69000000/shard.00001.mds"


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    return msg


def starts(loader) -> list[int]:
    return [s for batch in loader for s in batch["start"].tolist()]


def test_store_down_mid_epoch_names_the_shard_then_recovers(s3, sample_s3, tmp_path):
    loader = build_pretrain_dataloader(sample_s3.url, "valid", 8, local=str(tmp_path / "c"), shuffle=False,
                                       drop_last=False, predownload=8, download_retry=2)
    it = iter(loader)
    first = next(it)["start"].tolist()  # shard 0 is here; the download thread is at most 8 windows ahead
    s3.server.stop()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ShardDownloadError) as info:
            for _ in it:
                pass
    finally:
        s3.server.start()
    waited = time.perf_counter() - t0
    msg = one_line(info)
    assert f"{sample_s3.url}/valid/X_65000000_69000000/shard.0000" in msg and "after 2 attempts" in msg
    assert "cannot reach the object store" in msg and s3.endpoint in msg
    assert waited > 1.0  # streaming's backoff between the attempts (1 s + jitter), after boto3's own retries
    # the same loader, the store back: the next epoch reads every window
    again = starts(loader)
    assert again[:8] == first and again == [3_500_000 + i * 1024 for i in range(488)]


def test_short_outage_is_ridden_out_by_the_retries(s3, sample_s3, tmp_path):
    loader = build_pretrain_dataloader(sample_s3.url, "valid", 8, local=str(tmp_path / "c"), shuffle=False,
                                       drop_last=False, download_retry=4)
    s3.server.stop()
    restart = threading.Timer(0.5, s3.server.start)
    restart.start()
    try:
        got = starts(loader)
    finally:
        restart.join()
        if not s3.server.running:
            s3.server.start()
    assert got == [3_500_000 + i * 1024 for i in range(488)]


def upload_split(s3, sample_s3, prefix: str, damage) -> str:
    """The sample's `valid` split under `prefix` with shard 1 replaced by `damage(bytes)`; its URL's root."""
    base = sample_s3.local / "valid"
    for path in base.rglob("*"):
        if path.is_file():
            rel = str(path.relative_to(base))
            data = path.read_bytes()
            s3.client.put_object(Bucket=s3.bucket, Key=f"{prefix}/valid/{rel}",
                                 Body=damage(data) if rel == SHARD1 else data)
    return f"s3://{s3.bucket}/{prefix}"


def test_corrupt_shard_is_detected_by_its_hash_and_named(s3, sample_s3, tmp_path):
    def flip(data: bytes) -> bytes:  # same size, one byte of a window changed
        return data[:5000] + bytes([data[5000] ^ 1]) + data[5001:]

    url = upload_split(s3, sample_s3, "corrupt", flip)
    cache = tmp_path / "c"
    loader = build_pretrain_dataloader(url, "valid", 8, local=str(cache), shuffle=False, drop_last=False)
    with pytest.raises(ShardDownloadError) as info:
        starts(loader)
    msg = one_line(info)
    assert f"shard {url}/valid/{SHARD1} is corrupt, downloaded twice" in msg and "xxh3_64 hash" in msg
    assert not (cache / SHARD1).exists()  # not left in the cache to be read later


def test_truncated_shard_is_detected_by_its_size_without_hashes(s3, sample_s3, tmp_path):
    url = upload_split(s3, sample_s3, "truncated", lambda data: data[: len(data) // 2])
    loader = build_pretrain_dataloader(url, "valid", 8, local=str(tmp_path / "c"), shuffle=False,
                                       drop_last=False, validate_hash=None)
    with pytest.raises(ShardDownloadError) as info:
        starts(loader)
    msg = one_line(info)
    assert f"{url}/valid/{SHARD1}" in msg and "its index.json says" in msg


def test_missing_bucket(s3):
    with pytest.raises(ObjectStoreError) as info:
        build_pretrain_dataloader("s3://no-such-bucket/hg38", "train", 4)
    msg = one_line(info)
    assert "bucket 'no-such-bucket' does not exist" in msg and "s3://no-such-bucket/hg38/train/index.json" in msg


def test_wrong_credentials(s3, sample_s3, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "NOT-S3RVER")  # s3rver checks the key id (not the secret)
    with pytest.raises(ObjectStoreError) as info:
        build_pretrain_dataloader(sample_s3.url, "train", 4)
    msg = one_line(info)
    assert "refused access" in msg and f"{sample_s3.url}/train/index.json" in msg and "AWS_ACCESS_KEY_ID" in msg


def test_unreachable_endpoint(s3, sample_s3, monkeypatch):
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(ObjectStoreError) as info:
        build_pretrain_dataloader(sample_s3.url, "train", 4)
    msg = one_line(info)
    assert "cannot reach the object store at http://127.0.0.1:9" in msg and sample_s3.url in msg


def test_prefix_without_index(s3, sample_s3):
    with pytest.raises(FileNotFoundError) as info:
        build_pretrain_dataloader(sample_s3.url, "test", 4)
    msg = one_line(info)
    assert f"{sample_s3.url}/test/index.json does not exist (splits there: train, valid)" in msg
    assert "fasta_to_mds" in msg


def test_converter_to_a_missing_bucket_fails_before_converting(s3, tmp_path, capsys):
    code = fasta_to_mds_main(["--fasta", str(sample_fasta()), "--seq-len", "1024", "--out", "s3://no-such-bucket/x",
                              "--local-staging", str(tmp_path / "staging"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "bucket 'no-such-bucket' does not exist" in err
    assert not (tmp_path / "staging").exists()
