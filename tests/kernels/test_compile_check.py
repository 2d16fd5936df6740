"""The Triton kernels compile for an H100 (sm_90) without a GPU and fit its shared memory: `kernels.compile_check`
run as a user runs it (a process without TRITON_INTERPRET), on the sLSTM and selective-scan kernels and the
bidirectional mLSTM kernels at the paper model's bf16 head dim."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_kernels_compile_for_sm90(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = tmp_path / "resources_sm9.0"  # a dot in the stem is kept
    cmd = [sys.executable, "-m", "kernels.compile_check", "--arch", "90", "--only", "slstm", "--only",
           "selective_scan", "--only", "bf16 DH=128", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(Path(f"{out}.json").read_text())
    names = {r["launch"] for r in rows}
    assert {f"slstm {p} DH={dh}" for p in ("fwd", "bwd") for dh in (16, 32, 64)} <= names
    assert {f"selective_scan {p} N={n}" for p in ("fwd", "bwd", "fwd_local", "bwd_local", "combine", "combine_reverse")
            for n in (16, 64)} <= names
    assert {f"mlstm_bidirectional {p} bf16 DH=128" for p in ("fwd", "bwd_q", "bwd_kv")} <= names
    for r in rows:  # (the selective scan's time-split passes reduce nothing across threads: no shared memory)
        assert "error" not in r and r["REG"] > 0 and 0 <= r["SHARED"] <= 232448, r
    assert all(r["SHARED"] > 0 for r in rows if not r["launch"].startswith(("selective_scan fwd_local",
                                                                           "selective_scan bwd_local",
                                                                           "selective_scan combine")))
    # the recurrent kernels (sLSTM, selective scan) keep their carried state in registers without spilling
    assert all(r["STACK"] == 0 for r in rows if r["launch"].startswith(("slstm", "selective_scan")))
    assert "| slstm fwd DH=32 | sm_90 |" in Path(f"{out}.md").read_text()


def test_interpreted_kernels_are_refused():
    done = subprocess.run([sys.executable, "-m", "kernels.compile_check", "--only", "slstm"], cwd=ROOT,
                          env={**os.environ, "TRITON_INTERPRET": "1"}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unset TRITON_INTERPRET" in done.stderr


def test_a_launch_that_does_not_lower_is_reported():
    code = ("import json; from kernels.compile_check import Launch, compile_launch; "
            "from kernels import slstm_recurrence as k; "
            "print(json.dumps(compile_launch(Launch('bad', k._fwd_kernel, dict(BLOCK_B=16, BLOCK_D=24), "
            "ints=('S', 'NH', 'B', 'DH')), 90)))")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" in row and "REG" not in row, row  # tl.arange needs a power-of-two length
