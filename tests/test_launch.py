"""`dnax-launch` (dnax.launch): composer's launcher with one-line argument errors and the failing rank's exit status.
The launched "training" here is a few lines of plain Python per rank, so each test takes seconds."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dnax.launch import exit_status

REPO = Path(__file__).resolve().parents[1]


def launch(args: list[str], tmp_path: Path, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-m", "dnax.launch", *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def rank_script(tmp_path: Path, body: str) -> str:
    """A module each rank runs: it records its pid in pid<RANK>, then runs `body`."""
    (tmp_path / "ranks.py").write_text(
        "import os, sys, time\nrank = int(os.environ['RANK'])\n"
        "open(f'pid{rank}.tmp', 'w').write(str(os.getpid())); os.replace(f'pid{rank}.tmp', f'pid{rank}')\n" + body)
    return "ranks"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_dnax_launch_wraps_composers_launcher():
    out = subprocess.run([sys.executable, "-m", "dnax.launch", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "--nproc" in out.stdout and "--world_size" in out.stdout
    assert out.stdout.startswith("usage: dnax-launch")


@pytest.mark.parametrize("args, message", [
    (["-n", "0"], "dnax-launch: error: The nproc must be 1 or greater"),
    (["-n", "2", "--world_size", "1"], "dnax-launch: error: world_size(1) cannot be less than nproc(2)"),
])
def test_bad_launcher_arguments_are_one_line_and_exit_2(tmp_path, args, message):
    proc = launch([*args, "-m", "dnax.run", "experiments.hg38_xlstm", "tiny"], tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert err.strip() == message
    assert not list(tmp_path.iterdir())  # no process started, nothing written


def test_ranks_that_finish_exit_0_quietly(tmp_path):
    proc = launch(["-n", "2", "-m", rank_script(tmp_path, "print('done', rank)\n")], tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "done 0" in out and "dnax-launch" not in err


def test_exit_status_is_the_first_failed_ranks_code(tmp_path):
    """Rank 1 fails with 3 while rank 0 still runs; composer stops rank 0 (SIGTERM) and used to exit with rank 0's
    -15 (status 241)."""
    proc = launch(["-n", "2", "-m", rank_script(tmp_path, "time.sleep(1) if rank == 1 else time.sleep(120)\n"
                                                          "sys.exit(3)\n")], tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert err.strip().splitlines()[-1] == "dnax-launch: rank 1 failed with exit code 3; the other ranks were " \
                                           "stopped (exit status 3)"
    assert not alive(int((tmp_path / "pid0").read_text()))


def test_ctrl_c_stops_every_rank_and_exits_130(tmp_path):
    proc = launch(["-n", "2", "-m", rank_script(tmp_path, "time.sleep(120)\n")], tmp_path)
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"pid{r}").exists() for r in (0, 1)):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # the launcher alone, as `kill -INT`; a terminal's Ctrl-C also reaches the ranks
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "dnax-launch: interrupted; the ranks were stopped (exit status 130)"
    assert "Traceback" not in err
    assert not any(alive(int((tmp_path / f"pid{r}").read_text())) for r in (0, 1))


def test_exit_status_rules():
    assert exit_status(None, None, {0: 0, 1: 0}) == 0
    assert exit_status((1, 2), None, {0: -15, 1: 2}) == 2
    assert exit_status((0, -9), None, {0: -9, 1: -15}) == 137  # killed by SIGKILL (e.g. out of memory)
    assert exit_status(None, 130, {0: -15, 1: -15}) == 130
    assert exit_status(None, 143, {0: -15, 1: -15}) == 143  # the launcher got SIGTERM
    assert exit_status(None, None, {0: 0, 1: 4}) == 4  # all finished, one failed
    assert exit_status((1, 2), None, {0: None, 1: 2}) == 1  # a rank that would not stop
