"""`WindowStreamingDataset` (the loader's fast MDS reader) against plain `streaming.StreamingDataset`.

Everything is compared with the plain streaming result on the same shards: samples (values, types, key order), the
order of a shuffled or unshuffled epoch and of the next epoch, `max_windows`, DataLoader workers, mid-epoch
resumption, zstd shards, and the fallbacks (remote/local copies, `cache_limit`, other MDS schemas, another streaming
version). The sample is converted into small shards (~126 windows each) so that epochs cross shard boundaries.
"""
import hashlib
import importlib
import inspect
import json
import shutil

import numpy as np
import pytest
import torch

from data_tools.fasta_to_mds import convert_sample
from dnax.data import pretrain
from dnax.data.pretrain import build_pretrain_dataloader

SEQ_LEN = 1024
SIZE_LIMIT = 1 << 17  # bytes a shard: `valid` (488 windows) spans 4 shards, `train` (3,417) 28
KEYS = ("input_ids", "chrom_index", "start")

#: sha256[:16] of the source of each of `pretrain.STREAMING_INTERNALS` in mosaicml-streaming 0.13.0
STREAMING_0_13_0 = {
    "streaming.base.dataset:StreamingDataset.__init__": "34032a553e3c5801",
    "streaming.base.dataset:StreamingDataset.__iter__": "6457c4cfbae05998",
    "streaming.base.dataset:StreamingDataset.get_item": "0082820df3629b50",
    "streaming.base.dataset:StreamingDataset.prepare_shard": "0aebbfc3c71ca41a",
    "streaming.base.dataset:StreamingDataset._prepare_thread": "51ca7defcb598b6d",
    "streaming.base.dataset:StreamingDataset._ready_thread": "7d83095a9f36423e",
    "streaming.base.dataset:StreamingDataset._each_sample_id": "78e2aed24cff2607",
    "streaming.base.dataset:StreamingDataset._resume_incr_epoch": "401d17537fb8316c",
    "streaming.base.dataset:StreamingDataset._get_work": "b44aef7d7bfdc6f2",
    "streaming.base.dataset:_Iterator": "ab33a14a12152f39",
    "streaming.base.dataset:_ShardState": "9560e375bf6cdbfe",
    "streaming.base.array:Array.__getitem__": "732f1be5982cf5ba",
    "streaming.base.spanner:Spanner": "2a90e65c995a9feb",
    "streaming.base.stream:Stream._prepare_shard_part": "4ae2d311472db8ce",
    "streaming.base.format.base.reader:Reader.get_item": "f1b460eecc6eb11b",
    "streaming.base.format.base.reader:JointReader.__init__": "8b04e37b46b97562",
    "streaming.base.format.mds.reader:MDSReader.get_sample_data": "bf25f29c874296ed",
    "streaming.base.format.mds.reader:MDSReader.decode_sample": "ae0a8fff0220da96",
    "streaming.base.format.mds.writer:MDSWriter.encode_joint_shard": "c2041726af2cefcc",
    "streaming.base.format.mds.encodings:NDArray.decode": "ea3484481574dd04",
    "streaming.base.format.mds.encodings:Scalar.decode": "8b7d8dbd6e3cad86",
    "streaming.base.format.mds.encodings:Int64": "808da97fd980dbef",
}


@pytest.fixture(scope="module")
def mds(tmp_path_factory):
    root = tmp_path_factory.mktemp("window_mds") / "raw"
    convert_sample(root, SEQ_LEN, progress=False, size_limit=SIZE_LIMIT)
    return root


@pytest.fixture(scope="module")
def mds_zstd(tmp_path_factory):
    root = tmp_path_factory.mktemp("window_mds") / "zstd"
    convert_sample(root, SEQ_LEN, progress=False, size_limit=SIZE_LIMIT, compression="zstd")
    return root


def classes():
    from streaming import StreamingDataset

    return pretrain.WindowStreamingDataset, StreamingDataset


def run(loader, epochs=1, batches=None):
    """Batches of `epochs` epochs (the last one cut after `batches` batches if given), each epoch one dict."""
    out = []
    for e in range(epochs):
        got, stop = [], batches if batches is not None and e == epochs - 1 else None
        for b in loader:
            got.append(b)
            if len(got) == stop:  # taking no further batch: the loader counts the batches it hands out
                break
        out.append({k: torch.cat([b[k] for b in got]) if got else torch.empty(0, dtype=torch.long) for k in KEYS})
    return out


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for k in KEYS:
            assert x[k].shape == y[k].shape and torch.equal(x[k], y[k]), k


def both(root, split, batch, **kw):
    fast = build_pretrain_dataloader(str(root), split, batch, **kw)
    plain = build_pretrain_dataloader(str(root), split, batch, fast_path=False, **kw)
    assert type(fast.dataset).__name__ == "WindowStreamingDataset" and type(plain.dataset) is classes()[1]
    return fast, plain


