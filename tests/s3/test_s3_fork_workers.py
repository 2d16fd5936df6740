"""The fork bug of streaming 0.13 over S3 (install README) and dnax's fix (`reset_stream_downloaders`).

A StreamingDataset keeps one boto3 client per stream; it connects when the dataset downloads its `index.json`.
Forked DataLoader workers inherit that client and its open keep-alive socket: requests that two processes send on
the one socket at the same time get each other's (or interleaved) response bytes, so shards arrive corrupted or
swapped while having the right size. `build_pretrain_dataloader` drops the client in the parent before any fork
and again in each worker (`worker_init_fn`). The collision needs two processes to send within the server's time to
first byte, so it does not happen on every run: the tests below release all processes' first downloads at once.
"""
import multiprocessing
import os
import threading
import time

import pytest
import torch
from streaming.base.stream import Stream

from dnax.data import pretrain
from dnax.data.pretrain import build_pretrain_dataloader
from tests.s3.fork_trial import fork_download_trial

FORK = multiprocessing.get_context("fork")


@pytest.fixture(scope="module")
def mb_shards(s3, tmp_path_factory):
    """The whole sample as `valid` in 4 shards of 1 MiB at `s3://dnax-test/fork_1mb` (the collision corrupts
    larger responses more often: measured ~1 trial in 4 at 1 MiB, ~1 in 20 at 128 KiB); the local staging copy."""
    from data_tools.fasta_to_mds import convert_sample

    local = tmp_path_factory.mktemp("fork") / "fork_1mb"
    url = f"s3://{s3.bucket}/fork_1mb"
    convert_sample(url, 1024, progress=False, size_limit=1 << 20, local_staging=local,
                   valid_ranges=["X_65000000_69000000:0-4000000"])
    return url, local


@pytest.fixture
def synchronized_first_download(monkeypatch):
    """Make every forked process's first `Stream._download_file` wait until `parties` processes are ready to
    download, so that their first requests go out together (a barrier created before the fork)."""
    real = Stream._download_file
    state = {}

    def download(self, *args, **kwargs):
        if state.get("barrier") is not None and os.getpid() != state["parent"] and not state.get("done"):
            state["done"] = True  # in this (forked) process
            try:
                state["barrier"].wait(10)
            except threading.BrokenBarrierError:
                pass
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Stream, "_download_file", download)

    def arm(parties: int) -> None:
        state.update(barrier=FORK.Barrier(parties), parent=os.getpid(), done=False)

    return arm


def test_forked_loader_workers_read_exactly_the_stored_windows(sample_s3, tmp_path, synchronized_first_download):
    assert multiprocessing.get_start_method() == "fork"  # the DataLoader's default context here
    synchronized_first_download(2)
    loader = build_pretrain_dataloader(sample_s3.url, "valid", 8, local=str(tmp_path / "cache"), num_workers=2,
                                       shuffle=True, seed=1, drop_last=False, validate_hash=None)  # no healing
    local = build_pretrain_dataloader(str(sample_s3.local), "valid", 8, shuffle=False, drop_last=False)
    want = {s: ids for b in local for s, ids in zip(b["start"].tolist(), b["input_ids"])}
    got = {}
    for batch in loader:
        for start, ids, chrom in zip(batch["start"].tolist(), batch["input_ids"], batch["chrom_index"].tolist()):
            assert chrom == 0 and start in want and torch.equal(ids, want[start]), start
            got[start] = ids
    assert len(got) == 488


def test_without_the_fix_forked_downloads_get_corrupted(mb_shards, tmp_path, monkeypatch):
    """Up to 40 trials of 4 processes, stopping at the first corrupted shard. Measured on a shared 2-core machine:
    5 of 20 trials (`benchmarks/results/streaming_s3_cpu.md`), 1 of 15 and 3 of 12 in other runs, so this takes
    ~1-25 s; 40 trials all clean would have probability ~1e-5 at 1 in 4, ~1.5% at 1 in 10."""
    url, reference = mb_shards
    monkeypatch.setattr(pretrain, "reset_stream_downloaders", lambda dataset: None)  # the fix, removed
    loader = build_pretrain_dataloader(url, "valid", 8, local=str(tmp_path / "nofix"), num_workers=2,
                                       validate_hash=None)
    assert loader.dataset.streams[0]._downloader._s3_client is not None  # what forked workers would inherit
    trials = []
    t0 = time.perf_counter()
    while len(trials) < 40 and not any(1 in t for t in trials):
        trials.append(fork_download_trial(loader.dataset, reference / "valid", fix=False))
    print(f"without the fix: {trials} after {time.perf_counter() - t0:.1f} s")
    assert any(1 in t for t in trials), f"no corrupted download in {len(trials)} trials: {trials}"


def test_with_the_fix_forked_downloads_are_exact(mb_shards, tmp_path):
    url, reference = mb_shards
    loader = build_pretrain_dataloader(url, "valid", 8, local=str(tmp_path / "fix"), num_workers=2,
                                       validate_hash=None)
    assert loader.dataset.streams[0]._downloader._s3_client is None  # dropped before any fork
    # one trial: the processes' own clients cannot share a socket (each trial costs 4 client set-ups, seconds)
    assert fork_download_trial(loader.dataset, reference / "valid", fix=True) == [0, 0, 0, 0]
