"""The benchmarks' command lines: bad arguments are one argparse line (exit 2) before anything runs or is written,
`--device cuda` without a GPU likewise, failed configurations neither hide nor replace earlier measurements, and
results name the machine. The runs here are tiny (or their measurement is stubbed), so each test takes seconds."""
import json

import pytest

from benchmarks import (activation_memory, context_scaling, data_step, loader_throughput, machine,
                        selective_scan_cpu, selective_scan_splits, train_step)
from benchmarks import run as bench_run


def bad_args(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("main, argv, message", [
    (train_step.main, ["--mode", "nosuch"], "argument --mode: invalid choice: 'nosuch'"),
    (train_step.main, ["--mode", "causal", "--length", "-5"], "argument --length: must be >= 1, got -5"),
    (train_step.main, ["--mode", "causal", "--length", "0"], "argument --length: must be >= 1, got 0"),
    (train_step.main, ["--mode", "causal", "--batch", "0"], "argument --batch: must be >= 1, got 0"),
    (train_step.main, ["--mode", "causal", "--steps", "0"], "argument --steps: must be >= 1, got 0"),
    (train_step.main, ["--mode", "causal", "--warmup", "-1"], "argument --warmup: must be >= 0, got -1"),
    (train_step.main, ["--mode", "causal", "--length", "1k"], "argument --length: not an integer: '1k'"),
    (data_step.main, ["--batch", "0"], "argument --batch: must be >= 1, got 0"),
    (data_step.main, ["--reps", "0"], "argument --reps: must be >= 1, got 0"),
    (activation_memory.main, ["--target", "4by32768"], "argument --target: expected BATCHxLENGTH such as 4x32768"),
    (activation_memory.main, ["--target", "0x1024"], "argument --target: batch and length must be >= 1"),
    (activation_memory.main, ["--length", "-5"], "argument --length: must be >= 1, got -5"),
    (activation_memory.main, ["--m-backend", "nosuch"], "argument --m-backend: invalid choice: 'nosuch'"),
    (context_scaling.main, ["--lengths", "128", "-5"], "argument --lengths: must be >= 1, got -5"),
    (context_scaling.main, ["--tokens", "0"], "argument --tokens: must be >= 1, got 0"),
    (selective_scan_cpu.main, ["--length", "-5"], "argument --length: must be >= 1, got -5"),
    (selective_scan_cpu.main, ["--reps", "0"], "argument --reps: must be >= 1, got 0"),
    (selective_scan_cpu.main, ["--chunk-size", "0"], "argument --chunk-size: must be >= 1, got 0"),
    (selective_scan_splits.main, ["--shape", "2x256x32768x16"], "expected BATCHxD_INNERxLENGTHxD_STATExGROUPS"),
    (selective_scan_splits.main, ["--shape", "2x255x64x16x2"], "D_INNER a multiple of GROUPS"),
    (selective_scan_splits.main, ["--splits", "0"], "argument --splits: must be >= 1, got 0"),
    (loader_throughput.main, ["--length", "60000"], "--length 60000 bp holds fewer than --batch 64 windows of 1024"),
    (loader_throughput.main, ["--seconds", "0"], "--seconds must be > 0, got 0.0"),
])
def test_bad_arguments_are_one_line_exit_2_and_write_nothing(main, argv, message, capsys, tmp_path):
    out = ["--out", str(tmp_path / "r.json")] if main in (selective_scan_cpu.main, loader_throughput.main,
                                                          selective_scan_splits.main) else \
        ["--out-dir", str(tmp_path)]
    line = bad_args(main, argv + out, capsys)
    assert "error: " in line and message in line, line
    assert not list(tmp_path.iterdir())


def test_scan_splits_benchmark_compares_split_counts_against_one(tmp_path):
    """In Triton's interpreter (tests run there without a GPU), at a tiny shape: a row per setting, the split count
    it used, and results equal to the 1-split scan up to fp32 rounding."""
    out = tmp_path / "splits.json"
    result = selective_scan_splits.main(["--device", "cpu", "--shape", "1x8x300x4x1", "--splits", "3", "--splits",
                                         "4", "--reps", "1", "--out", str(out)])
    # 4 wanted: 5 chunks of 64 make splits of 2 chunks, so 3 are used
    assert [(r["setting"], r["splits_wanted"], r["splits"]) for r in result["rows"]] == [
        ("1", 1, 1), ("auto", 1, 1), ("3", 3, 3), ("4", 4, 3)]
    assert all(r["max_abs_diff_vs_1"] < 1e-4 for r in result["rows"]) and result["rows"][2]["programs"] == 3
    assert json.loads(out.read_text())["rows"] == result["rows"]
    assert "| 1x8x300x4x1 | 3 | 3 |" in out.with_suffix(".md").read_text()


def test_loader_names_a_missing_fasta(capsys, tmp_path):
    line = bad_args(loader_throughput.main, ["--fasta", str(tmp_path / "none.fa.gz"), "--out",
                                             str(tmp_path / "r.json")], capsys)
    assert f"--fasta: no file {tmp_path / 'none.fa.gz'}" in line


def test_replot_without_results_is_one_line(capsys, tmp_path):
    line = bad_args(context_scaling.main, ["--replot", "--out-dir", str(tmp_path)], capsys)
    assert f"--replot: no results to redraw at {tmp_path / 'context_scaling_cpu.json'}" in line


@pytest.mark.parametrize("main", [train_step.main, data_step.main, context_scaling.main])
def test_cuda_without_a_gpu_stops_before_anything_runs(main, monkeypatch, capsys, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(train_step, "run_config", lambda *a, **k: pytest.fail("a configuration ran"))
    monkeypatch.setattr(context_scaling, "run_config", lambda *a, **k: pytest.fail("a configuration ran"))
    monkeypatch.setattr(data_step, "measure", lambda *a, **k: pytest.fail("measured"))
    line = bad_args(main, ["--device", "cuda", "--out-dir", str(tmp_path)], capsys)
    assert "--device cuda: no CUDA GPU is visible" in line
    assert not list(tmp_path.iterdir())


def row(mode="causal", batch=1, **kw):
    return dict(dict(mode=mode, implementation="dnax", device="cpu", dtype="fp32", batch=batch, length=128, steps=1,
                     step_s_median=0.1, tokens_per_s=1280, peak_mem_gib=0.4, load_avg_1min=1.0, params=10), **kw)


def failed(mode="causal", batch=1):
    return dict(row(mode, batch), steps=0, step_s_median=float("nan"), tokens_per_s=0, peak_mem_gib=float("nan"),
                error="IndexError: list index out of range")


def test_a_failed_configuration_keeps_the_earlier_measurement_and_shows_its_error(tmp_path):
    train_step.write_results([row()], {"cpu": "x", "torch": "t", "date": "d"}, "ts", tmp_path)
    md = train_step.write_results([failed()], {"cpu": "x", "torch": "t", "date": "d"}, "ts", tmp_path).read_text()
    rows = json.loads((tmp_path / "ts.json").read_text())["results"]
    assert [r.get("error") for r in rows] == [None, "IndexError: list index out of range"]
    assert rows[0]["measured"] == "earlier run" and rows[0]["tokens_per_s"] == 1280
    assert "| 1,280 |" in md and "| error: IndexError: list index out of range |" in md
    # a new measurement does replace the earlier one of its configuration
    train_step.write_results([row(step_s_median=0.2)], {"cpu": "x", "torch": "t", "date": "d"}, "ts", tmp_path)
    rows = json.loads((tmp_path / "ts.json").read_text())["results"]
    assert [(r["step_s_median"], r.get("error")) for r in rows] == [(0.2, None)]


def test_train_step_exit_status_when_configurations_fail(monkeypatch, capsys, tmp_path):
    results = iter([failed()])
    monkeypatch.setattr(train_step, "run_config", lambda *a, **k: next(results))
    assert train_step.main(["--mode", "causal", "--no-reference", "--out-dir", str(tmp_path)]) == 1
    assert "no configuration ran, nothing written" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())

    results = iter([row(), failed("flip_add")])
    monkeypatch.setattr(train_step, "run_config", lambda *a, **k: next(results))
    assert train_step.main(["--mode", "causal", "--mode", "flip_add", "--no-reference", "--length", "128",
                            "--out-dir", str(tmp_path)]) == 1
    assert "1 of 2 configurations failed" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_step_cpu_128.json", "train_step_cpu_128.md"]


def test_context_scaling_writes_nothing_when_no_point_ran(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(context_scaling, "run_config", lambda *a, **k: failed())
    assert context_scaling.main(["--lengths", "128", "--tokens", "128", "--out-dir", str(tmp_path)]) == 1
    assert "no point ran, nothing written" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_bench_run_help_runs_nothing(monkeypatch, capsys):
    monkeypatch.setattr(train_step, "main", lambda *a: pytest.fail("a benchmark ran"))
    with pytest.raises(SystemExit) as exc:
        bench_run.main(["--help"])
    assert exc.value.code == 0 and "usage: python -m benchmarks.run" in capsys.readouterr().out


def test_activation_memory_labels_the_backend_only_where_applied_and_names_the_machine(monkeypatch, tmp_path):
    built = []
    monkeypatch.setattr(activation_memory, "saved_bytes",
                        lambda mode, backend, batch, length, dtype: built.append((mode, backend)) or 2**20)
    activation_memory.main(["--mode", "causal", "--mode", "xlstm_2m_clm", "--m-backend", "parallel", "--length", "128",
                            "--target", "2x256", "--out-dir", str(tmp_path)])
    assert built == [("causal", None), ("xlstm_2m_clm", "parallel")]
    rows = json.loads((tmp_path / "activation_memory.json").read_text())
    assert [(r["m_backend"], r["bytes_per_token"], r["target"], r["target_gib"]) for r in rows] == [
        (None, 8192, "2x256", round(8192 * 512 / 2**30, 2)), ("parallel", 8192, "2x256", round(8192 * 512 / 2**30, 2))]
    md = (tmp_path / "activation_memory.md").read_text()
    assert machine.cpu_model() in md and "| causal | - | 1x128 | 8,192 |" in md


def test_data_step_and_selective_scan_name_the_cpu(tmp_path):
    data_step.main(["--batch", "2", "--length", "32", "--reps", "1", "--out-dir", str(tmp_path)])
    assert machine.cpu_model() in (tmp_path / "data_step_cpu.md").read_text()
    assert json.loads((tmp_path / "data_step_cpu.json").read_text())["device"] == machine.cpu_model()
    selective_scan_cpu.main(["--batch", "1", "--d-inner", "4", "--d-state", "2", "--length", "16", "--reps", "1",
                             "--skip-ref", "--out", str(tmp_path / "scan")])
    assert machine.cpu_model() in (tmp_path / "scan.md").read_text()
