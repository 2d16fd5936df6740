"""The pre-training loader: MDS window shards (`data_tools.fasta_to_mds`) -> `StreamingDataset` -> batches.

A batch is `{"input_ids": LongTensor (B, seq_len), "chrom_index": LongTensor (B,), "start": LongTensor (B,)}`: raw
token ids of `dnax.tokenizer` (N stays N; masking or shifting is the objective's job) and each window's provenance
(`chrom_index` indexes the `chroms` list of the conversion manifest `<remote>/dnax_mds.json`; `start` is 0-based).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
import torch

INDEX = "index.json"
PREPARE_HINT = ("prepare it with `python -m data_tools.hg38 download` then `python -m data_tools.hg38 convert` "
                "(or `python -m data_tools.fasta_to_mds --fasta F [--bed B] --seq-len N --out DIR`)")


def is_url(path: str) -> bool:
    return "://" in path and len(urllib.parse.urlparse(path).scheme) > 1


def default_cache_dir(remote_split: str) -> str:
    """Local cache of a remote split: `~/.cache/dnax/mds/<hash of the split's URL>` (`$DNAX_CACHE` replaces
    `~/.cache/dnax`). One directory per split: streaming refuses two live datasets sharing a cache directory."""
    cache = Path(os.environ.get("DNAX_CACHE") or Path.home() / ".cache" / "dnax")
    return str(cache / "mds" / hashlib.blake2s(remote_split.encode(), digest_size=16).hexdigest())


def collate_windows(samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """StreamingDataset samples (`tokens` uint8 array, `chrom_index`, `start`) -> a batch of LongTensors."""
    return {
        "input_ids": torch.from_numpy(np.stack([s["tokens"] for s in samples])).long(),
        "chrom_index": torch.tensor([int(s["chrom_index"]) for s in samples], dtype=torch.long),
        "start": torch.tensor([int(s["start"]) for s in samples], dtype=torch.long),
    }


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


def _read_index_samples(remote_split: str, local: str | None) -> int:
    """Total samples of a split's merged index; FileNotFoundError (one line, how to prepare the data) if absent."""
    import json

    if not is_url(remote_split):
        path = Path(remote_split) / INDEX
        if not path.is_file():
            root = Path(remote_split).parent
            have = sorted(p.name for p in root.iterdir() if (p / INDEX).is_file()) if root.is_dir() else []
            found = f" (splits there: {', '.join(have)})" if have else ""
            raise FileNotFoundError(f"no MDS dataset at {remote_split}: {path} is missing{found}; {PREPARE_HINT}")
        return sum(s["samples"] for s in json.loads(path.read_text())["shards"])
    from streaming.base.storage import CloudDownloader

    cached = Path(local) / INDEX if local else None
    with tempfile.TemporaryDirectory() as d:
        dest = str(cached) if cached is not None and cached.is_file() else os.path.join(d, INDEX)
        if dest != str(cached):
            try:
                CloudDownloader.direct_download(f"{remote_split.rstrip('/')}/{INDEX}", dest, 60)
            except Exception as e:  # noqa: BLE001 - any backend error means the same to the user
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise FileNotFoundError(f"cannot read {remote_split}/{INDEX} ({msg}); {PREPARE_HINT}") from None
        with open(dest) as f:
            return sum(s["samples"] for s in json.load(f)["shards"])


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
    **streaming_kwargs: passed unchanged to `streaming.StreamingDataset` (e.g. `predownload`, `cache_limit`,
        `num_canonical_nodes`, `shuffle_algo`); an unknown name raises there.
    Each batch: {"input_ids" (B, seq_len), "chrom_index" (B,), "start" (B,)}, all int64.
    """
    from streaming import StreamingDataLoader, StreamingDataset

    remote = str(remote)
    remote_split = f"{remote.rstrip('/')}/{split}" if is_url(remote) else str(Path(remote).expanduser() / split)
    url = is_url(remote_split)
    if url:
        local = local or default_cache_dir(remote_split)
    total = _read_index_samples(remote_split, local)
    kwargs = dict(streaming_kwargs)
    if max_windows is not None:
        if max_windows <= 0:
            raise ValueError(f"max_windows must be positive, got {max_windows}")
        if "epoch_size" in kwargs:
            raise ValueError("pass max_windows or epoch_size, not both")
        if max_windows < total:
            kwargs["epoch_size"] = max_windows
            kwargs.setdefault("sampling_method", "fixed")
    if local is None:  # a local directory, read in place
        dataset = StreamingDataset(local=remote_split, batch_size=batch_size, shuffle=shuffle, shuffle_seed=seed,
                                   **kwargs)
    else:  # copied (downloaded) into `local` on demand
        dataset = StreamingDataset(remote=remote_split, local=local, batch_size=batch_size, shuffle=shuffle,
                                   shuffle_seed=seed, **kwargs)
    loader_kwargs: dict[str, Any] = {}
    if url and num_workers > 0:  # fork-shared object-store clients corrupt downloads (see reset_stream_downloaders)
        reset_stream_downloaders(dataset)
        loader_kwargs["worker_init_fn"] = _worker_init
    return StreamingDataLoader(dataset, batch_size=batch_size, collate_fn=collate_windows, num_workers=num_workers,
                               drop_last=drop_last, pin_memory=pin_memory, **loader_kwargs)
