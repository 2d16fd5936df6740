"""The pre-training loader: MDS window shards (`data_tools.fasta_to_mds`) -> `StreamingDataset` -> batches.

A batch is `{"input_ids": LongTensor (B, seq_len), "chrom_index": LongTensor (B,), "start": LongTensor (B,),
"epoch": LongTensor (B,)}`: raw token ids of `dnax.tokenizer` (N stays N; masking or shifting is the objective's
job) and each window's provenance (`chrom_index` indexes the `chroms` list of the conversion manifest
`<remote>/dnax_mds.json`; `start` is 0-based; `epoch` the pass over the data it was drawn in), which keys the
random training draws to the sample (`dnax.models.objectives.sample_keys`).

The dataset is `WindowStreamingDataset`, a `StreamingDataset` that reads the windows from memory-mapped shards and
skips streaming's per-sample background threads for data read in place: the same samples in the same order, with
streaming's shuffling, partitioning and mid-epoch resumption, ~20x faster per window and faster than random pyfaidx
reads (`benchmarks/results/loader_cpu.md`). `fast_path=False` (or another streaming version) gives plain streaming.
"""
from __future__ import annotations

import bisect
import hashlib
import mmap
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dnax.data.object_store import ShardDownloadError, fetch_object, index_hash, list_prefixes, prepare_checked
from dnax.data.shared_memory import build_retrying_prefix_races, release_with_owner
from dnax.data.sources import cache_root, is_url

INDEX = "index.json"
PREPARE_HINT = ("prepare it with `python -m data_tools.hg38 download` then `python -m data_tools.hg38 convert` "
                "(or `python -m data_tools.fasta_to_mds --fasta F [--bed B] --seq-len N --out DIR`)")


def default_cache_dir(remote_split: str) -> str:
    """Local cache of a remote split: `~/.cache/dnax/mds/<hash of the split's URL>` (`$DNAX_CACHE` replaces
    `~/.cache/dnax`). One directory per split: streaming refuses two live datasets sharing a cache directory."""
    return str(cache_root() / "mds" / hashlib.blake2s(remote_split.encode(), digest_size=16).hexdigest())


