"""Sweep fine-tuning experiments over seeds and learning rates, one process per cell; resumable.

    python -m dnax.sweep 'experiments.genomic_benchmarks.*' --seeds 1-5 --lrs 1e-3,6e-4 [--pool 2] [--name NAME]
                         [fiddlers and overrides for every cell ...]

Cells are experiments (matching the glob among the registered ones) x seeds x learning rates. Each cell runs
`python -m dnax.run EXPERIMENT [tokens] seed(S) lr(LR) trainer.run_name=NAME/TASK/lr<LR>/seed<S>`, so it writes
`runs/NAME/TASK/lr<LR>/seed<S>/` (its `results.json` comes from `dnax.finetune.SelectBestAndTest`); without
--seeds / --lrs the experiment module's `SWEEP` dict gives them. A cell whose `results.json` exists is skipped
(rerun the same command to resume); a failed cell is recorded (`error.txt` in its run directory, a row in the
table) without stopping the others, and is retried on the next run. The fiddlers and overrides are recorded in
`runs/NAME/sweep.json`: resuming with others is refused (the finished cells were run with the recorded ones), so
give a new --name. They are checked on one experiment per module before any cell starts. Ctrl-C (SIGINT) stops the
sweep: running cells are interrupted, no new one starts, the summary lists what finished; rerun to resume.

Written atomically into `runs/NAME/`: `results.csv` (one row per cell), `results.md` (mean ± std of the headline
metric per task and learning rate; the best learning rate per task chosen on the validation mean) and `results.png`.
Published numbers are shown beside a task's result where the experiment module defines
`ANCHORS = {experiment name: [Anchor(label, value, metric), ...]}`, and only those whose metric is the metric the
task's runs report (`results.md` lists the others as not comparable).
Exit status: 0 when every cell has results, 1 when some failed, 2 for a bad command line, 130 when interrupted.
"""
from __future__ import annotations

import argparse
import csv
import fnmatch
import importlib
import io
import json
import math
import re
import signal
import statistics
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from dnax.atomic import atomic_write_bytes, atomic_write_text
from dnax.interrupts import signals_raise_keyboard_interrupt
from dnax.plotting import png_bytes, subplots

RESULTS = "results.json"
SWEEP_RECORD = "sweep.json"  # in runs/NAME/: the tokens every cell of the sweep runs with


class SweepError(ValueError):
    """A sweep that cannot start as asked (e.g. resuming with other fiddlers); one line."""


class CellInterrupted(Exception):
    """A cell stopped by SIGINT or SIGTERM: not a failure, it runs again when the sweep is resumed."""


@dataclass(frozen=True)
class Cell:
    experiment: str  # import path, e.g. experiments.genomic_benchmarks.human_nontata_promoters
    seed: int
    lr: float

    @property
    def task(self) -> str:
        return self.experiment.removeprefix("experiments.")

    def run_name(self, sweep: str) -> str:
        return f"{sweep}/{self.task}/lr{self.lr:g}/seed{self.seed}"


CellFn = Callable[[Cell, Path, Sequence[str]], None]


@dataclass(frozen=True)
class Anchor:
    """A published number to show beside a task's result: `value` of `metric` reported for `label` (the model and
    the source, e.g. "Caduceus-Ph (Schiff et al. 2024, Tab. 1)"). `metric` is a metric name as `results.json`
    records the headline ("Accuracy", "MCC", "F1"); the anchor is shown only beside runs reporting that metric."""

    label: str
    value: float
    metric: str


def parse_ints(text: str) -> list[int]:
    """'0-4' -> [0..4]; '1,3,5' -> [1, 3, 5]; ranges and items can be mixed ('0-2,7')."""
    out: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, sep, hi = part.partition("-")
        try:
            out += list(range(int(lo), int(hi) + 1)) if sep else [int(part)]
        except ValueError:
            raise ValueError(f"cannot parse seeds {text!r}: expected e.g. '0-4' or '1,3,5'") from None
    return out


def parse_floats(text: str) -> list[float]:
    try:
        return [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"cannot parse learning rates {text!r}: expected e.g. '1e-3,6e-4'") from None


