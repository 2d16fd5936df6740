"""Published reference numbers (`ANCHORS`) beside the sweep tables: shown only beside runs of the same metric."""
import json

import pytest

from dnax import sweep
from dnax.data.downstream import GENOMIC_BENCHMARKS, NUCLEOTIDE_TRANSFORMER
from dnax.models.classification_metrics import HEADLINE
from experiments import genomic_benchmarks, nucleotide_transformer


def _rows(task: str, metric: str) -> list[dict]:
    return [{"task": task, "experiment": f"experiments.x.{task}", "lr": 1e-3, "seed": s, "status": "ok", "error": "",
             "metric": metric, "best_epoch": 1, "val": 0.8 + 0.01 * s, "test": 0.7 + 0.01 * s, "run_dir": ""}
            for s in (1, 2)]


def test_anchors_of_the_runs_metric_are_shown_the_others_listed():
    anchors = {"t": [sweep.Anchor("Model-A (Paper, Tab. 1)", 0.75, "Accuracy"),
                     sweep.Anchor("Model-B (Paper, Tab. 1)", 0.8125, "Accuracy"),
                     sweep.Anchor("Model-C (Paper, Tab. 2)", 0.5, "MCC")]}
    md = sweep.results_markdown(_rows("t", "Accuracy"), anchors)
    row = next(line for line in md.splitlines() if line.startswith("| t |"))
    assert row.endswith("| 0.7500 (Model-A (Paper, Tab. 1)); 0.8125 (Model-B (Paper, Tab. 1)) |")
    assert "- t: Model-C (Paper, Tab. 2) reports MCC, the runs Accuracy" in md
    md = sweep.results_markdown(_rows("t", "MCC"), anchors)
    row = next(line for line in md.splitlines() if line.startswith("| t |"))
    assert row.endswith("| 0.5000 (Model-C (Paper, Tab. 2)) |") and "Model-A" in md.split("not shown")[1]


def test_plot_draws_same_metric_anchors():
    rows = _rows("t", "Accuracy")
    plain = sweep.results_plot(rows)
    assert sweep.results_plot(rows, {"t": [sweep.Anchor("X", 0.5, "MCC")]}) == plain  # other metric: not drawn
    assert sweep.results_plot(rows, {"t": [sweep.Anchor("X", 0.5, "Accuracy")]}) != plain


def test_sweep_reads_the_modules_anchors(tmp_path):
    def cell_fn(cell, run_dir, tokens):
        run_dir.mkdir(parents=True)
        (run_dir / "results.json").write_text(json.dumps(
            {"metric": "Accuracy", "val": {"Accuracy": 0.9}, "test": {"Accuracy": 0.93}}))

    cells = [sweep.Cell("experiments.genomic_benchmarks.human_nontata_promoters", 1, 1e-3)]
    sweep.run_sweep(cells, sweep="s", cell_fn=cell_fn, runs_root=tmp_path)
    md = (tmp_path / "s/results.md").read_text()
    assert "0.9460 (Caduceus-Ph (Schiff et al. 2024, Tab. 1)); 0.9450 (Caduceus-PS (Schiff et al. 2024, Tab. 1))" in md


@pytest.mark.parametrize("module, specs, n", [(genomic_benchmarks, GENOMIC_BENCHMARKS, 3),
                                              (nucleotide_transformer, NUCLEOTIDE_TRANSFORMER, 2)])
def test_every_task_has_anchors_in_its_headline_metric(module, specs, n):
    """Each task's published numbers use the metric its runs report, so the sweep table shows them."""
    assert set(module.ANCHORS) == set(specs)
    for task, anchors in module.ANCHORS.items():
        assert len(anchors) == n and len({a.label for a in anchors}) == n
        assert all(a.metric == HEADLINE[specs[task].metric] and 0 < a.value < 1 for a in anchors), task
