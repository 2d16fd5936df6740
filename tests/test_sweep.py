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
