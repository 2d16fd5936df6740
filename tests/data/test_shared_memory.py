"""`dnax.data.shared_memory`: streaming's shared-memory blocks (and their file descriptors) go with their owners."""
import gc
import multiprocessing
import os
from pathlib import Path

from dnax.data.shared_memory import release_with_owner


def shm_descriptors() -> list[str]:
    """The /dev/shm files this process holds open (two descriptors per block: its fd and its mmap's)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/dev/shm/"):
            out.append(target)
    return out


def _drop_and_collect(holder):
    holder.clear()  # the child's copy of the block's wrapper dies here
    gc.collect()


def test_a_block_is_released_with_its_wrapper_and_a_forked_child_leaves_it():
    assert release_with_owner()
    from streaming.base.shared.memory import SharedMemory

    gc.collect()  # datasets an earlier test dropped release their blocks now, not in the middle of this test
    before = shm_descriptors()
    holder = [SharedMemory(name="dnax_test_block", create=True, size=64)]
    holder[0].buf[:3] = b"abc"
    reader = SharedMemory(name="dnax_test_block", create=False, size=64)  # opened, not created: never unlinks
    assert len(shm_descriptors()) == len(before) + 4
    child = multiprocessing.get_context("fork").Process(target=_drop_and_collect, args=(holder,))
    child.start()
    child.join()
    assert child.exitcode == 0 and Path("/dev/shm/dnax_test_block").exists()  # the child did not unlink it
    del reader
    gc.collect()
    assert Path("/dev/shm/dnax_test_block").exists() and bytes(holder[0].buf[:3]) == b"abc"
    holder.clear()
    gc.collect()
    assert not Path("/dev/shm/dnax_test_block").exists()
    assert shm_descriptors() == before


def test_only_a_process_alone_on_its_machine_retries_a_lost_prefix_race(monkeypatch):
    """The ranks of a multi-process job agree on streaming's prefix before their leader registers it, so there a
    lost race is one clear error; other FileExistsErrors are not races and pass through unchanged."""
    import errno

    import pytest

    from dnax.data.shared_memory import SharedMemoryRaceError, build_retrying_prefix_races

    calls = []

    def build(error):
        calls.append(error)
        if len(calls) == 1:
            raise error
        return "dataset"

    race = FileExistsError(errno.EEXIST, "File exists", "/000003_locals")
    assert build_retrying_prefix_races(lambda: build(race)) == "dataset" and len(calls) == 2
    calls.clear()
    with pytest.raises(FileExistsError, match="cache.tmp"):
        build_retrying_prefix_races(lambda: build(FileExistsError(errno.EEXIST, "File exists", "/tmp/cache.tmp")))
    calls.clear()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(SharedMemoryRaceError, match="/000003_locals was created by another job .* start the job"):
        build_retrying_prefix_races(lambda: build(race))
    assert len(calls) == 1