def matching_experiments(pattern: str) -> list[str]:
    """Registered experiments whose import path matches the glob `pattern` (or equals it). Only the module named
    before the first wildcard is imported when it exists (importing every experiment module is slow)."""
    from experiments.common import registered

    literal = pattern.split("*")[0].split("?")[0].split("[")[0]
    imported = False
    for module_path in (pattern, literal.rpartition(".")[0] if "*" in pattern or "?" in pattern else ""):
        if module_path.startswith("experiments."):
            try:
                importlib.import_module(module_path)
                imported = True
                break
            except ImportError:
                continue
    if not imported:
        from dnax.run import list_experiments

        list_experiments()
    default = f"{pattern}.{pattern.rsplit('.', 1)[-1]}"  # `experiments.gue` names the function gue in module gue
    return sorted(p for p in registered() if p in (pattern, default) or fnmatch.fnmatchcase(p, pattern))


def module_attr(experiment: str, name: str):
    """`name` from the module of `experiment` (or from the module the path names itself), else None."""
    for module_path in (experiment.rpartition(".")[0], experiment):
        try:
            value = getattr(importlib.import_module(module_path), name, None) if module_path else None
        except ImportError:
            value = None
        if value is not None:
            return value
    return None


_RUNNING: set[subprocess.Popen] = set()  # cell processes now running (interrupted with the sweep)
_RUNNING_LOCK = threading.Lock()
_PROGRESS_BAR = re.compile(r"\d+%\|")
_INTERRUPTED_CODES = {-signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGINT, 128 + signal.SIGTERM}


def check_tokens(experiments: Sequence[str], tokens: Sequence[str]) -> None:
    """Apply `tokens` (fiddlers, overrides) to the config of the first experiment of each module, as every cell
    will (without building it): a ValueError naming the experiment when they do not apply, before any cell runs."""
    from dnax.run import UsageError, mutate, resolve_experiment

    checked: set[str] = set()
    for experiment in experiments:
        fn, module = resolve_experiment(experiment)
        if module.__name__ in checked:
            continue
        checked.add(module.__name__)
        try:
            mutate(fn(), list(tokens), module)
        except UsageError as e:
            raise ValueError(f"{experiment}: {e}") from None
        except Exception as e:  # noqa: BLE001 - every cell would fail the same way: stop before running any
            first = (str(e).strip().splitlines() or [""])[0]
            raise ValueError(f"{experiment} {' '.join(tokens)}: {type(e).__name__}: {first}") from None


def run_cell_subprocess(cell: Cell, run_dir: Path, tokens: Sequence[str], sweep: str = "sweep") -> None:
    """Run one cell with `python -m dnax.run` in a fresh process (in the current directory, so it writes
    `runs/<run name>`); output goes to `run_dir/log.txt`. Raises `CellInterrupted` when the process ends by
    SIGINT/SIGTERM, RuntimeError (exit status and the log's last message line) on another failure."""
    import os

    run_dir.mkdir(parents=True, exist_ok=True)
    repo = str(Path(__file__).resolve().parents[1])  # experiments/ is importable from the checkout
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "dnax.run", cell.experiment, *tokens, f"seed({cell.seed})", f"lr({cell.lr!r})",
           f"trainer.run_name={cell.run_name(sweep)!r}"]
    with open(run_dir / "log.txt", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        with _RUNNING_LOCK:
            _RUNNING.add(proc)
        try:
            code = proc.wait()
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)
    if code in _INTERRUPTED_CODES:
        raise CellInterrupted(f"exit status {code}")
    if code != 0:
        log_text = (run_dir / "log.txt").read_text(errors="replace")
        raise RuntimeError(f"exit status {code}: {last_message_line(log_text)}")


def last_message_line(log: str) -> str:
    """The last line of a cell's log that is a message, not progress-bar output (`train  50%|███  | 1/2 [...]`,
    terminal escapes), cut to 300 characters."""
    for line in reversed(log.splitlines()):
        line = line.strip()
        if line and not _PROGRESS_BAR.search(line) and "\x1b" not in line:
            return line[:300]
    return ""


