"""Every registered experiment builds, round-trips through JSON and trains 2 batches with the `tiny` fiddler."""
import csv
import json

import fiddle as fdl
import pytest
import torch
from fiddle.experimental import serialization

from dnax import run as cli

EXPERIMENTS = sorted(path for path, _ in cli.list_experiments())


def test_index_is_not_empty():
    assert len(EXPERIMENTS) >= 7


@pytest.mark.parametrize("path", EXPERIMENTS)
def test_experiment_roundtrips_json_and_trains_two_batches(path, in_tmp):
    fn, module = cli.resolve_experiment(path)
    cfg = fn()
    restored = serialization.load_json(serialization.dump_json(cfg))
    assert sorted(cli.flatten(restored)) == sorted(cli.flatten(cfg))
    cli.mutate(cfg, ["tiny"], module)
    cfg.trainer.run_name = "t"
    trainer = cli.run(cfg)
    assert int(trainer.state.timestamp.batch) == 2
    run_dir = in_tmp / "runs" / "t"
    assert (run_dir / "config.json").is_file()
    assert (run_dir / "loss_curve.png").stat().st_size > 1000
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    losses = [float(r["value"]) for r in rows if r["name"] == "loss/train/total"]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    # language models log LanguageCrossEntropy, classifiers (fine-tuning experiments) CrossEntropy
    assert any(r["name"] in ("metrics/eval/LanguageCrossEntropy", "metrics/eval/CrossEntropy") for r in rows)
    assert list((run_dir / "checkpoints").glob("*.pt"))


def test_programmatic_use_and_config_replay_resumes_the_same_run(in_tmp):
    from experiments import hg38_xlstm

    cfg = hg38_xlstm.hg38_xlstm()
    cfg.model.backbone.n_layer = 2
    cli.mutate(cfg, ["tiny"])
    cfg.trainer.run_name = "resume"
    trainer = cli.run(cfg)
    assert int(trainer.state.timestamp.batch) == 2
    saved = json.loads((in_tmp / "runs/resume/config.json").read_text())
    assert saved  # replayable JSON
    # replay the saved config with a longer duration: autoresume continues from batch 2 to 4
    assert cli.main(["--config-file", "runs/resume/config.json", "trainer.max_duration='4ba'"]) == 0
    rows = list(csv.DictReader(open(in_tmp / "runs/resume/metrics.csv")))
    steps = [int(r["step"]) for r in rows if r["name"] == "loss/train/total"]
    assert steps == [0, 1, 2, 3]  # Composer logs the train loss at the 0-based batch index


def test_cpu_bf16_autocast_trains(in_tmp):
    from experiments import hg38_xlstm

    cfg = hg38_xlstm.hg38_xlstm()
    cli.mutate(cfg, ["tiny", "cpu_bf16", "trainer.run_name='bf16'"])
    assert cfg.model.autocast_dtype == "bfloat16" and cfg.trainer.precision == "fp32"
    trainer = cli.run(cfg)
    assert int(trainer.state.timestamp.batch) == 2
    rows = list(csv.DictReader(open(in_tmp / "runs/bf16/metrics.csv")))
    assert all(torch.isfinite(torch.tensor(float(r["value"]))) for r in rows if r["name"] == "loss/train/total")