def test_streaming_internals_unchanged():
    """The streaming code the fast reader reimplements or relies on is the code it was checked against: a streaming
    upgrade fails here until `WindowStreamingDataset` is re-read against the new source (then update the hashes and
    `STREAMING_VERSIONS_CHECKED`)."""
    import streaming

    assert streaming.__version__ in pretrain.STREAMING_VERSIONS_CHECKED
    assert set(pretrain.STREAMING_INTERNALS) == set(STREAMING_0_13_0)
    changed = []
    for name in pretrain.STREAMING_INTERNALS:
        module, qualname = name.split(":")
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16] != STREAMING_0_13_0[name]:
            changed.append(name)
    assert not changed, f"streaming internals changed since dnax's fast reader was checked: {changed}"


def test_other_streaming_version_falls_back_to_plain_streaming(mds, monkeypatch):
    import streaming

    monkeypatch.setattr(streaming, "__version__", "0.99.0")
    with pytest.warns(RuntimeWarning, match="0.99.0 is not one of the versions"):
        loader = build_pretrain_dataloader(str(mds), "valid", 8)
    assert type(loader.dataset) is streaming.StreamingDataset


def test_samples_identical_to_streaming(mds):
    """Every window of `train`, random access: same values, dtypes, shapes, scalar types, key order, read-only;
    the fast path adds the epoch the window was drawn in (0 before any iteration)."""
    fast_cls, plain_cls = classes()
    fast = fast_cls(local=str(mds / "train"), batch_size=8)
    plain = plain_cls(local=str(mds / "train"), batch_size=8)
    ids = np.random.default_rng(0).permutation(len(plain)).tolist()
    for i in ids:
        f, p = fast[i], plain[i]
        assert list(p) == ["chrom_index", "start", "tokens"] and list(f) == [*p, "epoch"] and f["epoch"] == 0
        for k in ("chrom_index", "start"):
            assert type(f[k]) is type(p[k]) and f[k] == p[k]
        assert f["tokens"].dtype == p["tokens"].dtype and f["tokens"].shape == p["tokens"].shape == (SEQ_LEN,)
        assert f["tokens"].flags.writeable == p["tokens"].flags.writeable
        assert np.array_equal(f["tokens"], p["tokens"])
    assert len(fast._dnax_shards) == 28 and all(fast._dnax_shards.values())  # every shard was mapped
    for i in (0, *np.cumsum(plain.samples_per_shard)[:-1].tolist(), len(plain) - 1):  # shard edges
        assert fast.spanner[i][0] == np.searchsorted(fast._dnax_bounds, i, side="right") - 1
    with pytest.raises(IndexError):
        fast.get_item(len(plain))


@pytest.mark.parametrize("num_workers", [0, 1])
@pytest.mark.parametrize("max_windows", [None, 200])
@pytest.mark.parametrize("shuffle", [False, True])
def test_epochs_identical_to_streaming(mds, shuffle, max_windows, num_workers):
    epochs = 2 if num_workers == 0 else 1  # the second epoch reshuffles (py1e with a new epoch seed)
    fast, plain = both(mds, "valid", 16, shuffle=shuffle, seed=7, max_windows=max_windows, drop_last=False,
                       num_workers=num_workers)
    got, want = run(fast, epochs), run(plain, epochs)
    assert_same(got, want)
    assert len(got[0]["start"]) == (max_windows or 488)
    if shuffle and epochs == 2:
        assert not torch.equal(got[0]["start"], got[1]["start"])


def test_two_workers_identical_to_streaming(mds):
    fast, plain = both(mds, "valid", 8, shuffle=True, seed=3, num_workers=2)
    assert_same(run(fast), run(plain))


@pytest.mark.parametrize(("num_workers", "max_windows", "stop_epoch"), [(0, None, 0), (0, 300, 1), (1, None, 1)])
def test_resumption_mid_epoch_equals_uninterrupted(mds, num_workers, max_windows, stop_epoch):
    """Stopped after 7 batches of epoch `stop_epoch`, checkpointed (`state_dict`, what Composer saves), resumed in a
    new loader: the rest of that epoch and the next one are the uninterrupted run's; nothing lost or repeated."""
    def build(**kw):
        return build_pretrain_dataloader(str(mds), "valid", 16, seed=11, max_windows=max_windows,
                                         num_workers=num_workers, **kw)

    reference = run(build(), stop_epoch + 2)
    assert_same(reference, run(build(fast_path=False), stop_epoch + 2))
    first = build()
    run(first, stop_epoch + 1, batches=7)
    state = first.state_dict()
    assert state["epoch"] == stop_epoch and state["sample_in_epoch"] == 7 * 16
    del first
    resumed = build()
    resumed.load_state_dict(state)
    rest, following = run(resumed, 2)
    assert_same([rest], [{k: v[7 * 16 :] for k, v in reference[stop_epoch].items()}])
    assert_same([following], [reference[stop_epoch + 1]])


