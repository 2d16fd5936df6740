"""The sweep runner with an injected cheap cell function: resumability, failure recording, summary files."""
import csv
import json
import statistics

import pytest

from dnax import sweep


def fake_cell(calls, fail=()):
    """Writes a results.json whose metric depends on (lr, seed) deterministically; fails for cells in `fail`."""

    def run(cell, run_dir, tokens):
        calls.append((cell, tuple(tokens)))
        if (cell.lr, cell.seed) in fail:
            raise RuntimeError("exit status 1: boom\nsecond line")
        val = 0.5 + cell.lr * 100 + 0.01 * cell.seed
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "results.json").write_text(json.dumps({
            "task": cell.task, "seed": cell.seed, "lr": cell.lr, "metric": "MCC", "best_epoch": 1,
            "val": {"MCC": val}, "test": {"MCC": val - 0.05}}))
    return run


def cells():
    return [sweep.Cell("experiments.gb.taskA", s, lr) for lr in (1e-3, 2e-3) for s in (0, 1, 2)]


def test_sweep_summarizes_and_picks_the_best_lr_on_validation(tmp_path):
    calls = []
    rows = sweep.run_sweep(cells(), sweep="s", cell_fn=fake_cell(calls), tokens=["sample"], pool=2, runs_root=tmp_path)
    assert len(calls) == 6 and all(tokens == ("sample",) for _, tokens in calls)
    assert all(r["status"] == "ok" for r in rows)
    out = tmp_path / "s"
    table = list(csv.DictReader(open(out / "results.csv")))
    assert len(table) == 6 and {r["lr"] for r in table} == {"0.001", "0.002"}
    md = (out / "results.md").read_text()
    expected = [0.5 + 0.2 + 0.01 * s - 0.05 for s in (0, 1, 2)]
    assert f"| gb.taskA | MCC | 0.002 | {statistics.fmean(expected):.4f} ± {statistics.stdev(expected):.4f} |" in md
    assert (out / "results.png").stat().st_size > 1000


def test_sweep_resumes_and_records_failures_without_stopping(tmp_path):
    calls = []
    rows = sweep.run_sweep(cells(), sweep="s", cell_fn=fake_cell(calls, fail={(2e-3, 1)}), runs_root=tmp_path)
    assert len(calls) == 6  # the failure did not stop the other cells
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error"] == "RuntimeError: exit status 1: boom"
    assert (tmp_path / "s/gb.taskA/lr0.002/seed1/error.txt").read_text().startswith("RuntimeError")
    md = (tmp_path / "s" / "results.md").read_text()
    assert "## Failed cells" in md and "seed 1: RuntimeError: exit status 1: boom" in md
    # rerun: finished cells are skipped, the failed one is retried and now succeeds
    calls.clear()
    rows = sweep.run_sweep(cells(), sweep="s", cell_fn=fake_cell(calls), runs_root=tmp_path)
    assert [(c.lr, c.seed) for c, _ in calls] == [(2e-3, 1)]
    assert sorted(r["status"] for r in rows) == ["cached"] * 5 + ["ok"]
    assert not (tmp_path / "s/gb.taskA/lr0.002/seed1/error.txt").exists()


def test_parse_arguments():
    assert sweep.parse_ints("0-4") == [0, 1, 2, 3, 4]
    assert sweep.parse_ints("1,3,7-8") == [1, 3, 7, 8]
    assert sweep.parse_floats("1e-3,6e-4") == [1e-3, 6e-4]
    with pytest.raises(ValueError, match="seeds"):
        sweep.parse_ints("a-b")


def test_cli_expands_the_glob_with_module_defaults(in_tmp):
    calls = []
    code = sweep.main(["experiments.genomic_benchmarks.human_*", "--lrs", "1e-3", "--name", "t", "tiny"],
                      cell_fn=fake_cell(calls))
    assert code == 0
    experiments = sorted({c.experiment for c, _ in calls})
    assert experiments == [f"experiments.genomic_benchmarks.{t}" for t in (
        "human_enhancers_cohn", "human_enhancers_ensembl", "human_ensembl_regulatory", "human_nontata_promoters",
        "human_ocr_ensembl")]
    assert sorted({c.seed for c, _ in calls}) == [1, 2, 3, 4, 5]  # SWEEP["seeds"] of the module
    assert (in_tmp / "runs/t/results.md").is_file()
    assert sweep.main(["experiments.nope.*", "--seeds", "0", "--lrs", "1e-3"]) == 2


def test_a_module_path_names_its_default_experiment():
    assert sweep.matching_experiments("experiments.gue") == ["experiments.gue.gue"]


