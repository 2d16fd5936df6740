"""Release mosaicml-streaming's shared memory with the objects that hold it, not at interpreter exit.

Each `StreamingDataset` opens about six shared-memory blocks (locals, barrier, epoch counter, cache usage, shard
states and access times; two file descriptors each), and its prefix search opens those of the datasets already
alive. `streaming.base.shared.memory.SharedMemory` registers `atexit.register(self.cleanup)` for every block,
so the handles (and file descriptors) stay open until the process exits however many datasets come and go:
about 36 descriptors per pretraining run in one process (mosaicml/streaming#457, llm-foundry#406). That is harmless
for one `dnax.run` per process, but a notebook, a test session or an in-process sweep reaches the descriptor limit.

`release_with_owner()` makes each new block's cleanup a `weakref.finalize` of its wrapper instead: the same cleanup
(close; unlink the blocks this process created), run when the wrapper is garbage collected (a search handle at
once, a dataset's blocks with the dataset) or at exit for those still alive, as before. A forked child (a loader
worker) never unlinks its parent's blocks. Applied only where streaming's wrapper is the one this was written
against (its `__init__` takes `auto_cleanup` and records `created_shms` / `opened_shms`).

When a dataset's registration block goes, so do the file locks streaming made for its prefix in the temporary
directory (`_remove_prefix_filelocks`). `build_retrying_prefix_races()` builds a dataset again when streaming's
prefix registration lost a race to another job starting on the same machine (its search for a free prefix and the
creation are not atomic).
"""
from __future__ import annotations

import inspect
import os
import random
import re
import tempfile
import time
import weakref
from typing import Any, Callable, TypeVar

T = TypeVar("T")
#: streaming's shared-memory block names: a six-digit prefix and the block, e.g. "/000075_locals"
_PREFIX_BLOCK = re.compile(r"^/?\d{6}_\w+$")
_LOCALS_BLOCK = re.compile(r"^/?(\d{6})_locals$")

_installed = False


def _release(created: list[Any], opened: list[Any], pid: int) -> None:
    if os.getpid() != pid:  # a forked copy: the creating process owns the blocks
        return
    for shm in created + opened:
        try:
            shm.close()
        except BufferError:  # a view of it is still alive: the mapping closes with the last view
            pass
    for shm in created:
        try:
            shm.unlink()
        except FileNotFoundError:  # already unlinked (e.g. by streaming's stale-memory cleanup)
            pass
        _remove_prefix_filelocks(shm.name)


def _alone_on_machine() -> bool:
    """Whether this process is the only rank of its job on this machine (LOCAL_WORLD_SIZE, as torchrun and
    Composer's launcher set it)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1")) <= 1


def _remove_prefix_filelocks(block_name: str) -> None:
    """After the registration block `N_locals` this process created is gone, the file locks streaming made for
    prefix N in the temporary directory (`N_barrier_filelock`, `N_cache_filelock`) belong to nobody: remove them.
    streaming never does, and its prefix search skips every N that has them, so they piled up by the thousand and
    each new dataset searched past them all. Only in a process alone on its machine: the other ranks of a job share
    its prefix and may still hold the locks."""
    match = _LOCALS_BLOCK.match(block_name)
    if not match or not _alone_on_machine():
        return
    from streaming.base.constant import BARRIER_FILELOCK, CACHE_FILELOCK

    for lock in (BARRIER_FILELOCK, CACHE_FILELOCK):
        try:
            os.remove(os.path.join(tempfile.gettempdir(), f"{match.group(1)}_{lock}"))
        except FileNotFoundError:
            pass


def release_with_owner() -> bool:
    """Patch streaming's `SharedMemory` (once per process) as the module docstring says; returns whether it is."""
    global _installed
    if _installed:
        return True
    from streaming.base.shared.memory import SharedMemory

    init = SharedMemory.__init__
    if "auto_cleanup" not in inspect.signature(init).parameters:
        return False

    def __init__(self, name: str | None = None, create: bool | None = None, size: int = 0,
                 auto_cleanup: bool = True) -> None:
        init(self, name, create, size, auto_cleanup=False)
        if auto_cleanup:
            weakref.finalize(self, _release, list(self.created_shms), list(self.opened_shms), os.getpid())

    probe = SharedMemory(create=True, size=8, auto_cleanup=False)
    probe.cleanup()
    if not isinstance(getattr(probe, "created_shms", None), list) or not hasattr(probe, "opened_shms"):
        return False
    SharedMemory.__init__ = __init__
    _installed = True
    return True


class SharedMemoryRaceError(RuntimeError):
    """Another job on this machine registered the same streaming shared-memory prefix at the same moment."""


def lost_prefix_race(error: BaseException) -> bool:
    """Whether `error` is streaming's prefix registration losing to another process: two jobs that start together
    both find prefix N free, and the second to create `N_locals` gets FileExistsError (the search is not atomic)."""
    return isinstance(error, FileExistsError) and bool(_PREFIX_BLOCK.match(str(error.filename or "")))


def build_retrying_prefix_races(build: Callable[[], T], attempts: int = 20) -> T:
    """`build()` (a StreamingDataset), again when it lost a prefix race (`lost_prefix_race`): the next search sees
    the other job's blocks and takes the next prefix. Only a process alone on its machine retries: the ranks of a
    multi-process job agree on the prefix before the leader registers it, so there a lost race is a one-line
    `SharedMemoryRaceError` (start the job again)."""
    alone = _alone_on_machine()
    for attempt in range(attempts):
        try:
            return build()
        except FileExistsError as e:
            if not lost_prefix_race(e):
                raise
            if not alone or attempt == attempts - 1:
                raise SharedMemoryRaceError(
                    f"streaming's shared-memory block {e.filename} was created by another job on this machine at the "
                    f"same moment ({attempt + 1} attempt(s)); start the job again") from None
            time.sleep(random.uniform(0.0, 0.05))
    raise AssertionError("unreachable")
