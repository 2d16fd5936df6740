"""Runs under `dnax-launch` (2 processes, gloo on CPU) and fault recovery, end to end in subprocesses.

* DDP, 2 processes x 1 window == 1 process x 2 windows: the same windows per step and the same losses, for the MLM
  recipe with RC augmentation (its masks and flips are keyed to each window and epoch, not drawn from a process's
  RNG, so they do not depend on the process layout).
* FSDP2 over gloo: trains, writes sharded checkpoints, and resumes from them.
* SIGKILL after a checkpoint, with a partly written next checkpoint: the same command resumes and the run's windows
  and losses equal an uninterrupted run's bit for bit (MLM + RC: the RNG is restored mid-epoch).
"""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dnax import run as cli

ROOT = Path(__file__).resolve().parents[2]
TINY = ["tiny", "steps(3)", "eval_dataloader=None", "trainer.save_interval='1ba'"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1"}  # 2 processes share the cores


def _launch(cwd: Path, nproc: int, *args: str, timeout: float = 300) -> None:
    cmd = [sys.executable, "-m", "dnax.launch", "-n", str(nproc), "-m", "dnax.run", *args]
    out = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def _losses(run_dir: Path) -> dict[int, float]:
    """step -> training loss, from the run's metrics.csv (one row per step, also across a resume)."""
    rows = [r for r in csv.DictReader(open(run_dir / "metrics.csv")) if r["name"] == "loss/train/total"]
    assert len({r["step"] for r in rows}) == len(rows), "a step was logged twice"
    return {int(r["step"]): float(r["value"]) for r in rows}


def _windows(run_dir: Path) -> dict[int, list[tuple[int, int]]]:
    """step -> sorted (chrom_index, start) of its global batch; a resumed attempt's lines replace the killed one's."""
    seen: dict[tuple[int, int], list] = {}  # (step, rank) -> windows, from the newest file that has them
    for path in sorted(run_dir.glob("samples-*.txt"), key=lambda p: p.stat().st_mtime):
        mine: dict[tuple[int, int], list] = {}
        for line in path.read_text().splitlines():
            step, rank, chrom, start = map(int, line.split())
            mine.setdefault((step, rank), []).append((chrom, start))
        seen.update(mine)
    steps: dict[int, list] = {}
    for (step, _), windows in seen.items():
        steps.setdefault(step, []).extend(windows)
    return {s: sorted(w) for s, w in steps.items()}


def _in_process(experiment: str, run_name: str, *extra: str):
    fn, module = cli.resolve_experiment(experiment)
    cfg = fn()
    cli.mutate(cfg, [*TINY, *extra, f"trainer.run_name='{run_name}'"], module)
    return cli.run(cfg)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    path = tmp_path_factory.mktemp("multiprocess")
    old = os.getcwd()
    os.chdir(path)
    try:
        _in_process("tests.distributed.configs.mlm", "one")  # the 1-process reference
        yield path
    finally:
        os.chdir(old)


def test_ddp_two_processes_match_one_process(work):
    _launch(work, 2, "tests.distributed.configs.mlm", *TINY, "trainer.run_name='ddp'")
    one, ddp = work / "runs/one", work / "runs/ddp"
    assert _windows(ddp) == _windows(one) and len(_windows(one)) == 3
    assert _losses(ddp) == pytest.approx(_losses(one), rel=1e-5) and len(_losses(one)) == 3
    assert sorted(p.name for p in (ddp / "checkpoints").glob("ep*")) == [f"ep0-ba{i}-rank0.pt" for i in (1, 2, 3)]


def test_fsdp2_trains_checkpoints_and_resumes(work):
    args = ["tests.distributed.configs.mlm", *TINY, "fsdp", "trainer.run_name='fsdp'"]
    _launch(work, 2, *args, "trainer.max_duration='2ba'")
    ckpt = work / "runs/fsdp/checkpoints"
    assert os.readlink(ckpt / "latest-rank0.pt") == "ep0-ba2"
    assert sorted(p.name for p in (ckpt / "ep0-ba2").iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    _launch(work, 2, *args)  # 3 steps: resumes from the sharded checkpoint at step 2
    assert os.readlink(ckpt / "latest-rank0.pt") == "ep0-ba3"
    one = work / "runs/one"
    assert _windows(work / "runs/fsdp") == _windows(one)
    assert _losses(work / "runs/fsdp") == pytest.approx(_losses(one), rel=1e-5)


def test_fsdp1_on_cpu_is_a_one_line_error(work):
    out = subprocess.run([sys.executable, "-m", "dnax.run", "experiments.hg38_xlstm", "tiny", "fsdp(1)", "--dry-run"],
                         cwd=work, env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip() == ("dnax.run: error: fsdp(1): Composer's FSDP1 needs CUDA; on CPU use `fsdp` or "
                                  "`fsdp(2)` (FSDP2 over gloo)")


def test_sigkill_then_same_command_resumes_exactly(work):
    """MLM with RC augmentation, 1 process: killed once step 1 or 2 is checkpointed; a partial next checkpoint
    is left behind as if the kill hit its write, and metrics.csv is gone (the metric history travels in the
    checkpoint); the same command finishes the run."""
    steps = ["steps(4)"]
    cmd = [sys.executable, "-m", "dnax.run", "tests.distributed.configs.mlm", *TINY, *steps, "trainer.run_name='kill'"]
    ckpt = work / "runs/kill/checkpoints"
    proc = subprocess.Popen(cmd, cwd=work, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not (ckpt / "latest-rank0.pt").is_symlink():
            assert proc.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    killed_at = int(os.readlink(ckpt / "latest-rank0.pt").split("-ba")[1].split("-")[0])
    assert killed_at < 4, "killed too late: the run had finished"
    partial = ckpt / f"ep0-ba{killed_at + 1}-rank0.pt"
    partial.write_bytes(b"PK\x03\x04 truncated")  # a write cut short (or a complete one never linked as latest)
    (work / "runs/kill/metrics.csv").unlink(missing_ok=True)  # the kill may beat the file: the checkpoint has it
    assert subprocess.run(cmd, cwd=work, env=_env(), capture_output=True, timeout=300).returncode == 0
    assert (ckpt / "interrupted" / partial.name).read_bytes().endswith(b"truncated")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses (OMP_NUM_THREADS=1): the same reduction order, bit for bit
    try:
        _in_process("tests.distributed.configs.mlm", "whole", *steps)
    finally:
        torch.set_num_threads(threads)
    kill, whole = work / "runs/kill", work / "runs/whole"
    assert _windows(kill) == _windows(whole) and len(_windows(whole)) == 4
    assert _losses(kill) == _losses(whole) and len(_losses(whole)) == 4  # bit-identical on CPU fp32