@pytest.mark.parametrize("num_workers", [0, 1])
def test_zstd_shards_read_in_place(mds, mds_zstd, tmp_path, num_workers):
    """Compressed shards are decompressed beside the compressed ones on first use, then read like raw ones."""
    root = tmp_path / "zstd"
    shutil.copytree(mds_zstd, root)  # a fresh copy: nothing decompressed yet
    assert not list((root / "train").rglob("*.mds"))
    fast = build_pretrain_dataloader(str(root), "train", 32, seed=5, max_windows=600, num_workers=num_workers)
    plain = build_pretrain_dataloader(str(mds), "train", 32, seed=5, max_windows=600, fast_path=False)
    assert_same(run(fast), run(plain))
    assert list((root / "train").rglob("*.mds")) and list((root / "train").rglob("*.mds.zstd"))
    if num_workers == 0:
        assert fast.dataset.epochs_without_threads() and type(fast.dataset._iterator).__name__ == "_InPlaceEpoch"
        assert fast.dataset._dnax_shards and all(fast.dataset._dnax_shards.values())


def test_copy_to_local_threads_then_none_once_all_shards_are_local(mds, tmp_path):
    """`local=` given: the first epoch is streaming's threaded one, copying shards into `local` ahead of the reads
    (which use the mappings); once every shard is local the next epochs have no threads; batches stay streaming's."""
    from streaming.base.dataset import _Iterator

    kw = dict(shuffle=True, seed=2, drop_last=False)
    fast = build_pretrain_dataloader(str(mds), "valid", 16, local=str(tmp_path / "fast"), **kw)
    plain = build_pretrain_dataloader(str(mds), "valid", 16, local=str(tmp_path / "plain"), fast_path=False, **kw)
    ds = fast.dataset
    assert not ds.reads_in_place() and not ds.epochs_without_threads()
    got, want = run(fast), run(plain)
    assert type(ds._iterator) is _Iterator  # streaming's threaded epoch
    assert ds._dnax_shards and all(ds._dnax_shards.values()) and ds._dnax_local
    assert ds.epochs_without_threads()  # all 4 shards copied
    got += run(fast, 2)
    want += run(plain, 2)
    assert type(ds._iterator).__name__ == "_InPlaceEpoch"
    assert_same(got, want)


def test_cache_limit_keeps_streaming_reads(mds, tmp_path):
    """With `cache_limit` (shards may be evicted) every read and epoch is streaming's own. The limit holds all the
    shards: with a few shards' room streaming 0.13 itself can hang (its prepare thread, up to `predownload` samples
    ahead, evicts a shard its ready thread then waits for forever), fast path or not."""
    kw = dict(shuffle=True, seed=2, max_windows=300, cache_limit=64 * SIZE_LIMIT)
    fast = build_pretrain_dataloader(str(mds), "train", 16, local=str(tmp_path / "fast"), **kw)
    plain = build_pretrain_dataloader(str(mds), "train", 16, local=str(tmp_path / "plain"), fast_path=False, **kw)
    assert not fast.dataset.epochs_without_threads()
    assert_same(run(fast), run(plain))
    assert not fast.dataset.epochs_without_threads()
    assert fast.dataset._dnax_shards and not any(fast.dataset._dnax_shards.values())
    assert not fast.dataset._dnax_local


def test_other_mds_schema_uses_streaming_reader(tmp_path):
    from streaming import MDSWriter

    columns = {"tokens": "bytes", "start": "int64"}  # variable-size tokens: not the window layout
    with MDSWriter(out=str(tmp_path / "other"), columns=columns, size_limit=1 << 10) as writer:
        for i in range(60):
            writer.write({"tokens": bytes(range(i % 50)), "start": i * 7})
    fast_cls, plain_cls = classes()
    fast = fast_cls(local=str(tmp_path / "other"), batch_size=4, shuffle=True)
    plain = plain_cls(local=str(tmp_path / "other"), batch_size=4, shuffle=True)
    got, want = list(fast), list(plain)
    assert len(got) == 60 and got == want
    assert fast._dnax_shards and not any(fast._dnax_shards.values())


def test_new_epoch_ends_the_previous_one_like_streaming(mds):
    for cls in classes():
        ds = cls(local=str(mds / "valid"), batch_size=8, shuffle=True)
        old = iter(ds)
        head = [next(old)["start"] for _ in range(3)]
        new = iter(ds)
        next(new)  # starts epoch 1, which ends epoch 0
        assert len(head) == 3 and list(old) == [], cls.__name__
        assert len(list(new)) == 487


def test_yields_get_work_ids_in_order_skipping_padding(mds):
    """The epoch is `_get_work`'s ids (this rank and worker's partition; -1 pads uneven partitions), in order."""
    work = np.array([5, -1, 300, 2, -1, 487, 129], np.int64)
    got = []
    for cls in classes():
        ds = cls(local=str(mds / "valid"), batch_size=8)
        ds._get_work = lambda epoch, sample_in_epoch: work
        got.append([int(s["start"]) for s in ds])
    assert got[0] == got[1] == [3_500_000 + i * SEQ_LEN for i in work if i >= 0]


def test_mappings_are_not_pickled(mds):
    ds = classes()[0](local=str(mds / "valid"), batch_size=8)
    ds[0], ds[400]
    state = ds.__getstate__()
    assert state["_dnax_shards"] == {} and state["_dnax_local"] == set() and len(ds._dnax_shards) == 2
    assert json.loads(json.dumps(state["_dnax_bounds"])) == ds._dnax_bounds
