"""Pretraining command line as a user types it: wrong fiddler arguments, wrong override types, a config that does
not build and a finished run started again each end in one line (or a note), never a traceback or a stray run dir."""
import os
from pathlib import Path

import pytest

from dnax import run as cli
from experiments import hg38_xlstm


@pytest.mark.parametrize("token, fragment", [
    ("seq_len(abc)", "cannot parse the arguments of fiddler 'seq_len(abc)'"),
    ("seq_len('abc')", "seq_len('abc'): expected a positive integer"),
    ("steps(0)", "steps(0): expected a positive integer"),
    ("steps(-3)", "steps(-3)"),
    ("global_batch(0)", "global_batch(0)"),
    ("tiny(3)", "fiddler 'tiny(3)': too many positional arguments; it is tiny()"),
    ("seq_len()", "missing a required argument: 'n'; it is seq_len(n: int)"),
    # overrides whose value does not fit the field's annotation
    ("model.backbone.d_model=abc", "'model.backbone.d_model' to 'abc': XLSTMLM's d_model is int"),
    ("model.backbone.d_model=[3", "'model.backbone.d_model' to '[3'"),
    ("model.backbone.d_model=3.5", "d_model is int"),
    ("model.backbone.m_proj_factor=fast", "m_proj_factor is float"),
    ("model.backbone.bidirectional=yes", "bidirectional is bool"),
])
def test_bad_fiddler_arguments_and_overrides_of_the_wrong_type_are_one_line_errors(token, fragment, capsys):
    assert cli.main(["experiments.hg38_xlstm", "tiny", token, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err


def test_steps_takes_an_integral_float():
    cfg = hg38_xlstm.hg38_xlstm()
    cli.mutate(cfg, ["steps(1e3)"])
    assert cfg.trainer.max_duration == "1000ba" and cfg.trainer.eval_interval == "250ba"


def test_overrides_of_fitting_types_are_accepted():
    cfg = hg38_xlstm.hg38_xlstm()
    cli.mutate(cfg, ["model.backbone.m_proj_factor=3", "model.backbone.d_model=64", "trainer.precision=fp32",
                     "trainer.max_duration=5ba", "model.backbone.bidirectional=False"])
    assert cfg.model.backbone.m_proj_factor == 3 and cfg.trainer.precision == "fp32"


def test_suggestions_are_not_repeated(capsys):
    assert cli.main(["experiments.hg38_xlstm", "model.backbone.d_modle=3", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("'d_model'") == 1, err


def test_config_that_does_not_build_leaves_no_run_dir(in_tmp, monkeypatch, capsys):
    monkeypatch.setenv("DNAX_HG38_MDS", str(in_tmp / "missing_mds_{seq_len}"))
    assert cli.main(["experiments.hg38_xlstm", "cpu", "trainer.run_name=broken"]) == 2
    assert "missing_mds_1024" in capsys.readouterr().err
    assert not (in_tmp / "runs" / "broken").exists()


@pytest.mark.parametrize("experiment, token, message", [
    ("hg38_xlstm", "model.backbone.s_lstm_at=[0,9]", "model.backbone (XLSTMLM): s_lstm_at [0, 9] outside 0..3"),
    ("hg38_xlstm", "model.backbone.n_layer=0", "model.backbone (XLSTMLM): XLSTMLM: n_layer must be >= 1, got 0"),
    ("hg38_xlstm", "model.objective.mlm_probability=1.5",
     "model.objective (MaskedLM): MaskedLM: mlm_probability must be in (0, 1], got 1.5"),
    ("hg38_transformer_pp", "model.backbone.n_kv_heads=3",
     "model.backbone (TransformerPPLM): Attention: n_heads 8 is not a multiple of n_kv_heads 3"),
    ("hg38_hyena", "model.backbone.n_layer=0", "model.backbone (HyenaLM): HyenaLM: n_layer must be >= 1, got 0"),
    ("hg38_mamba", "model.backbone.n_layer=0", "model.backbone (MambaLM): MambaLM: n_layer must be >= 1, got 0"),
    ("hg38_caduceus.hg38_caduceus_ph", "model.backbone.n_layer=0",
     "model.backbone (CaduceusLM): CaduceusLM: n_layer must be >= 1, got 0"),
])
def test_a_value_dnax_refuses_while_building_is_one_line_naming_the_config_path(in_tmp, capsys, experiment, token,
                                                                                  message):
    assert cli.main([f"experiments.{experiment}", "tiny", token, "trainer.run_name=refused"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"dnax.run: error: {message}"
    assert not (in_tmp / "runs" / "refused").exists()


def _refuses(n: int) -> int:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return n


def _has_a_bug(n: int) -> int:
    return int("not a number") + n


def test_only_a_raise_statement_of_ours_becomes_a_one_line_config_error(monkeypatch):
    """A builtin failing inside dnax code is a bug, not a refusal: it keeps its traceback."""
    import fiddle as fdl

    monkeypatch.setattr(cli, "_OWN_CODE", (str(Path(__file__).parent) + os.sep,))
    with pytest.raises(cli.ConfigBuildError, match=r"^config \(_refuses\): n must be >= 1, got 0$"):
        cli._build(fdl.Config(_refuses, 0))
    with pytest.raises(ValueError, match="invalid literal for int") as info:
        cli._build(fdl.Config(_has_a_bug, 1))
    assert not isinstance(info.value, cli.ConfigBuildError)


def test_starting_a_finished_run_again_is_a_note_not_a_traceback(in_tmp, capfd):
    cfg = hg38_xlstm.hg38_xlstm()
    cli.mutate(cfg, ["tiny", "model.backbone.n_layer=1", "trainer.run_name=done"])
    assert int(cli.run(cfg).state.timestamp.batch) == 2
    metrics = (in_tmp / "runs/done/metrics.csv").read_text()
    assert cli.main(["--config-file", "runs/done/config.json"]) == 0  # Composer's ValueError before the fix
    out = capfd.readouterr().out
    assert "run 'done' is already finished: its checkpoint is at 2ba of max_duration 2ba" in out
    assert (in_tmp / "runs/done/metrics.csv").read_text() == metrics
    # the same run name with a changed model: one line, and the run's config.json still describes its checkpoint
    config = (in_tmp / "runs/done/config.json").read_bytes()
    assert cli.main(["experiments.hg38_xlstm", "tiny", "model.backbone.n_layer=1", "model.backbone.d_model=64",
                     "steps(4)", "trainer.run_name=done"]) == 2
    err = capfd.readouterr().err.strip().splitlines()[-1].split("\r")[-1].strip()
    assert err.startswith("dnax.run: error: run 'done': the checkpoint it resumes from does not fit this model "
                          "(size mismatch for backbone."), err
    assert err.endswith("continue that run with its own config.json, or train this configuration under another "
                        "trainer.run_name")
    assert (in_tmp / "runs/done/config.json").read_bytes() == config


@pytest.mark.parametrize("token, message", [("trainer.max_duration=abc", "trainer: Invalid time string: abc"),
                                            ("trainer.precision=fp64", "trainer: Value fp64 not found in Precision")])
def test_a_trainer_argument_composer_rejects_is_one_line_and_leaves_no_run_dir(in_tmp, capfd, token, message):
    assert cli.main(["experiments.hg38_xlstm", "tiny", token, "trainer.run_name=bad"]) == 2
    assert capfd.readouterr().err.strip().splitlines()[-1].split("\r")[-1].strip() == f"dnax.run: error: {message}"
    assert not (in_tmp / "runs" / "bad").exists()


@pytest.mark.parametrize("world, batch, message", [(1, 0, "global batch 0: expected a positive integer"),
                                                   (2, 3, "global batch 3 is not divisible by the 2 processes")])
def test_a_global_batch_the_processes_cannot_share_is_one_line(in_tmp, capfd, monkeypatch, world, batch, message):
    monkeypatch.setenv("WORLD_SIZE", str(world))
    assert cli.main(["experiments.hg38_xlstm", "tiny", f"train_dataloader.batch_size.global_batch={batch}",
                     "trainer.run_name=b"]) == 2
    assert capfd.readouterr().err.strip().splitlines()[-1] == f"dnax.run: error: {message}"
    assert not (in_tmp / "runs" / "b").exists()


def test_a_default_run_name_never_lands_in_an_existing_run(in_tmp, monkeypatch):
    """Two unnamed runs started in the same second get different run directories (the second would otherwise
    autoresume the first's checkpoint)."""
    monkeypatch.setattr(cli.time, "strftime", lambda fmt: "20261126-120000")
    cfg = hg38_xlstm.hg38_xlstm()
    cli.mutate(cfg, ["tiny"])
    first = cli._default_run_name("experiments.hg38_xlstm", ["tiny"], cfg)
    assert first == "hg38_xlstm-tiny-20261126-120000"
    (in_tmp / "runs" / first).mkdir(parents=True)
    second = cli._default_run_name("experiments.hg38_xlstm", ["tiny"], cfg)
    (in_tmp / "runs" / second).mkdir()
    assert (second, cli._default_run_name("experiments.hg38_xlstm", ["tiny"], cfg)) == (first + "-2", first + "-3")
