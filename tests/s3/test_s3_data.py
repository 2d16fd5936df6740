"""The bundled sample converted straight into a real S3 server (s3rver) and read back for training."""
import csv
import json
from pathlib import Path

import torch

from data_tools.fasta_to_mds import MANIFEST, convert_sample, main as fasta_to_mds_main
from dnax import run as cli
from dnax.data.object_store import SHARD_HASH
from dnax.data.pretrain import build_pretrain_dataloader, default_cache_dir
from tests.s3.conftest import keys


def windows(loader) -> dict[int, torch.Tensor]:
    """Every window of an epoch by its start."""
    out = {}
    for batch in loader:
        for ids, start in zip(batch["input_ids"], batch["start"].tolist()):
            out[start] = ids
    return out


def test_server_starts_within_seconds(s3):
    assert s3.start_s < 10 and s3.bucket_s < 10  # seconds measured by the session fixture


def test_converter_writes_shards_straight_to_the_bucket(s3, sample_s3):
    stored = keys(s3, "sample_1024/")
    local = sorted(str(p.relative_to(sample_s3.local)) for p in sample_s3.local.rglob("*") if p.is_file())
    assert sorted(k.removeprefix("sample_1024/") for k in stored) == local  # every file, the same paths
    assert len([k for k in stored if k.endswith(".mds")]) == 28 + 4
    body = s3.client.get_object(Bucket=s3.bucket, Key="sample_1024/valid/index.json")["Body"].read()
    index = json.loads(body)
    assert sum(s["samples"] for s in index["shards"]) == 488
    assert all(SHARD_HASH in s["raw_data"]["hashes"] for s in index["shards"])  # checked after each download
    manifest = json.loads(s3.client.get_object(Bucket=s3.bucket, Key=f"sample_1024/{MANIFEST}")["Body"].read())
    assert manifest["summary"]["windows"] == {"train": 3417, "valid": 488, "test": 0}


def test_converter_cli_to_s3_is_idempotent(s3, sample_s3, capsys):
    # the same conversion again: the manifest in the bucket matches, nothing is uploaded
    again = convert_sample(sample_s3.url, 1024, progress=False, size_limit=1 << 17, local_staging=sample_s3.local)
    assert again["skipped"] and again["windows"] == sample_s3.summary["windows"]
    # the CLI with other arguments into the same prefix: a one-line error naming what differs
    from data_tools.fasta_to_mds import sample_fasta

    code = fasta_to_mds_main(["--fasta", str(sample_fasta()), "--seq-len", "512", "--out", sample_s3.url,
                              "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and sample_s3.url in err and "seq_len" in err


def test_loader_from_s3_yields_the_local_windows_and_caches_them(s3, sample_s3):
    remote = build_pretrain_dataloader(sample_s3.url, "valid", 16, shuffle=True, seed=3, drop_last=False)
    local = build_pretrain_dataloader(str(sample_s3.local), "valid", 16, shuffle=True, seed=3, drop_last=False)
    got, want = list(remote), list(local)
    assert len(got) == len(want) == 31
    for a, b in zip(got, want):  # the same windows in the same order
        assert all(torch.equal(a[k], b[k]) for k in ("input_ids", "chrom_index", "start"))
    cache = Path(default_cache_dir(f"{sample_s3.url}/valid"))  # under $DNAX_CACHE (the dnax cache root)
    assert sorted(p.name for p in (cache / "X_65000000_69000000").iterdir()) == [
        f"shard.{i:05d}.mds" for i in range(4)]
    assert remote.dataset.streams[0].validate_hash == "xxh3_64"


def test_tiny_training_run_reads_its_data_from_s3(s3, in_tmp):
    from data_tools.fasta_to_mds import convert_sample

    url = f"s3://{s3.bucket}/sample_128"
    convert_sample(url, 128, progress=False, local_staging=in_tmp / "staging")
    code = cli.main(["experiments.hg38_xlstm", "tiny", f"train_dataloader.remote={url}",
                     f"eval_dataloader.remote={url}", "trainer.run_name=s3"])
    assert code == 0
    rows = list(csv.DictReader(open(in_tmp / "runs" / "s3" / "metrics.csv")))
    assert len([r for r in rows if r["name"] == "loss/train/total"]) == 2
    assert any(r["name"] == "metrics/eval/LanguageCrossEntropy" for r in rows)
    saved = (in_tmp / "runs" / "s3" / "config.json").read_text()
    assert url in saved  # the run's replayable config names the bucket
    for split in ("train", "valid"):  # both splits were downloaded into the dnax cache
        assert list((Path(default_cache_dir(f"{url}/{split}")) / "X_65000000_69000000").glob("shard.*.mds"))
