"""dnax.run: resolution by import path, fiddlers and overrides in order, one-line errors, config replay."""
import json

import fiddle as fdl
import pytest

import experiments
from dnax import run as cli
from experiments import hg38_xlstm


def test_experiments_package_is_ours():
    # PyPI has an unrelated `experiments` package: make sure the repository's is the one imported.
    assert experiments.__file__.endswith("experiments/__init__.py")
    assert hg38_xlstm.__file__.startswith(experiments.__file__.rsplit("/", 1)[0])


def test_resolve_module_and_function():
    fn, module = cli.resolve_experiment("experiments.hg38_xlstm")
    assert fn is hg38_xlstm.hg38_xlstm and module is hg38_xlstm
    fn, _ = cli.resolve_experiment("experiments.hg38_xlstm.hg38_xlstm_clm")
    assert fn is hg38_xlstm.hg38_xlstm_clm


@pytest.mark.parametrize("path, hint", [
    ("experiments.hg38_xlstn", "experiments.hg38_xlstm"),
    ("experiments.hg38_xlstm.hg38_xlstm_cml", "hg38_xlstm_clm"),
])
def test_unknown_experiment_suggests_close_matches(path, hint, capsys):
    assert cli.main([path, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and hint in err and "did you mean" in err


def test_overrides_and_fiddlers_apply_in_order():
    cfg = hg38_xlstm.hg38_xlstm()
    cli.mutate(cfg, ["model.backbone.n_layer=8", "steps(100)", "trainer.max_duration='7ba'",
                     "trainer.algorithms[0].clipping_threshold=0.5", "seq_len(2048)"])
    assert cfg.model.backbone.n_layer == 8
    assert cfg.trainer.max_duration == "7ba"          # the later override wins over the earlier fiddler
    assert cfg.trainer.eval_interval == "25ba"
    assert cfg.trainer.algorithms[0].clipping_threshold == 0.5
    built_len = fdl.build(cfg.model.backbone.max_length) if isinstance(cfg.model.backbone.max_length, fdl.Buildable) \
        else cfg.model.backbone.max_length
    assert built_len == 2048 or getattr(built_len, "value", None) == 2048


def test_help_lists_the_fiddlers_with_their_arguments_and_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    lines = out[out.index("fiddlers (an experiment's module may add more):"):].splitlines()
    assert any(line.split() == ["seq_len(n:", "int)", "Context", "length", "of", "the", "data", "windows", "and",
                                "the", "model"] for line in lines)
    assert any(line.strip().startswith(("tiny()", "sample()", "nan_guard(action: str = 'stop')")) for line in lines)
    assert not any("with_overrides" in line or "use_sample_data" in line for line in lines)  # not callable as such
    assert "python -m dnax.run experiments.hg38_xlstm sample" in out


def test_a_dict_in_the_config_takes_overrides_of_its_keys(capsys):
    from experiments import hg38_mamba

    cfg = hg38_mamba.hg38_mamba()
    cli.mutate(cfg, ["model.backbone.ssm_cfg.d_state=128"])
    assert cfg.model.backbone.ssm_cfg["d_state"] == 128 and cfg.model.backbone.ssm_cfg["d_conv"] == 4
    assert cli.main(["experiments.hg38_mamba", "model.backbone.ssm_cfg.d_stat=128", "--dry-run"]) == 2
    assert capsys.readouterr().err.strip() == (
        "dnax.run: error: cannot set 'model.backbone.ssm_cfg.d_stat': model.backbone.ssm_cfg has no key 'd_stat'; "
        "did you mean 'd_state'? (to replace the whole dict: model.backbone.ssm_cfg={...})")


@pytest.mark.parametrize("token, fragment", [
    ("model.backbone.n_layr=8", "n_layer"),
    ("model.backbon.n_layer=8", "backbone"),
    ("trainer.algorithms[7].x=1", "algorithms[7]"),
    ("smaple", "sample"),
    ("seq_len(", "cannot parse"),
])
def test_bad_mutations_are_one_line_errors(token, fragment, capsys):
    assert cli.main(["experiments.hg38_xlstm", token, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err


def test_dry_run_prints_flattened_config(capsys):
    assert cli.main(["experiments.hg38_xlstm", "sample", "model.backbone.n_layer=3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "model.backbone.n_layer = 3" in out
    assert "trainer.device = 'cpu'" in out


def test_list_shows_registered_experiments(capsys):
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ["hg38_xlstm ", "hg38_xlstm_clm", "hg38_xlstm_32k", "hg38_xlstm_native_bidirectional",
                 "hg38_xlstm_alternating", "hg38_xlstm_slstm", "hg38_xlstm_slstm_rcps"]:
        assert f"experiments.hg38_xlstm.{name}" in out or f"experiments.hg38_xlstm.{name.strip()}" in out


def test_missing_config_file_is_one_line_error(tmp_path, capsys):
    assert cli.main(["--config-file", str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_paper_run_without_data_stops_with_preparation_hint(in_tmp, monkeypatch, capsys):
    monkeypatch.setenv("DNAX_HG38_MDS", str(in_tmp / "missing_mds_{seq_len}"))
    assert cli.main(["experiments.hg38_xlstm", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "missing_mds_1024" in err[0] and "data_tools.hg38 download" in err[0]


def test_unreachable_object_store_is_one_line_error(in_tmp, monkeypatch, capsys):
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("DNAX_HG38_MDS", "s3://no-bucket/hg38/mds_{seq_len}")
    assert cli.main(["experiments.hg38_xlstm", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "s3://no-bucket/hg38/mds_1024" in err[0] and "127.0.0.1:9" in err[0], err


@pytest.mark.parametrize("experiment, field, value", [
    ("experiments.hg38_caduceus.hg38_caduceus_ps", "ssm_cfg", "triton"),
    ("experiments.hg38_mamba.hg38_mamba", "ssm_cfg", "triton"),
    ("experiments.hg38_xlstm.hg38_xlstm_slstm", "s_backend", "triton"),
])
def test_triton_kernels_fiddler_switches_the_recurrence_backend(experiment, field, value):
    from dnax import fiddlers

    fn, _ = cli.resolve_experiment(experiment)
    cfg = fn()
    before = dict(cfg.model.backbone.ssm_cfg) if field == "ssm_cfg" else None
    fiddlers.triton_kernels(cfg)
    if field == "ssm_cfg":  # the reference's mixer settings are kept
        assert cfg.model.backbone.ssm_cfg == {**before, "scan_backend": value}
    else:
        assert cfg.model.backbone.s_backend == value
    backbone = fdl.build(cfg.model.backbone)
    backends = {m.scan_backend for m in backbone.modules() if hasattr(m, "scan_backend")}
    backends |= {m.backend for m in backbone.modules() if type(m).__name__ == "SLSTMCell"}
    assert backends == {value}


@pytest.mark.parametrize("experiment, message", [("experiments.hg38_transformer_pp", "has no Triton kernel"),
                                                 ("experiments.hg38_mamba.hg38_mamba2", "Mamba2 mixer has no")])
def test_triton_kernels_fiddler_refuses_backbones_without_kernels(experiment, message, capsys):
    assert cli.main([experiment, "triton_kernels", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