def interrupt_running_cells() -> None:
    """Send SIGINT to every cell process still running (a Ctrl-C in a terminal reaches them already; a signal
    sent to the sweep process alone does not)."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for proc in running:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)


def check_sweep_record(folder: Path, tokens: Sequence[str]) -> None:
    """Record the sweep's tokens in `folder/sweep.json`; raises SweepError when it records other tokens (the
    finished cells there were run with those, and would be taken as results of these)."""
    record = folder / SWEEP_RECORD
    if record.is_file():
        try:
            recorded = json.loads(record.read_text()).get("tokens")
        except (ValueError, AttributeError):
            raise SweepError(f"{record}: unreadable; delete it only if every cell under {folder} was run with "
                             f"the fiddlers {list(tokens)}") from None
        if recorded != list(tokens):
            raise SweepError(f"{folder} holds a sweep run with {recorded} (recorded in {record}), not {list(tokens)}: "
                             "give another --name, or the same fiddlers and overrides to resume it")
        return
    atomic_write_text(record, json.dumps({"tokens": list(tokens)}) + "\n")


def run_sweep(cells: Sequence[Cell], *, sweep: str, cell_fn: CellFn, tokens: Sequence[str] = (), pool: int = 1,
              runs_root: str | Path = "runs") -> list[dict]:
    """Run every cell without results (up to `pool` at once), then write the summary files. Returns the rows.

    Raises SweepError when `runs_root/sweep` was run with other tokens. On KeyboardInterrupt no further cell starts,
    running cell processes are interrupted, the summary of what finished is written, and KeyboardInterrupt is
    raised again."""
    root = Path(runs_root)
    check_sweep_record(root / sweep, tokens)
    stop = threading.Event()

    def one(cell: Cell) -> tuple[str, str]:
        run_dir = root / cell.run_name(sweep)
        if (run_dir / RESULTS).is_file():
            return "cached", ""
        if stop.is_set():
            return "not run", "the sweep was interrupted"
        try:
            cell_fn(cell, run_dir, tokens)
        except CellInterrupted:
            stop.set()  # a cell stopped by SIGINT/SIGTERM: the sweep is being stopped
            return "interrupted", "the sweep was interrupted"
        except Exception as e:  # noqa: BLE001 - recorded, the sweep goes on
            message = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            atomic_write_text(run_dir / "error.txt", message + "\n")
            return "failed", message
        if not (run_dir / RESULTS).is_file():
            return "failed", f"finished without writing {RESULTS}"
        (run_dir / "error.txt").unlink(missing_ok=True)
        return "ok", ""

    executor = ThreadPoolExecutor(max_workers=max(1, pool))
    interrupted = False
    with signals_raise_keyboard_interrupt():
        futures = [executor.submit(one, cell) for cell in cells]
        try:
            for future in futures:
                future.result()
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
            interrupt_running_cells()
        while True:
            try:
                executor.shutdown(wait=True)
                break
            except KeyboardInterrupt:  # another Ctrl-C while the running cells stop
                interrupted = True
                interrupt_running_cells()
    outcomes = [f.result() for f in futures]
    rows = [collect_row(cell, root / cell.run_name(sweep), status, error)
            for cell, (status, error) in zip(cells, outcomes)]
    write_summary(rows, root / sweep, anchors=_anchors(cells))
    if interrupted or any(status == "interrupted" for status, _ in outcomes):
        raise KeyboardInterrupt
    return rows


def collect_row(cell: Cell, run_dir: Path, status: str, error: str) -> dict:
    row = {"task": cell.task, "experiment": cell.experiment, "lr": cell.lr, "seed": cell.seed, "status": status,
           "error": error, "metric": "", "best_epoch": "", "val": math.nan, "test": math.nan, "run_dir": str(run_dir)}
    if (run_dir / RESULTS).is_file():
        results = json.loads((run_dir / RESULTS).read_text())
        metric = results.get("metric", "")
        row.update(metric=metric, best_epoch=results.get("best_epoch", ""),
                   val=(results.get("val") or {}).get(metric, math.nan),
                   test=(results.get("test") or {}).get(metric, math.nan))
    return row


def _anchors(cells: Iterable[Cell]) -> dict[str, list[Anchor]]:
    """task -> the `Anchor`s its experiment module's `ANCHORS` gives for it."""
    anchors: dict[str, list[Anchor]] = {}
    for cell in cells:
        table = module_attr(cell.experiment, "ANCHORS") or {}
        name = cell.experiment.rsplit(".", 1)[-1]
        if name in table:
            entries = list(table[name])
            if not all(isinstance(a, Anchor) for a in entries):
                raise TypeError(f"{cell.experiment}: ANCHORS[{name!r}] must be a list of dnax.sweep.Anchor")
            anchors[cell.task] = entries
    return anchors


