"""Where pretraining shards live (the hg38 MDS location) and how a global batch splits across processes.

Small functions that fiddle configs call at build time, so a config names *how* to find its data rather than a
machine-specific path.
"""
from __future__ import annotations

import os
import urllib.parse
from pathlib import Path


class BatchSizeError(ValueError):
    """A global batch that cannot be split across the processes (one line)."""


def is_url(location: str | os.PathLike) -> bool:
    """True for an object-store / remote URL (`s3://...`), False for a local path (including `C:\\...`)."""
    return isinstance(location, str) and "://" in location and len(urllib.parse.urlparse(location).scheme) > 1


def cache_root() -> Path:
    """dnax's cache directory: `$DNAX_CACHE` if set and non-empty, else `~/.cache/dnax`."""
    return Path(os.environ.get("DNAX_CACHE") or Path.home() / ".cache" / "dnax")


def hg38_mds(seq_len: int) -> str:
    """Location (directory or object-store URL) of hg38 converted at `seq_len`.

    `$DNAX_HG38_MDS` if set (it may contain `{seq_len}`), else `<cache>/hg38/mds_<seq_len>`. Prepare it with
    `python -m data_tools.hg38 download` and `python -m data_tools.fasta_to_mds` (see README).
    """
    template = os.environ.get("DNAX_HG38_MDS", str(cache_root() / "hg38" / "mds_{seq_len}"))
    return template.format(seq_len=seq_len)


def per_rank_batch(global_batch: int) -> int:
    """Windows per process per step, so that the global batch stays `global_batch` on any number of processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if isinstance(global_batch, bool) or not isinstance(global_batch, int) or global_batch < 1:
        raise BatchSizeError(f"global batch {global_batch!r}: expected a positive integer")
    if global_batch % world:
        raise BatchSizeError(f"global batch {global_batch} is not divisible by the {world} processes")
    return global_batch // world