def _fake_python(tmp_path, body: str):
    """An executable standing in for `python -m dnax.run ...` in `run_cell_subprocess`."""
    exe = tmp_path / "fake_python"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(0o755)
    return str(exe)


def test_a_cell_stopped_by_sigint_is_interrupted_not_failed(tmp_path, monkeypatch):
    cell = sweep.Cell("experiments.gb.taskA", 1, 1e-3)
    monkeypatch.setattr(sweep.sys, "executable", _fake_python(tmp_path, "exit 130"))
    with pytest.raises(sweep.CellInterrupted):
        sweep.run_cell_subprocess(cell, tmp_path / "a", [])
    bar = r"train  50%|#####     | 1/2 [00:01<00:01,  1.47s/ba]"
    monkeypatch.setattr(sweep.sys, "executable", _fake_python(
        tmp_path, f"echo 'dnax.run: error: unknown fiddler x'; printf '%s\\n' '{bar}'; exit 2"))
    with pytest.raises(RuntimeError, match=r"^exit status 2: dnax.run: error: unknown fiddler x$"):
        sweep.run_cell_subprocess(cell, tmp_path / "b", [])


def test_an_interrupted_sweep_stops_summarizes_and_resumes(tmp_path):
    import os
    import signal

    calls = []
    done = fake_cell(calls)

    def interrupted_at_the_second(cell, run_dir, tokens):
        if len(calls) == 1:  # the second cell: Ctrl-C reaches the sweep and this cell's process
            calls.append((cell, tuple(tokens)))
            os.kill(os.getpid(), signal.SIGINT)
            raise sweep.CellInterrupted("exit status 130")
        done(cell, run_dir, tokens)

    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(cells(), sweep="s", cell_fn=interrupted_at_the_second, runs_root=tmp_path)
    assert len(calls) == 2  # no cell started after the interrupt
    table = list(csv.DictReader(open(tmp_path / "s/results.csv")))
    assert [r["status"] for r in table] == ["ok", "interrupted"] + ["not run"] * 4
    assert not list(tmp_path.rglob("error.txt"))  # an interruption is not a failure
    calls.clear()
    rows = sweep.run_sweep(cells(), sweep="s", cell_fn=fake_cell(calls), runs_root=tmp_path)
    assert len(calls) == 5 and [r["status"] for r in rows] == ["cached"] + ["ok"] * 5


def test_resuming_with_other_fiddlers_is_refused(tmp_path, in_tmp):
    calls = []
    sweep.run_sweep(cells(), sweep="s", cell_fn=fake_cell(calls), tokens=["tiny"], runs_root=tmp_path / "runs")
    with pytest.raises(sweep.SweepError, match=r"runs/s holds a sweep run with \['tiny'\].*not \[\]"):
        sweep.run_sweep(cells(), sweep="s", cell_fn=fake_cell(calls), tokens=[], runs_root=tmp_path / "runs")
    assert len(calls) == 6  # the tiny results were not taken as the others'
    args = ["experiments.genomic_benchmarks.human_nontata_promoters", "--seeds", "0", "--lrs", "1e-3", "--name", "s"]
    assert sweep.main(args, cell_fn=fake_cell(calls)) == 2 and len(calls) == 6
    assert sweep.main(args + ["tiny"], cell_fn=fake_cell(calls)) == 0


@pytest.mark.parametrize("extra", [["bogus_fiddler"], ["model.backbone.no_such_field=3"], ["--pool", "0"]])
def test_bad_fiddlers_stop_the_sweep_before_any_cell(in_tmp, extra):
    calls = []
    args = ["experiments.genomic_benchmarks.human_*", "--seeds", "1", "--lrs", "1e-3", *extra]
    assert sweep.main(args, cell_fn=fake_cell(calls)) == 2
    assert calls == [] and not (in_tmp / "runs").exists()


def test_python_m_dnax_sweep_shows_the_modules_anchors(in_tmp):
    """As a script (`python -m`), dnax.sweep is `__main__`; the experiments' ANCHORS are `dnax.sweep.Anchor`s."""
    import subprocess
    import sys
    from pathlib import Path

    run_dir = in_tmp / "runs/s/genomic_benchmarks.human_nontata_promoters/lr0.001/seed1"
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps(
        {"metric": "Accuracy", "val": {"Accuracy": 0.9}, "test": {"Accuracy": 0.93}}))
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(sweep.__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-m", "dnax.sweep", "experiments.genomic_benchmarks.human_nontata_promoters",
                           "--seeds", "1", "--lrs", "1e-3", "--name", "s"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "0.9460 (Caduceus-Ph (Schiff et al. 2024, Tab. 1))" in (in_tmp / "runs/s/results.md").read_text()
