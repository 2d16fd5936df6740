"""FASTA -> MDS -> loader round trip on the bundled real DNA (GRCh37 chrX 65-69 Mbp)."""
import gzip
import os
import types
from pathlib import Path

import pytest
import torch

from data_tools.fasta_to_mds import convert_sample, read_manifest, sample_fasta
from dnax.data.object_store import ShardDownloadError
from dnax.data.pretrain import build_pretrain_dataloader, reset_stream_downloaders
from dnax.tokenizer import decode

SEQ_LEN = 1024
OFFSET = 65_000_000  # the record starts at GRCh37 chrX:65,000,000 (0-based)


@pytest.fixture(scope="module")
def mds(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample_mds") / "mds"
    convert_sample(root, SEQ_LEN, progress=False)
    return root


@pytest.fixture(scope="module")
def genome_text():
    with gzip.open(sample_fasta(), "rt") as f:
        header = f.readline()
        assert header.startswith(">X_65000000_69000000")
        return "".join(line.strip() for line in f).upper()


def starts(loader, batches=None):
    out = []
    for i, batch in enumerate(loader):
        if batches is not None and i == batches:
            break
        out += batch["start"].tolist()
    return out


@pytest.mark.parametrize("split", ["train", "valid"])
def test_round_trip_against_fasta_text(mds, genome_text, split):
    loader = build_pretrain_dataloader(str(mds), split, 8, seed=3)
    names = read_manifest(mds)["summary"]["chroms"]
    batch = next(iter(loader))
    assert batch["input_ids"].shape == (8, SEQ_LEN) and batch["input_ids"].dtype == torch.long
    assert batch["chrom_index"].dtype == torch.long and batch["start"].dtype == torch.long
    for ids, c, s in zip(batch["input_ids"], batch["chrom_index"].tolist(), batch["start"].tolist()):
        assert names[c] == "X_65000000_69000000"
        assert decode(ids) == genome_text[s : s + SEQ_LEN]
        assert (s >= 3_500_000) == (split == "valid")
        assert s % SEQ_LEN == (0 if split == "train" else 3_500_000 % SEQ_LEN)
        assert OFFSET + s < 69_000_000


def test_valid_split_covers_its_range_exactly(mds):
    loader = build_pretrain_dataloader(str(mds), "valid", 16, shuffle=False, drop_last=False)
    got = starts(loader)
    assert got == [3_500_000 + i * SEQ_LEN for i in range(488)]


def test_same_seed_same_order(mds):
    a = starts(build_pretrain_dataloader(str(mds), "train", 16, seed=5), batches=4)
    b = starts(build_pretrain_dataloader(str(mds), "train", 16, seed=5), batches=4)
    c = starts(build_pretrain_dataloader(str(mds), "train", 16, seed=6), batches=4)
    assert a == b and a != c and len(a) == 64


def test_max_windows_is_a_fixed_set(mds):
    loader = build_pretrain_dataloader(str(mds), "valid", 10, shuffle=True, seed=1, max_windows=50, drop_last=False)
    first, second = starts(loader), starts(loader)  # two epochs: new order, same windows
    assert len(first) == 50 and len(set(first)) == 50 and set(first) == set(second)
    again = build_pretrain_dataloader(str(mds), "valid", 10, shuffle=False, seed=1, max_windows=50, drop_last=False)
    assert set(starts(again)) == set(first)
    everything = build_pretrain_dataloader(str(mds), "valid", 10, max_windows=10_000, drop_last=False)
    assert len(starts(everything)) == 488  # larger than the split: the whole split, no repeats


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_carry_the_epoch_they_were_drawn_in(mds, workers):
    loader = build_pretrain_dataloader(str(mds), "valid", 10, shuffle=True, seed=1, max_windows=40,
                                       num_workers=workers)
    for epoch in range(2):
        epochs = torch.cat([b["epoch"] for b in loader])
        assert epochs.dtype == torch.int64 and len(epochs) == 40 and (epochs == epoch).all()


def test_missing_split_error_says_how_to_prepare(mds, tmp_path):
    for remote, split in [(str(mds), "test"), (str(tmp_path / "nothing"), "train")]:
        with pytest.raises(FileNotFoundError) as info:
            build_pretrain_dataloader(remote, split, 4)
        msg = str(info.value)
        assert "\n" not in msg and "python -m data_tools.hg38 download" in msg and "fasta_to_mds" in msg
    with pytest.raises(FileNotFoundError, match="splits there: train, valid"):
        build_pretrain_dataloader(str(mds), "test", 4)


def test_streaming_kwargs_pass_through(mds):
    with pytest.raises(TypeError, match="shuffle_algorithm"):
        build_pretrain_dataloader(str(mds), "valid", 4, shuffle_algorithm="py1s")  # a typo fails


def test_explicit_local_copies_the_split(mds, tmp_path):
    loader = build_pretrain_dataloader(str(mds), "valid", 8, local=str(tmp_path / "cache"), shuffle=False)
    assert starts(loader, batches=1) == [3_500_000 + i * SEQ_LEN for i in range(8)]
    assert (tmp_path / "cache" / "index.json").exists()


def test_a_read_after_another_threads_download_failure_names_that_failure(mds, tmp_path):
    """The race a fresh-clone CI run hit: a download thread fails (and evicts its shard), then the reading thread
    asks for a sample of a shard not downloaded: no download starts once the epoch is failing, streaming's reader
    runs out of retries on the missing file, and the error raised is the download's, not streaming's
    'Check if the shard file exists'."""
    loader = build_pretrain_dataloader(str(mds), "valid", 8, local=str(tmp_path / "cache"), shuffle=False)
    dataset = loader.dataset
    assert not dataset.reads_in_place()
    dataset._dnax_failures.append((-1, "shard s3://b/valid/shard.00000.mds: could not be downloaded"))
    with pytest.raises(ShardDownloadError, match="shard s3://b/valid/shard.00000.mds: could not be downloaded"):
        dataset.get_item(0, retry=1)


def test_reset_stream_downloaders():
    calls = []
    downloader = types.SimpleNamespace(clean_up=lambda: calls.append(1))
    dataset = types.SimpleNamespace(streams=[types.SimpleNamespace(_downloader=downloader)] * 2)
    reset_stream_downloaders(dataset)
    assert calls == [1, 1]


def test_worker_processes_yield_the_same_windows(mds):
    kw = dict(shuffle=True, seed=2, max_windows=64, drop_last=False)
    with_workers = starts(build_pretrain_dataloader(str(mds), "valid", 8, num_workers=2, **kw))
    in_process = starts(build_pretrain_dataloader(str(mds), "valid", 8, num_workers=0, **kw))
    assert len(with_workers) == 64 and set(with_workers) == set(in_process)


def test_resumes_mid_epoch_from_state_dict(mds):
    def build():
        return build_pretrain_dataloader(str(mds), "train", 8, seed=4, max_windows=400)

    reference = starts(build(), batches=5)
    first = build()
    it = iter(first)
    next(it), next(it)
    state = first.state_dict()  # what Composer checkpoints
    assert state["sample_in_epoch"] == 16
    del it
    resumed = build()
    resumed.load_state_dict(state)
    assert starts(resumed, batches=3) == reference[16:40]


def test_loaders_release_their_shared_memory_when_dropped(mds):
    """Run after run in one process (a notebook, an in-process sweep), streaming's shared-memory blocks and their
    file descriptors go with the loaders instead of piling up until exit (~36 descriptors a run before)."""
    import gc

    from tests.data.test_shared_memory import shm_descriptors

    gc.collect()
    before = shm_descriptors()
    for _ in range(3):
        loaders = [build_pretrain_dataloader(str(mds), split, 8, seed=1) for split in ("train", "valid")]
        assert [next(iter(loader))["input_ids"].shape for loader in loaders] == [(8, SEQ_LEN)] * 2
        held = {path: os.stat(path).st_ino for path in set(shm_descriptors()) - set(before)}
        assert len(held) >= 12  # six blocks per dataset
        del loaders
        gc.collect()
        assert shm_descriptors() == before
        for path, inode in held.items():  # unlinked (another process may have made a new block of that name since)
            try:
                assert os.stat(path).st_ino != inode, path
            except FileNotFoundError:
                pass


def _lose_the_next_prefix_race(monkeypatch):
    """Make the next prefix search find N free and then have 'another job' register N_locals before streaming
    creates it, as two jobs starting together on one machine do. Returns the blocks made (to release)."""
    from multiprocessing import shared_memory

    import streaming.base.shared.prefix as prefix

    real, made = prefix._check_and_find_retrying, []

    def find(streams_local, streams_remote, shm_name, retry):
        n = real(streams_local, streams_remote, shm_name, retry)
        if shm_name == prefix.LOCALS and not made:
            data = prefix._pack_locals(["/another/job"], n)
            block = shared_memory.SharedMemory(name=prefix._get_path(n, prefix.LOCALS), create=True, size=len(data))
            block.buf[:len(data)] = data
            made.append(block)
        return n

    monkeypatch.setattr(prefix, "_check_and_find_retrying", find)
    return made


def _release(blocks):
    for block in blocks:
        block.close()
        block.unlink()


def test_a_lost_shared_memory_prefix_race_is_retried(mds, monkeypatch):
    """Two pretraining jobs starting together on one machine can both find streaming's prefix N free; the second
    to register it got FileExistsError ('/0000NN_locals'). A process alone on its machine builds again and takes
    the next prefix."""
    made = _lose_the_next_prefix_race(monkeypatch)
    try:
        loader = build_pretrain_dataloader(str(mds), "valid", 8, seed=1)
        assert made and next(iter(loader))["input_ids"].shape == (8, SEQ_LEN)
        taken = int(made[0].name.lstrip("/").split("_")[0])
        assert loader.dataset._shm_prefix_int > taken
    finally:
        _release(made)



def test_a_dropped_loader_takes_its_prefix_file_locks_with_it(mds):
    """streaming leaves `<tmp>/N_barrier_filelock` and `N_cache_filelock` behind for every dataset, and its prefix
    search skips every N that has them: thousands piled up on a machine running tests. They go with the dataset."""
    import gc
    import tempfile

    loader = build_pretrain_dataloader(str(mds), "valid", 8, seed=1)
    next(iter(loader))
    prefix = f"{loader.dataset._shm_prefix_int:06}"
    barrier = Path(tempfile.gettempdir()) / f"{prefix}_barrier_filelock"
    assert barrier.exists()
    del loader
    gc.collect()
    assert not barrier.exists() and not (barrier.parent / f"{prefix}_cache_filelock").exists()
