"""Compile the repository's Triton kernels for a GPU architecture on a machine without one, and report what each
launch costs in registers, spilled stack and shared memory.

    python -m kernels.compile_check                     # sm_90 (H100/H200) and sm_80 (A100), every launch
    python -m kernels.compile_check --arch 90 --out benchmarks/results/kernel_resources.md

Triton's ahead-of-time path lowers a kernel down to a cubin with the ptxas bundled in its wheel; cuobjdump (also
bundled) reads the cubin's resource usage. This catches what Triton's CPU interpreter cannot: code that does not
lower for the GPU, and register spills (STACK > 0: per-thread local memory, slow). Launches are the configurations
the kernels' wrappers use (the `_launch` of `kernels.slstm_recurrence` and `kernels.selective_scan`,
`kernels.mlstm_bidirectional.default_config` and its tuned table). Must run without `TRITON_INTERPRET=1` (the
interpreter replaces the kernels by Python functions).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

ARCHS = (90, 80)
#: the most shared memory one block may use (opt-in maximum), bytes: H100/H200 and A100
SHARED_LIMIT = {90: 232448, 80: 166912}


@dataclasses.dataclass
class Launch:
    """One kernel launch configuration: the kernel (a `triton.jit` function), its constexpr values, which arguments
    are 32-bit ints / fp32 scalars (the rest are pointers, to fp32 unless `pointers` says otherwise) and the launch
    options."""
    name: str
    kernel: Any
    constexprs: dict
    ints: tuple[str, ...] = ()
    floats: tuple[str, ...] = ()
    pointers: dict = dataclasses.field(default_factory=dict)
    num_warps: int = 4
    num_stages: int = 3

    def signature(self) -> dict[str, str]:
        def kind(arg: str) -> str:
            if arg in self.constexprs:
                return "constexpr"
            if arg in self.ints:
                return "i32"
            if arg in self.floats:
                return "fp32"
            return "*" + self.pointers.get(arg, "fp32")

        return {arg: kind(arg) for arg in self.kernel.arg_names}


def slstm_launches() -> list[Launch]:
    """`kernels.slstm_recurrence`'s forward and backward loop per supported head-dim tile."""
    from kernels import slstm_recurrence as k

    out = []
    for dh in (16, 32, 64):
        _, cfg = k._launch(1, 1, 1, dh)
        consts = {name: cfg[name] for name in ("BLOCK_B", "BLOCK_D")}
        for name, kernel in (("fwd", k._fwd_kernel), ("bwd", k._bwd_kernel)):
            out.append(Launch(f"slstm {name} DH={dh}", kernel, consts, ints=("S", "NH", "B", "DH"),
                              num_warps=cfg["num_warps"], num_stages=cfg["num_stages"]))
    return out


def selective_scan_launches() -> list[Launch]:
    """`kernels.selective_scan`'s kernels (forward, backward and the time-split passes) for Mamba's d_state 16
    (and 64), d_inner 256."""
    from kernels import selective_scan as k

    kernels = {"fwd": (k._fwd_kernel, ("L", "BG", "G", "H", "N", "CHUNK", "SPLIT"), {}),
               "bwd": (k._bwd_kernel, ("L", "BG", "G", "H", "N", "CHUNK", "SPLIT"), {}),
               "fwd_local": (k._fwd_local_kernel, ("L", "BG", "G", "H", "N", "SPLIT"), {}),
               "bwd_local": (k._bwd_local_kernel, ("L", "BG", "G", "H", "N", "SPLIT"), {}),
               "combine": (k._combine_kernel, ("SPLITS", "BG", "G", "H", "N"), {"REVERSE": False}),
               "combine_reverse": (k._combine_kernel, ("SPLITS", "BG", "G", "H", "N"), {"REVERSE": True})}
    out = []
    for n in (16, 64):
        _, cfg = k._launch(1, 256, n, 1)
        consts = {name: cfg[name] for name in ("BLOCK_H", "BLOCK_N")}
        for name, (kernel, ints, extra) in kernels.items():
            out.append(Launch(f"selective_scan {name} N={n}", kernel, {**consts, **extra}, ints=ints,
                              num_warps=cfg["num_warps"], num_stages=cfg["num_stages"]))
    return out


