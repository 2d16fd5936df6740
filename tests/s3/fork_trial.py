"""One trial of the streaming fork bug: forked processes downloading shards over the client they inherited.

Used by `tests/s3/test_s3_fork_workers.py` and `benchmarks/streaming_s3.py` (which measures its rates).
"""
from __future__ import annotations

import multiprocessing
import os

from dnax.data.pretrain import reset_stream_downloaders

FORK = multiprocessing.get_context("fork")


def fork_download_trial(dataset, reference_dir, fix: bool) -> list[int]:
    """One trial: the parent uses its stream client (as the dataset does for its index), optionally applies the
    fix, then forks one process per shard; all download their shard at once. Per shard: 0 exact, 1 corrupt (the
    download succeeded with other bytes), 2 the download raised."""
    stream = dataset.streams[0]
    names = [shard.raw_data.basename for shard in dataset.shards]
    for name in names + ["index.json.parent"]:
        path = os.path.join(stream.local, stream.split, name)
        if os.path.exists(path):
            os.remove(path)
    stream._download_file("index.json", "index.json.parent")  # the parent's client now holds a live connection
    if fix:
        reset_stream_downloaders(dataset)
    barrier, pids = FORK.Barrier(len(names)), []
    for name in names:
        pid = os.fork()
        if pid == 0:  # child: exit status 0 exact, 1 corrupt, 2 failed
            code = 2
            try:
                barrier.wait(10)
                with open(stream._download_file(name), "rb") as f:
                    code = int(f.read() != (reference_dir / name).read_bytes())
            finally:
                os._exit(code)
        pids.append(pid)
    return [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