def collate_windows(samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """StreamingDataset samples (`tokens` uint8 array, `chrom_index`, `start`) -> a batch of LongTensors.

    Built in numpy and wrapped with `torch.from_numpy`: a torch uint8 -> int64 cast of a (B, seq_len) batch goes
    through torch's intra-op thread pool, which stalls for milliseconds on a busy CPU, and `torch.tensor` of a Python
    list costs ~1 us an element (`benchmarks/loader_throughput.py`)."""
    n = len(samples)
    batch = {
        "input_ids": torch.from_numpy(np.stack([s["tokens"] for s in samples]).astype(np.int64)),
        "chrom_index": torch.from_numpy(np.fromiter((int(s["chrom_index"]) for s in samples), np.int64, n)),
        "start": torch.from_numpy(np.fromiter((int(s["start"]) for s in samples), np.int64, n)),
    }
    if n and "epoch" in samples[0]:
        batch["epoch"] = torch.from_numpy(np.fromiter((int(s["epoch"]) for s in samples), np.int64, n))
    return batch


#: mosaicml-streaming versions whose private internals `WindowStreamingDataset` was written against (the MDS shard
#: layout, `StreamingDataset.__iter__`/`get_item`/`prepare_shard`, `_Iterator`, `_ShardState`, `_resume_incr_epoch`,
#: `_get_work`, `spanner`); on another version the loader warns and uses plain `StreamingDataset`.
#: `tests/data/test_window_dataset.py` fingerprints those internals, so an upgrade fails there until re-checked.
STREAMING_VERSIONS_CHECKED = ("0.13.0",)
#: the streaming code `WindowStreamingDataset` reimplements, bypasses or relies on ("module:qualname"); the test
#: `tests/data/test_window_dataset.py::test_streaming_internals_unchanged` pins a hash of each one's source
STREAMING_INTERNALS = (
    "streaming.base.dataset:StreamingDataset.__init__",  # samples_per_shard, spanner, shards, streams, cache_limit
    "streaming.base.dataset:StreamingDataset.__iter__",  # reimplemented without threads for data read in place
    "streaming.base.dataset:StreamingDataset.get_item",  # bypassed for mapped shards
    "streaming.base.dataset:StreamingDataset.prepare_shard",  # short-circuited for shards known LOCAL
    "streaming.base.dataset:StreamingDataset._prepare_thread",  # skipped in place: only prepares shards ahead
    "streaming.base.dataset:StreamingDataset._ready_thread",  # skipped in place: only waits for shards
    "streaming.base.dataset:StreamingDataset._each_sample_id",  # its order and exit rule, kept
    "streaming.base.dataset:StreamingDataset._resume_incr_epoch",  # called as __iter__ does
    "streaming.base.dataset:StreamingDataset._get_work",  # called as __iter__ does
    "streaming.base.dataset:_Iterator",  # subclassed for the epoch's exit signal
    "streaming.base.dataset:_ShardState",
    "streaming.base.array:Array.__getitem__",
    "streaming.base.spanner:Spanner",  # replaced by a bisect over shard bounds
    "streaming.base.stream:Stream._prepare_shard_part",  # a LOCAL shard's raw file is complete
    "streaming.base.format.base.reader:Reader.get_item",
    "streaming.base.format.base.reader:JointReader.__init__",  # raw_data, file_pairs
    "streaming.base.format.mds.reader:MDSReader.get_sample_data",  # the shard layout and path, read via mmap
    "streaming.base.format.mds.reader:MDSReader.decode_sample",  # decoded the same way
    "streaming.base.format.mds.writer:MDSWriter.encode_joint_shard",  # the shard layout
    "streaming.base.format.mds.encodings:NDArray.decode",
    "streaming.base.format.mds.encodings:Scalar.decode",
    "streaming.base.format.mds.encodings:Int64",
)
#: the MDS columns (in the order streaming stores them: sorted) that the fast read decodes itself
WINDOW_COLUMNS = ("chrom_index", "start", "tokens")
_WINDOW_DATASET_CLASS = None


def window_dataset_class(*, fast_path: bool = True):
    """The dataset class `build_pretrain_dataloader` uses: `WindowStreamingDataset` (below), or
    `streaming.StreamingDataset` when `fast_path` is False or when the installed streaming is not one of
    `STREAMING_VERSIONS_CHECKED` (with a warning: the subclass relies on streaming internals)."""
    import streaming

    if not fast_path:
        return streaming.StreamingDataset
    if streaming.__version__ not in STREAMING_VERSIONS_CHECKED:
        warnings.warn(f"mosaicml-streaming {streaming.__version__} is not one of the versions dnax's fast MDS reader "
                      f"was checked against ({', '.join(STREAMING_VERSIONS_CHECKED)}): using plain StreamingDataset "
                      f"(correct, ~20x slower per window)", RuntimeWarning, stacklevel=2)
        return streaming.StreamingDataset
    return _window_dataset_class()


def __getattr__(name: str):
    # PEP 562: `dnax.data.pretrain.WindowStreamingDataset` is defined on first use (importing streaming takes
    # seconds); pickle finds it here too (spawned DataLoader workers)
    if name == "WindowStreamingDataset":
        return _window_dataset_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _WindowShard:
    """A read-only mmap of one prepared raw MDS shard with the dnax window columns, all samples the same size.

    MDS joint shard layout (streaming `MDSWriter.encode_joint_shard`): uint32 sample count, (count + 1) uint32 absolute
    sample offsets, the shard's JSON config, the samples; a sample of fixed-size columns is the columns' bytes
    concatenated in `column_names` order (no size prefixes). Checked once here: count, file size (= the index's
    `raw_data.bytes`, so a partly written file is never mapped) and every offset (evenly spaced by the sample size,
    the last at the end of the file), so a sample's bytes are at `first + i * size`."""

    __slots__ = ("mm", "first", "size", "tokens")

    def __init__(self, mm: mmap.mmap, first: int, size: int):
        self.mm, self.first, self.size = mm, first, size
        self.tokens = size - 16  # after chrom_index and start (8 bytes each; `fits`)

    @classmethod
    def open(cls, shard) -> _WindowShard | str | None:
        """The mapping of `shard` (a prepared streaming MDSReader); None if its file is missing (evicted meanwhile:
        try again later); else a reason (str) why streaming's reader must read it."""
        path = os.path.join(shard.dirname, shard.split, shard.raw_data.basename)  # as MDSReader.get_sample_data
        try:
            with open(path, "rb") as f:
                nbytes = os.fstat(f.fileno()).st_size
                if nbytes != shard.raw_data.bytes or nbytes == 0:
                    return f"{path} has {nbytes} bytes, its index says {shard.raw_data.bytes}"
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            return None
        n, size = shard.samples, sum(shard.column_sizes)
        ok = len(mm) >= 4 * (n + 2)
        if ok:
            head = np.frombuffer(mm, np.uint32, n + 2)  # count, offsets (native uint32, as streaming reads them)
            ok = (int(head[0]) == n and int(head[-1]) == len(mm)
                  and bool(np.all(np.diff(head[1:].astype(np.int64)) == size)))
            first = int(head[1])
            del head  # releases the mapping's buffer export
        if not ok:
            mm.close()
            return f"{path} is not laid out as {n} samples of {size} bytes"
        return cls(mm, first, size)

    @staticmethod
    def fits(shard) -> bool:
        """Whether `shard` holds exactly the dnax window columns (else streaming's reader decodes it)."""
        from streaming.base.format.mds.reader import MDSReader

        if not isinstance(shard, MDSReader) or tuple(shard.column_names) != WINDOW_COLUMNS:
            return False
        if len(shard.file_pairs) != 1 or shard.raw_data is None:
            return False
        names = WINDOW_COLUMNS
        enc = dict(zip(names, shard.column_encodings))
        size = dict(zip(names, shard.column_sizes))
        return (enc["chrom_index"] == enc["start"] == "int64" and size["chrom_index"] == size["start"] == 8
                and enc["tokens"] == f"ndarray:uint8:{size['tokens']}" and bool(size["tokens"]))

    def sample(self, index: int) -> dict[str, Any]:
        """Sample `index` exactly as streaming's `MDSReader` decodes it: the same keys in the same order, np.int64
        scalars, and a read-only uint8 array over a bytes copy of the sample (no view into the mapping)."""
        at = self.first + index * self.size
        data = self.mm[at : at + self.size]
        ints = np.frombuffer(data, np.int64, 2)  # indexed: np.int64 scalars, as streaming's int64 decoding
        return {"chrom_index": ints[0], "start": ints[1], "tokens": np.frombuffer(data, np.uint8, self.tokens, 16)}


def _window_dataset_class():
    global _WINDOW_DATASET_CLASS
    if _WINDOW_DATASET_CLASS is None:
        _WINDOW_DATASET_CLASS = _define_window_dataset()
    return _WINDOW_DATASET_CLASS


def _define_window_dataset():
    from streaming import StreamingDataset
    from streaming.base.dataset import _Iterator, _ShardState

    class _InPlaceEpoch(_Iterator):
        """streaming's per-epoch `_Iterator` for an epoch with no background threads: `exit()` (called by the next
        `__iter__`, as streaming does) returns at once and makes this epoch's generator stop at its next step."""

        _num_threads_to_exit = 0

    class WindowStreamingDataset(StreamingDataset):
        """`streaming.StreamingDataset` for dnax window shards with a fast read path and streaming's exact semantics.

        Samples, their order for a seed and epoch, shuffling, `epoch_size`/`sampling_method`, the partition over
        ranks and DataLoader workers and mid-epoch resumption (`state_dict`/`load_state_dict`) are streaming's own:
        each epoch is still `_resume_incr_epoch()` then `_get_work()`, read in that order. What changes is how
        (streaming 0.13.0, `benchmarks/results/loader_cpu.md`, loader with num_workers=0 on a shared 2-core CPU:
        ~3.2k -> ~73k windows/s, where random pyfaidx windows -> int64 batches give ~35k):

        1. `get_item` reads a sample from a read-only mmap of its prepared raw shard (`_WindowShard`) instead of
           streaming's MDSReader, which opens/seeks/reads/closes the file and parses each column encoding per
           sample (~100 us). The first sample of each shard goes through streaming's `get_item`, which prepares the
           shard (downloads it, decompresses zstd), then the shard is mapped. Only without `cache_limit` (nothing is
           evicted behind a mapping) and for shards with exactly the dnax columns; streaming's reader otherwise.
        2. `__iter__`, when there is no `cache_limit` and nothing to download (every stream read in place, or
           every shard already LOCAL: `epochs_without_threads`): the same sample ids, read in the loop, without
           streaming's two per-sample background threads (prepare: a file lock per sample; ready: a spin wait),
           which only look ahead for downloads and fight the reading thread for the GIL. A compressed shard is
           decompressed on its first sample (streaming's `prepare_shard`, under its lock, so workers sharing a node
           still decompress it once). Otherwise (shards still to download into `local`, or `cache_limit`)
           streaming's threaded `__iter__`, with the reads of item 1.
        3. `prepare_shard` returns at once for a shard this process has seen prepared and that is still LOCAL in
           the shared shard states (only without `cache_limit`: no eviction, so the access times streaming stamps
           there are never read), instead of taking the cache file lock for every sample in the prepare thread.

        Differences from plain streaming, none of which changes a sample or the order: a zstd shard read in place
        is decompressed when its first sample is needed rather than just ahead; a shard file deleted behind a live
        mapping (only `evict_shard` or a user without `cache_limit`) is still read from the mapping (same bytes);
        without `cache_limit` the unused per-shard access times are not updated by mapped reads; a missing shard
        read in place fails in the reading thread rather than as 'Background thread failed'; a shard that cannot be
        downloaded (or arrives corrupt twice: `object_store.prepare_checked`) raises `ShardDownloadError` naming
        it, where streaming ends the epoch early and silently, leaves the shard PREPARING (later reads of it wait
        forever) and fails every later epoch with 'Background thread failed'; an epoch after such an error tries
        the store again.
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._dnax_shards: dict[int, Any] = {}  # shard id -> _WindowShard, or False: streaming's reader
            self._dnax_local: set[int] = set()  # shards prepare_shard saw LOCAL (without cache_limit)
            # first sample id of each shard, and the end: `bisect_right(bounds, i) - 1` is the shard of sample i,
            # what streaming's `spanner[i]` finds (the last shard starting at or before i is the one holding it,
            # empty shards included), at a tenth of its cost
            self._dnax_bounds: list[int] = [0, *np.cumsum(self.samples_per_shard).tolist()]
            self._dnax_failures: list[tuple[int, str]] = []  # this epoch's failed downloads: (thread, message)

        def reads_in_place(self) -> bool:
            """Whether every stream is read where it is (no remote, or remote == local: nothing is downloaded)."""
            return all(s.remote in (None, s.local) for s in self.streams)

        def epochs_without_threads(self) -> bool:
            """Whether an epoch started now runs without streaming's prepare/ready threads: no `cache_limit` (no
            shard is ever evicted) and no download to look ahead for (read in place, or all shards LOCAL)."""
            if self.cache_limit:
                return False
            return self.reads_in_place() or bool(np.all(self._shard_states.numpy() == _ShardState.LOCAL))

        def prepare_shard(self, shard_id: int, blocking: bool = True) -> None:
            if self.cache_limit:
                return self._dnax_prepare(shard_id, blocking)
            if shard_id in self._dnax_local and self._shard_states[shard_id] == _ShardState.LOCAL:
                return None
            self._dnax_prepare(shard_id, blocking)
            # LOCAL after streaming's prepare_shard: the raw file is complete (its LOCAL branch decompresses a
            # missing raw; downloads and decompression write a temporary file and rename it)
            if self._shard_states[shard_id] == _ShardState.LOCAL:
                self._dnax_local.add(shard_id)
            return None

        def _dnax_prepare(self, shard_id: int, blocking: bool) -> None:
            """streaming's `prepare_shard`; for downloaded shards checked (`object_store.prepare_checked`), and a
            failure recorded for the epoch: streaming's download thread would end the epoch silently."""
            if self.reads_in_place():
                return super().prepare_shard(shard_id, blocking)
            if self._dnax_failures:  # the epoch is stopping: no further downloads (and no second raising thread:
                return None  # streaming's end of epoch waits for one of its two threads to exit normally)
            try:
                prepare_checked(self, shard_id, blocking, super().prepare_shard, self._dnax_fail)
            except ShardDownloadError:
                # only the first failing thread raises: streaming's download and ready threads may both be
                # fetching this shard, and its end of epoch waits for one of them to return normally
                if self._dnax_failures[0][0] == threading.get_ident():
                    raise
            return None

        def _dnax_fail(self, message: str) -> None:
            self._dnax_failures.append((threading.get_ident(), message))  # atomic: the first entry is the first
            event = self.__dict__.get("_event")
            if event is not None:
                event.set()  # streaming's threads stop at their next step

        def _resume_incr_epoch(self) -> tuple[int, int]:
            epoch, sample_in_epoch = super()._resume_incr_epoch()  # every iteration path starts an epoch here
            self._dnax_epoch = epoch
            return epoch, sample_in_epoch

        def __getitem__(self, sample_id: int) -> Any:
            """A window with the epoch it is drawn in (`epoch`, int): with `chrom_index` and `start` it keys the
            training draws (MLM masks, RC flips) to the sample, independent of batching and process layout."""
            sample = super().__getitem__(sample_id)
            if "chrom_index" in sample:  # the window layout (other MDS schemas pass through unchanged)
                sample["epoch"] = self.__dict__.get("_dnax_epoch", 0)
            return sample

        def get_item(self, sample_id: int, retry: int = 7) -> Any:
            event = self.__dict__.get("_event")  # as streaming: a failed background thread stops the reads
            if event is not None and event.is_set():
                if self._dnax_failures:
                    raise ShardDownloadError(self._dnax_failures[0][1])
                raise RuntimeError("Background thread failed. Check other traceback.")
            bounds = self._dnax_bounds
            if 0 <= sample_id < bounds[-1]:  # else streaming's get_item raises streaming's IndexError
                shard_id = bisect.bisect_right(bounds, sample_id) - 1
                shard = self._dnax_shards.get(shard_id)
                if shard:
                    return shard.sample(sample_id - bounds[shard_id])
            try:
                sample = super().get_item(sample_id, retry)  # prepares the shard if needed
            except RuntimeError as e:
                # a download thread failed meanwhile: it evicted the shard and no further downloads start, so
                # streaming's reader ran out of retries on the missing file; report the failure itself
                if self._dnax_failures:
                    raise ShardDownloadError(self._dnax_failures[0][1]) from e
                raise
            shard_id, _ = self.spanner[sample_id]
            shard = self._dnax_shards.get(shard_id)
            if shard is None:
                if self.cache_limit or not _WindowShard.fits(self.shards[shard_id]):
                    self._dnax_shards[int(shard_id)] = False
                else:
                    mapped = _WindowShard.open(self.shards[shard_id])
                    if isinstance(mapped, str):  # unexpected on disk: streaming's reader, which reads it anyway
                        warnings.warn(f"dnax fast MDS reader: {mapped}; reading that shard with streaming's reader",
                                      RuntimeWarning, stacklevel=2)
                        mapped = False
                    if mapped is not None:  # None: the file went missing meanwhile; try again on the next sample
                        self._dnax_shards[int(shard_id)] = mapped
            return sample

        def __iter__(self):
            if self._dnax_failures:  # the previous epoch raised it; this one tries the store again
                self._dnax_failures.clear()
                event = self.__dict__.get("_event")
                if event is not None:
                    event.clear()
            if self.epochs_without_threads():
                return self._iter_in_place()
            return self._iter_threaded()

        def _iter_threaded(self):
            # streaming's __iter__, which ends the epoch early and without an error when its download thread fails
            yield from super().__iter__()
            if self._dnax_failures:
                raise ShardDownloadError(self._dnax_failures[0][1])

        def _iter_in_place(self):
            # streaming's __iter__ (0.13.0) without the executor, its event and the prepare/ready threads
            if hasattr(self, "_iterator"):  # end the previous epoch, as streaming does
                self._iterator.exit()
            event = self.__dict__.get("_event")
            if event is not None and event.is_set():
                raise RuntimeError("Background thread failed. Check other traceback.")
            self._unique_worker_world = self._unique_rank_world.detect_workers()
            self._parallel_worker_world = self._parallel_rank_world.detect_workers()
            epoch, sample_in_epoch = self._resume_incr_epoch()
            sample_ids = self._get_work(epoch, sample_in_epoch)
            if not len(sample_ids):  # resumed at the end of the epoch
                return
            self._iterator = it = _InPlaceEpoch(sample_ids)
            getitem = self.__getitem__
            for sample_id in sample_ids.tolist():
                if it.should_exit():  # another epoch started: only one is valid at a time
                    break
                if sample_id != -1:  # padding of uneven partitions
                    yield getitem(sample_id)
            it.exit()

        def __getstate__(self) -> dict[str, Any]:
            state = self.__dict__.copy()  # mappings are per process: a spawned worker maps the shards again
            state["_dnax_shards"], state["_dnax_local"], state["_dnax_failures"] = {}, set(), []
            return state

    WindowStreamingDataset.__module__ = __name__
    _InPlaceEpoch.__module__ = __name__
    return WindowStreamingDataset