def mlstm_bidirectional_launches(arch: int) -> list[Launch]:
    """`kernels.mlstm_bidirectional`'s three kernels: fp32 (`ieee` dots, default tiles) and bf16 (the tuned tiles
    for this architecture where the table has them, else the default), head dims 32 to 256."""
    from kernels import mlstm_bidirectional as k

    kernels = {"fwd": k._fwd_kernel, "bwd_q": k._bwd_q_kernel, "bwd_kv": k._bwd_kv_kernel}
    tuned = k._tuned_table(str(k.TUNED_PATH)).get(f"sm{arch}", {})
    out = []
    for dtype in ("fp32", "bf16"):
        for dh in (32, 64, 128, 256):
            for phase, kernel in kernels.items():
                bt, bs, warps, stages = k.default_config(32768, dh, ieee=dtype == "fp32")
                if dtype == "bf16":
                    bt, bs, warps, stages = tuned.get(dtype, {}).get(str(dh), {}).get(phase, (bt, bs, warps, stages))
                consts = dict(BLOCK_T=bt, BLOCK_S=bs, BLOCK_D=dh, IEEE=dtype == "fp32")
                io = {name: dtype for name in ("Q", "K", "V", "H")}
                io["ARG"] = "i32"
                out.append(Launch(f"mlstm_bidirectional {phase} {dtype} DH={dh}", kernel, consts, ints=("S", "DH"),
                                  floats=("scale", "eps"), pointers=io, num_warps=warps, num_stages=stages))
    return out


def resource_usage(cubin: bytes) -> dict[str, int]:
    """REG, STACK and LOCAL of the one function in `cubin`, read by the bundled cuobjdump (its SHARED is only the
    static part: Triton's shared memory is dynamic, in the compiled kernel's metadata)."""
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([str(tool), "--dump-resource-usage", f.name], capture_output=True, text=True,
                              check=True).stdout
    return {key: int(value) for key, value in re.findall(r"\b(REG|STACK|LOCAL):(\d+)", text)}


def compile_launch(launch: Launch, arch: int) -> dict:
    """Compile one launch for sm_`arch`; a row with the resource usage, or with `error` where it does not lower or
    would not launch (more shared memory than the architecture gives a block)."""
    t0 = time.perf_counter()
    row = dict(launch=launch.name, arch=f"sm_{arch}", num_warps=launch.num_warps, num_stages=launch.num_stages)
    try:
        compiled = triton.compile(ASTSource(fn=launch.kernel, signature=launch.signature(),
                                            constexprs=launch.constexprs),
                                  target=GPUTarget("cuda", arch, 32),
                                  options=dict(num_warps=launch.num_warps, num_stages=launch.num_stages))
        row.update(resource_usage(compiled.asm["cubin"]), SHARED=compiled.metadata.shared)
        if row["SHARED"] > SHARED_LIMIT.get(arch, row["SHARED"]):
            row["error"] = f"needs {row['SHARED']} bytes of shared memory, sm_{arch} allows {SHARED_LIMIT[arch]}"
    except Exception as e:  # noqa: BLE001 - reported per launch
        row["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    row["compile_s"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict]) -> str:
    lines = [f"Triton kernels compiled ahead of time (triton {triton.__version__}, `python -m kernels.compile_check`);"
             " registers per thread, STACK = spilled bytes per thread (0 is best), SHARED bytes per block.", "",
             "| launch | arch | warps | stages | registers | stack (spills) | shared | status |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        status = r.get("error", "ok")
        lines.append(f"| {r['launch']} | {r['arch']} | {r['num_warps']} | {r['num_stages']} | {r.get('REG', '')} | "
                     f"{r.get('STACK', '')} | {r.get('SHARED', '')} | {status} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", type=int, action="append", help="compute capability x10 (default: 90 and 80)")
    p.add_argument("--only", action="append", help="only launches whose name contains this (repeatable)")
    p.add_argument("--out", type=Path, help="also write the table to OUT.md and the rows to OUT.json")
    args = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("kernels.compile_check: unset TRITON_INTERPRET (the interpreter replaces the kernels by Python "
              "functions, which cannot be compiled)", file=sys.stderr)
        return 2
    rows = []
    for arch in args.arch or ARCHS:
        for launch in slstm_launches() + selective_scan_launches() + mlstm_bidirectional_launches(arch):
            if not args.only or any(part in launch.name for part in args.only):
                rows.append(compile_launch(launch, arch))
                print(json.dumps(rows[-1]), flush=True)
    table = markdown(rows)
    print(table)
    if args.out:
        from dnax.atomic import atomic_write_text

        stem = str(args.out).removesuffix(".md")  # a stem may contain dots (kernel_resources_triton3.6)
        atomic_write_text(Path(stem + ".json"), json.dumps(rows, indent=2))
        atomic_write_text(Path(stem + ".md"), table)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
