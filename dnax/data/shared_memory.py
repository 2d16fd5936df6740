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
"""
from __future__ import annotations

import inspect
import os
import weakref
from typing import Any

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