def reset_stream_downloaders(dataset) -> None:
    """Drop every stream's cached object-store client so that the next download creates a fresh one.

    mosaicml-streaming 0.13 keeps one client per stream (`Stream._downloader`, e.g. a boto3 S3 client and its
    connection pool); DataLoader workers started by fork inherit the parent's and share its sockets, which corrupts
    downloads. Called in the parent after the dataset is built and in each worker at start.
    """
    for stream in getattr(dataset, "streams", ()):
        downloader = getattr(stream, "_downloader", None)
        if downloader is not None:
            downloader.clean_up()


def _worker_init(_worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    if info is not None:
        reset_stream_downloaders(info.dataset)


def _read_index(remote_split: str, local: str | None) -> dict:
    """A split's merged `index.json`; FileNotFoundError (one line, how to prepare the data) if absent, and for an
    object store `ObjectStoreError` (one line: unreachable, credentials refused, no such bucket)."""
    import json

    if not is_url(remote_split):
        path = Path(remote_split) / INDEX
        if not path.is_file():
            root = Path(remote_split).parent
            have = sorted(p.name for p in root.iterdir() if (p / INDEX).is_file()) if root.is_dir() else []
            found = f" (splits there: {', '.join(have)})" if have else ""
            raise FileNotFoundError(f"no MDS dataset at {remote_split}: {path} is missing{found}; {PREPARE_HINT}")
        return json.loads(path.read_text())
    cached = Path(local) / INDEX if local else None
    if cached is not None and cached.is_file():
        return json.loads(cached.read_text())
    url = f"{remote_split.rstrip('/')}/{INDEX}"
    with tempfile.TemporaryDirectory() as d:
        dest = os.path.join(d, INDEX)
        if not fetch_object(url, dest):
            have = list_prefixes(remote_split.rstrip("/").rsplit("/", 1)[0])
            found = f" (splits there: {', '.join(have)})" if have else ""
            raise FileNotFoundError(f"no MDS dataset at {remote_split}: {url} does not exist{found}; {PREPARE_HINT}")
        with open(dest) as f:
            return json.load(f)


def build_pretrain_dataloader(
    remote: str,
    split: str,
    batch_size: int,
    *,
    local: str | None = None,
    shuffle: bool = True,
    seed: int = 17,
    num_workers: int = 0,
    drop_last: bool = True,
    max_windows: int | None = None,
    pin_memory: bool = False,
    fast_path: bool = True,
    **streaming_kwargs: Any,
):
    """A `streaming.StreamingDataLoader` over `<remote>/<split>` (the output of `data_tools.fasta_to_mds`).

    remote: the conversion's root, a local directory or an object-store URL. split: `train`, `valid` or `test`.
    local: where shards are cached; None reads a local `remote` in place (streaming then decompresses compressed
        shards beside the compressed ones) and caches a URL in `default_cache_dir(<remote>/<split>)`.
    batch_size: per device; also given to the StreamingDataset, which needs it for deterministic resumption.
    shuffle, seed: StreamingDataset `shuffle` and `shuffle_seed` (same seed, same order).
    max_windows: use only this many windows (e.g. a fixed held-out validation set): StreamingDataset
        `epoch_size=max_windows` with `sampling_method="fixed"` (unless given), so the subset is chosen once from
        the seed and is the same every epoch; resumption stays streaming's own. No effect when the split is smaller.
    fast_path: read with `WindowStreamingDataset` (the same samples, order and resumption as streaming, ~20x faster
        per window); False, or a streaming version it was not checked against (a warning), plain StreamingDataset.
    **streaming_kwargs: passed unchanged to `streaming.StreamingDataset` (e.g. `predownload`, `cache_limit`,
        `num_canonical_nodes`, `shuffle_algo`, `download_retry`); an unknown name raises there. For a URL,
        `validate_hash` defaults to the shard hash the converter wrote (`object_store.SHARD_HASH`), if any.
    From an object store, a shard that cannot be downloaded (or arrives corrupt twice) raises
    `object_store.ShardDownloadError` naming it (the fast path; plain streaming ends the epoch early instead).
    Each batch: {"input_ids" (B, seq_len), "chrom_index" (B,), "start" (B,), "epoch" (B,)}, all int64 ("epoch"
    only on the fast path).
    """
    from streaming import StreamingDataLoader

    release_with_owner()  # the dataset's shared memory (file descriptors) goes with it, not at exit
    dataset_class = window_dataset_class(fast_path=fast_path)
    remote = str(remote)
    remote_split = f"{remote.rstrip('/')}/{split}" if is_url(remote) else str(Path(remote).expanduser() / split)
    url = is_url(remote_split)
    if url:
        local = local or default_cache_dir(remote_split)
    index = _read_index(remote_split, local)
    total = sum(s["samples"] for s in index["shards"])
    kwargs = dict(streaming_kwargs)
    if url and "validate_hash" not in kwargs:  # check each download against the hash the converter wrote
        kwargs["validate_hash"] = index_hash(index)
    if max_windows is not None:
        if max_windows <= 0:
            raise ValueError(f"max_windows must be positive, got {max_windows}")
        if "epoch_size" in kwargs:
            raise ValueError("pass max_windows or epoch_size, not both")
        if max_windows < total:
            kwargs["epoch_size"] = max_windows
            kwargs.setdefault("sampling_method", "fixed")
    if local is None:  # a local directory, read in place
        places = dict(local=remote_split)
    else:  # copied (downloaded) into `local` on demand
        places = dict(remote=remote_split, local=local)
    dataset = build_retrying_prefix_races(
        lambda: dataset_class(**places, batch_size=batch_size, shuffle=shuffle, shuffle_seed=seed, **kwargs))
    # the loader's own generator: creating an iterator then draws its worker base seed from it, not from the global
    # RNG, so the global random stream (MLM masks, RC flips) does not depend on when iterators are created (resume)
    loader_kwargs: dict[str, Any] = {"generator": torch.Generator().manual_seed(seed)}
    if url and num_workers > 0:  # fork-shared object-store clients corrupt downloads (see reset_stream_downloaders)
        reset_stream_downloaders(dataset)
        loader_kwargs["worker_init_fn"] = _worker_init
    return StreamingDataLoader(dataset, batch_size=batch_size, collate_fn=collate_windows, num_workers=num_workers,
                               drop_last=drop_last, pin_memory=pin_memory, **loader_kwargs)