# ---------------------------------------------------------------------------------------------- summary

def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(rows: list[dict]) -> list[dict]:
    """One entry per (task, lr): n, metric, val/test mean and std, and `best` (highest validation mean per task)."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["lr"]), []).append(row)
    out = []
    for (task, lr), members in sorted(groups.items()):
        done = [r for r in members if r["status"] in ("ok", "cached")]
        val, val_sd = _mean_std([float(r["val"]) for r in done])
        test, test_sd = _mean_std([float(r["test"]) for r in done])
        out.append({"task": task, "lr": lr, "n": len(done), "failed": sum(r["status"] == "failed" for r in members),
                    "metric": next((r["metric"] for r in done if r["metric"]), ""),
                    "val": val, "val_std": val_sd, "test": test, "test_std": test_sd, "best": False})
    for task in {s["task"] for s in out}:
        candidates = [s for s in out if s["task"] == task and not math.isnan(s["val"])]
        if candidates:
            max(candidates, key=lambda s: s["val"])["best"] = True
    return out


def _fmt(mean: float, std: float) -> str:
    return "n/a" if math.isnan(mean) else f"{mean:.4f} ± {std:.4f}"


def comparable(anchors: Sequence[Anchor], metric: str) -> tuple[list[Anchor], list[Anchor]]:
    """(anchors reporting `metric`, the others)."""
    return [a for a in anchors if a.metric == metric], [a for a in anchors if a.metric != metric]


def results_markdown(rows: list[dict], anchors: dict[str, list[Anchor]] | None = None) -> str:
    anchors = anchors or {}
    summary = summarize(rows)
    skipped: list[str] = []
    lines = ["# Sweep results", "",
             "Headline metric per task; mean ± sample std over seeds. The best learning rate per task is chosen on "
             "the validation mean; its test mean is the task's result.", "",
             "| task | metric | best lr | test (best lr) | val (best lr) | seeds | reference |",
             "|---|---|---|---|---|---|---|"]
    for s in (s for s in summary if s["best"]):
        shown, other = comparable(anchors.get(s["task"], []), s["metric"])
        ref = "; ".join(f"{a.value:.4f} ({a.label})" for a in shown)
        skipped += [f"- {s['task']}: {a.label} reports {a.metric}, the runs {s['metric'] or 'no metric'}"
                    for a in other]
        lines.append(f"| {s['task']} | {s['metric']} | {s['lr']:g} | {_fmt(s['test'], s['test_std'])} | "
                     f"{_fmt(s['val'], s['val_std'])} | {s['n']} | {ref} |")
    lines += ["", "## Every learning rate", "", "| task | lr | val | test | seeds | failed |",
              "|---|---|---|---|---|---|"]
    for s in summary:
        mark = " **best**" if s["best"] else ""
        lines.append(f"| {s['task']} | {s['lr']:g}{mark} | {_fmt(s['val'], s['val_std'])} | "
                     f"{_fmt(s['test'], s['test_std'])} | {s['n']} | {s['failed']} |")
    if skipped:
        lines += ["", "## Reference numbers not shown (another metric)", ""] + skipped
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        lines += ["", "## Failed cells", ""] + [f"- {r['task']} lr {r['lr']:g} seed {r['seed']}: {r['error']}"
                                               for r in failed]
    return "\n".join(lines) + "\n"


def results_plot(rows: list[dict], anchors: dict[str, list[Anchor]] | None = None) -> bytes:
    """PNG: test mean ± std per task and learning rate, the best learning rate (on validation) filled; published
    numbers of the same metric as black markers (one marker shape per anchor position)."""
    summary = summarize(rows)
    tasks = sorted({s["task"] for s in summary})
    lrs = sorted({s["lr"] for s in summary})
    fig, ax = subplots(figsize=(max(5.0, 1.2 * len(tasks) + 2), 4.2), dpi=110)
    width = 0.8 / max(1, len(lrs))
    for j, lr in enumerate(lrs):
        for i, task in enumerate(tasks):
            s = next((s for s in summary if s["task"] == task and s["lr"] == lr), None)
            if s is None or math.isnan(s["test"]):
                continue
            x = i - 0.4 + width * (j + 0.5)
            ax.errorbar(x, s["test"], yerr=s["test_std"], fmt="o", color=f"C{j}",
                        mfc=f"C{j}" if s["best"] else "white", capsize=2, label=f"lr {lr:g}" if i == 0 else None)
    labelled: set[int] = set()
    for i, task in enumerate(tasks):
        metric = next((s["metric"] for s in summary if s["task"] == task and s["metric"]), "")
        for k, a in enumerate(comparable((anchors or {}).get(task, []), metric)[0]):
            ax.plot(i + 0.45, a.value, marker="<>^vsD"[k % 6], color="k", ls="none", ms=5,
                    label=a.label if k not in labelled else None)
            labelled.add(k)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("test headline metric (filled: best lr on validation)")
    ax.grid(alpha=0.3)
    if lrs or labelled:
        ax.legend(fontsize=6)
    return png_bytes(fig)


def write_summary(rows: list[dict], folder: Path, anchors: dict[str, list[Anchor]] | None = None) -> None:
    buf = io.StringIO()
    fields = ["task", "experiment", "lr", "seed", "status", "metric", "best_epoch", "val", "test", "error", "run_dir"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(folder / "results.csv", buf.getvalue())
    atomic_write_text(folder / "results.md", results_markdown(rows, anchors))
    atomic_write_bytes(folder / "results.png", results_plot(rows, anchors))


# ---------------------------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None, cell_fn: CellFn | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dnax.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("pattern", help="glob over registered experiment import paths")
    parser.add_argument("tokens", nargs="*", help="fiddlers / overrides applied to every cell (e.g. sample)")
    parser.add_argument("--seeds", help="e.g. 0-4 or 1,3,5 (default: the module's SWEEP['seeds'])")
    parser.add_argument("--lrs", help="e.g. 1e-3,6e-4 (default: the module's SWEEP['lrs'])")
    parser.add_argument("--pool", type=int, default=1, help="cells run at once (default 1, at least 1)")
    parser.add_argument("--name", help="sweep name: runs/NAME/ (default: from the pattern)")
    args = parser.parse_intermixed_args(argv)
    try:
        if args.pool < 1:
            raise ValueError(f"--pool {args.pool}: expected at least 1 (cells run at once)")
        experiments = matching_experiments(args.pattern)
        if not experiments:
            raise ValueError(f"no registered experiment matches {args.pattern!r} (see python -m dnax.run --list)")
        cells = []
        for exp in experiments:
            defaults = module_attr(exp, "SWEEP") or {}
            seeds = parse_ints(args.seeds) if args.seeds else list(defaults.get("seeds", ()))
            lrs = parse_floats(args.lrs) if args.lrs else list(defaults.get("lrs", ()))
            if not seeds or not lrs:
                raise ValueError(f"{exp}: give --seeds and --lrs (its module defines no SWEEP defaults)")
            cells += [Cell(exp, s, lr) for lr in lrs for s in seeds]
        check_tokens(experiments, args.tokens)
    except ValueError as e:
        print(f"dnax.sweep: error: {e}", file=sys.stderr)
        return 2
    name = args.name or "sweep-" + args.pattern.removeprefix("experiments.").replace("*", "all").replace("/", "_")
    if cell_fn is None:
        def cell_fn(cell, run_dir, tokens):  # noqa: E306
            run_cell_subprocess(cell, run_dir, tokens, sweep=name)
    print(f"dnax.sweep: {len(cells)} cells -> runs/{name}", flush=True)
    try:
        rows = run_sweep(cells, sweep=name, cell_fn=cell_fn, tokens=args.tokens, pool=args.pool)
    except SweepError as e:
        print(f"dnax.sweep: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dnax.sweep: interrupted; summary of the finished cells: runs/{name}/results.md; run the same command "
              "to resume", file=sys.stderr, flush=True)
        return 130
    failed = sum(r["status"] == "failed" for r in rows)
    print(f"dnax.sweep: {len(rows) - failed} cells with results, {failed} failed; summary: runs/{name}/results.md",
          flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    # `python -m dnax.sweep` runs this file as `__main__`, a second copy of the module; the experiment modules'
    # ANCHORS hold `dnax.sweep.Anchor`s, so run the `dnax.sweep` module's main, whose Anchor is theirs
    from dnax.sweep import main as _main

    sys.exit(_main())
