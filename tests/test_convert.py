"""`dnax.convert` (reference runs -> dnax, conformance `check`) and `dnax.pretrained` (save / from_pretrained)."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dnax.convert import PREFIX, ConversionError, WeightMismatchError, check_case, load_reference, main
from dnax.models.backbones.xlstm import XLSTMLM
from dnax.pretrained import from_pretrained, init_kwargs, save_pretrained
from dnax.reference_checkpoint import load_lightning_state_dict
from tests.models.conformance import CONFORMANCE

XLSTM_CASES = ["xlstm_mlstm_causal", "xlstm_mlstm_flip_add", "xlstm_slstm_rcps"]
CKPT = Path("checkpoints") / "test" / "loss.ckpt"



def _copy_case(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / name
    shutil.copytree(CONFORMANCE / name, dst)
    return dst


def _rewrite_ckpt(case_dir: Path, edit) -> None:
    sd = load_lightning_state_dict(case_dir / CKPT)
    edit(sd)
    torch.save({"state_dict": sd}, case_dir / CKPT)


# ---------------------------------------------------------------------------------------------- check

@pytest.mark.parametrize("name", XLSTM_CASES)
def test_check_passes_on_xlstm_cases(name, capsys):
    assert main(["check", str(CONFORMANCE / name)]) == 0
    out = capsys.readouterr().out
    assert "logits max abs diff" in out and "hidden_states max abs diff" in out and "PASS" in out


def test_check_fails_when_a_weight_is_perturbed(tmp_path, capsys):
    case = _copy_case("xlstm_mlstm_causal", tmp_path)

    def perturb(sd):
        key = PREFIX + "lm_head.weight"
        sd[key] = sd[key].clone()
        sd[key][3, 5] += 1e-2

    _rewrite_ckpt(case, perturb)
    r = check_case(case)
    assert not r["passed"] and r["logits"] > r["tolerance"]
    assert main(["check", str(case)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_check_fails_when_expected_logits_differ(tmp_path):
    case = _copy_case("xlstm_slstm_rcps", tmp_path)
    logits = np.load(case / "logits.npy")
    logits[1, 7, 2] += 1e-4
    np.save(case / "logits.npy", logits)
    r = check_case(case)
    assert r["hidden_states"] <= r["tolerance"] < r["logits"]
    assert main(["check", str(case)]) == 1


def test_check_uses_case_tolerance_unless_given_one(tmp_path, capsys):
    case = _copy_case("xlstm_mlstm_causal", tmp_path)
    meta = json.loads((case / "case.json").read_text())
    meta["tolerance"] = 1e-9  # below the measured float noise
    (case / "case.json").write_text(json.dumps(meta))
    assert main(["check", str(case)]) == 1
    assert main(["check", str(case), "--tolerance", "1e-5"]) == 0
    meta["tolerance"] = 1e9  # a case that would pass anything: the 1e-5 still holds it to account
    (case / "case.json").write_text(json.dumps(meta))
    _rewrite_ckpt(case, lambda sd: sd[PREFIX + "lm_head.weight"].add_(1e-2))
    assert main(["check", str(case)]) == 0
    assert main(["check", str(case), "--tolerance", "1e-5"]) == 1
    assert "tolerance 1e-05: FAIL" in capsys.readouterr().out


@pytest.mark.parametrize("text, message", [
    (b"[1, 2]", "case.json: must be a JSON object, got list"),
    (b'{"tolerance": "abc"}', "case.json: tolerance must be a finite number >= 0, got 'abc'"),
    (b'{"tolerance": null}', "case.json: tolerance must be a finite number >= 0, got None"),
    (b'{"tolerance": -1}', "case.json: tolerance must be a finite number >= 0, got -1"),
    (b"\xff\xfe{}", "case.json: not JSON"),
])
def test_a_damaged_case_json_is_one_line_exit_2(tmp_path, capsys, text, message):
    case = _copy_case("xlstm_mlstm_causal", tmp_path)
    (case / "case.json").write_bytes(text)
    assert main(["check", str(case)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {case / 'case.json'}") and message in err


def test_loading_a_reference_checkpoint_never_runs_code_from_it(tmp_path):
    """A Lightning checkpoint is a pickle: its hyper_parameters could name any callable. Only the globals that
    rebuild tensors and containers are resolved; others become inert placeholders (nothing imported or called)."""
    case = _copy_case("xlstm_mlstm_causal", tmp_path)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    sd = load_lightning_state_dict(case / CKPT)
    torch.save({"state_dict": sd, "hyper_parameters": {"x": Payload()}}, case / CKPT)
    assert main(["check", str(case)]) == 0
    assert not marker.exists()
    torch.save({"state_dict": {**sd, PREFIX + "extra": Payload()}}, case / CKPT)
    with pytest.raises(ValueError, match=f"state_dict entry '{PREFIX}extra' is not a tensor"):
        load_lightning_state_dict(case / CKPT)
    assert not marker.exists()
    # not a zip: torch's legacy reader unpickles its header records with the pickle module it is given
    for legacy in (lambda f: pickle.dump(Payload(), f), lambda f: torch.save({"x": Payload()}, f,
                                                                             _use_new_zipfile_serialization=False)):
        with open(case / CKPT, "wb") as f:
            legacy(f)
        assert main(["check", str(case)]) == 2
        assert not marker.exists()


@pytest.mark.parametrize("ids, message", [
    (np.full((2, 8), 12), r"token id 12 outside the vocabulary 0\.\.11"),
    (np.full((2, 8), -1), r"token id -1 outside the vocabulary 0\.\.11"),
    (np.zeros((2, 8), np.float32), r"input_ids must be integer token ids \(torch.long\), got torch.float32"),
    (np.zeros(8, np.int64), r"input_ids must be \(batch, length\), got shape \(8,\)"),
    (np.zeros((2, 0), np.int64), r"input_ids has no tokens \(shape \(2, 0\)\)"),
])
def test_check_reports_input_ids_the_model_cannot_take_in_one_line(tmp_path, capsys, ids, message):
    case = _copy_case("xlstm_mlstm_causal", tmp_path)
    np.save(case / "input_ids.npy", ids)
    with pytest.raises(ConversionError, match=message):
        check_case(case)
    assert main(["check", str(case)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {case / 'input_ids.npy'}: ")


# ---------------------------------------------------------------------------------------------- load_reference

def test_load_reference_names_missing_unexpected_and_misshaped_keys(tmp_path):
    case = _copy_case("xlstm_mlstm_causal", tmp_path)
    missing, shaped = "lm_head.weight", "token_embedding.weight"

    def damage(sd):
        del sd[PREFIX + missing]
        sd[PREFIX + shaped] = torch.zeros(13, 64)
        sd[PREFIX + "extra.bias"] = torch.zeros(3)

    _rewrite_ckpt(case, damage)
    with pytest.raises(WeightMismatchError) as e:
        load_reference(case)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"missing keys (1): {missing}" in msg
    assert "unexpected keys (1): extra.bias" in msg
    assert f"{shaped} checkpoint [13, 64] vs model [12, 64]" in msg
    assert e.value.missing == [missing]


def test_load_reference_accepts_ckpt_path_and_records_kwargs():
    model = load_reference(CONFORMANCE / "xlstm_mlstm_flip_add" / CKPT)
    assert type(model) is XLSTMLM and not model.training
    kw = init_kwargs(model)
    assert kw["bidirectional"] is True and kw["d_model"] == 64


def test_caduceus_run_loads_and_passes_check():  # Caduceus keys carry only `model.` (model.caduceus.backbone.*)
    assert type(load_reference(CONFORMANCE / "caduceus_ps")).__name__ == "CaduceusLM"
    assert main(["check", str(CONFORMANCE / "caduceus_ps")]) == 0


def test_transformer_pp_run_in_reference_layout_loads(tmp_path):
    """A DNA-xLSTM llama run (models.llama.TransformerConfig, weights under model.backbone.) loads exactly."""
    from dnax.models.backbones.transformer_pp import TransformerPPLM

    config = {"_target_": "models.llama.TransformerConfig", "d_model": 32, "n_layer": 2, "n_heads": 4,
              "n_kv_heads": 2, "vocab_size": 12, "hidden_dim": None, "multiple_of": 8, "norm_eps": 1e-5,
              "max_length": 64, "dropout": 0.0, "bidirectional": True}
    torch.manual_seed(0)
    ref = TransformerPPLM.from_reference_config(config)
    run = tmp_path / "llama_run"
    (run / CKPT.parent).mkdir(parents=True)
    (run / "model_config.json").write_text(json.dumps({"config": config}))
    torch.save({"state_dict": {PREFIX + k: v for k, v in ref.state_dict().items()}}, run / CKPT)
    model = load_reference(run)
    assert type(model) is TransformerPPLM and init_kwargs(model)["n_kv_heads"] == 2
    ids = torch.randint(7, 12, (2, 40))
    torch.testing.assert_close(model(ids), ref.eval()(ids), rtol=0, atol=0)


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope")]) == 2
    run = tmp_path / "run"
    (run / CKPT).parent.mkdir(parents=True)
    (run / "model_config.json").write_text(json.dumps({"config": {"_target_": "x.xLSTMConfig", "d_model": 32}}))
    (run / CKPT).write_bytes(b"this is not a checkpoint")
    assert main(["load", str(run), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert "not a readable checkpoint" in err[1]
    assert not (tmp_path / "out").exists()


def test_a_loose_checkpoint_takes_its_model_config_from_the_cli(tmp_path, capsys):
    case = _copy_case("xlstm_mlstm_causal", tmp_path)
    loose = tmp_path / "elsewhere" / "x.ckpt"
    loose.parent.mkdir()
    shutil.copy(case / CKPT, loose)
    assert main(["load", str(loose), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {loose}: no model_config.json in the 3 folders above it, nor config.json beside it "
                   "(pass model_config=..., or --model-config to python -m dnax.convert load)")
    assert main(["load", str(loose), "--out", str(tmp_path / "out"), "--model-config",
                 str(case / "model_config.json")]) == 0
    assert type(from_pretrained(tmp_path / "out")) is XLSTMLM


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "model.safetensors").unlink(), "model.safetensors: missing"),
    (lambda d: (d / "config.json").write_text(json.dumps({**json.loads((d / "config.json").read_text()),
                                                          "kwargs": {"bogus": 1}})),
     "config.json: its kwargs do not build XLSTMLM"),
    (lambda d: (d / "config.json").write_bytes(b'{"format": "\xff"}'), "config.json: cannot read model config"),
])
def test_convert_load_of_a_damaged_dnax_directory_is_one_line_exit_2(tmp_path, capsys, damage, message):
    case = _copy_case("xlstm_mlstm_causal", tmp_path)
    assert main(["load", str(case), "--out", str(tmp_path / "dnax")]) == 0
    damage(tmp_path / "dnax")
    capsys.readouterr()
    assert main(["load", str(tmp_path / "dnax"), "--out", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and not (tmp_path / "again").exists()


def test_module_entry_point_exit_code(tmp_path):
    r = subprocess.run([sys.executable, "-m", "dnax.convert", "check", str(tmp_path / "missing")],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no such case directory" in r.stderr


def test_cli_load_writes_dnax_format(tmp_path, capsys):
    out = tmp_path / "converted"
    assert main(["load", str(CONFORMANCE / "xlstm_slstm_rcps"), "--out", str(out)]) == 0
    model = from_pretrained(out)
    ids = torch.from_numpy(np.load(CONFORMANCE / "xlstm_slstm_rcps" / "input_ids.npy"))
    with torch.no_grad():
        diff = (model(ids) - torch.from_numpy(np.load(CONFORMANCE / "xlstm_slstm_rcps" / "logits.npy"))).abs().max()
    assert diff <= 1e-5
    again = load_reference(out)  # a converted folder loads like the run it came from
    assert type(again) is type(model) and not again.training
    assert all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())


# ---------------------------------------------------------------------------------------------- pretrained

@pytest.mark.parametrize("kw", [
    dict(),                                   # causal mLSTM
    dict(s_lstm_at=[0, 1], rcps=True),        # RCPS sLSTM
], ids=["mlstm_causal", "slstm_rcps"])
def test_save_from_pretrained_round_trip(tmp_path, kw):
    torch.manual_seed(0)
    model = XLSTMLM(d_model=32, n_layer=2, max_length=16, m_backend="parallel", s_backend="vanilla", **kw).eval()
    ids = torch.randint(7, 12, (2, 16))
    with torch.no_grad():
        ref = model(ids)
    d = save_pretrained(model, tmp_path / "m")
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["class"] == "dnax.models.backbones.xlstm.XLSTMLM" and cfg["kwargs"]["d_model"] == 32
    torch.manual_seed(1)  # a different init: everything must come from the file
    loaded = from_pretrained(d)
    assert type(loaded) is XLSTMLM
    assert init_kwargs(loaded).get("complement_map") == init_kwargs(model).get("complement_map")  # int keys
    with torch.no_grad():
        assert torch.equal(loaded(ids), ref)
    # overwrite in place: atomic replace, no temp dirs left behind
    save_pretrained(loaded, d)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
    assert json.loads((d / "config.json").read_text()) == cfg  # config survives load + save unchanged
    with torch.no_grad():
        assert torch.equal(from_pretrained(d)(ids), ref)


def test_from_reference_config_records_constructor_kwargs():
    cmap = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 10, 8: 9, 9: 8, 10: 7, 11: 11}
    cfg = {"config": {"_target_": "models.dna_xlstm.modelling_xlstm.xLSTMConfig", "d_model": 32, "n_layer": 1,
                      "vocab_size": 12, "complement_map": {str(k): v for k, v in cmap.items()}, "rcps": True}}
    model = XLSTMLM.from_reference_config(cfg, m_backend="parallel")
    kw = init_kwargs(model)
    assert kw["complement_map"] == cmap and kw["m_backend"] == "parallel" and "_target_" not in kw


def test_save_refuses_a_module_without_recorded_kwargs(tmp_path):
    with pytest.raises(ValueError, match="init_kwargs"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_load_out_never_replaces_what_is_not_a_dnax_pretrained_directory(tmp_path, capsys):
    run = _copy_case("xlstm_mlstm_causal", tmp_path)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    (tmp_path / "afile").write_text("mine")
    for out in (run, tmp_path / "notes", tmp_path / "afile"):  # the source itself, a folder of mine, a file
        assert main(["load", str(run), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err == f"error: {out}: exists and is not a dnax pretrained directory; not " \
                                           "replacing it (choose another path, or remove it first)"
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine" and (tmp_path / "afile").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    for _ in range(2):  # an empty folder, then the earlier output: both replaced
        assert main(["load", str(run), "--out", str(tmp_path / "empty")]) == 0
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["config.json", "model.safetensors"]
    assert oct((tmp_path / "empty" / "model.safetensors").stat().st_mode & 0o777) == \
        oct((tmp_path / "empty" / "config.json").stat().st_mode & 0o777)


@pytest.mark.parametrize("edit, message", [
    (lambda c: {"config": None}, "model config must be a JSON object, got NoneType"),
    (lambda c: [1], "model config must be a JSON object, got list"),
    (lambda c: {"config": {**c["config"], "m_backend": "nope"}}, "xLSTM config not understood: unknown m_backend"),
    (lambda c: {"config": {**c["config"], "_target_": "foo.BarConfig"}}, "unknown reference model _target_"),
])
def test_bad_model_configs_are_one_line_errors_naming_the_file(tmp_path, capsys, edit, message):
    run = _copy_case("xlstm_mlstm_causal", tmp_path)
    config = run / "model_config.json"
    config.write_text(json.dumps(edit(json.loads(config.read_text()))))
    assert main(["load", str(run), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"error: {config}: {message}") and not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- released runs

RELEASE = "context_1k/dna_xlstm_test_mlm_ph"


def _serve_case(server, case: str, name: str = RELEASE) -> None:
    for file in ("model_config.json", CKPT.as_posix()):
        server.files[f"/{name}/{file}"] = (CONFORMANCE / case / file).read_bytes()


def test_released_name_is_downloaded_once_then_verified_and_loaded(http_server, in_tmp, monkeypatch):
    monkeypatch.setenv("DNAX_REFERENCE_URL", http_server.base)
    monkeypatch.setenv("DNAX_CACHE", str(in_tmp / "cache"))
    _serve_case(http_server, "xlstm_mlstm_flip_add")
    model = load_reference(RELEASE)
    expected = load_reference(CONFORMANCE / "xlstm_mlstm_flip_add")
    ids = torch.from_numpy(np.load(CONFORMANCE / "xlstm_mlstm_flip_add" / "input_ids.npy")).long()
    torch.testing.assert_close(model(ids), expected(ids), rtol=0, atol=0)
    run = in_tmp / "cache" / "reference_checkpoints" / RELEASE
    assert (run / CKPT).is_file() and (run / (CKPT.as_posix() + ".sha256")).is_file()
    n = len(http_server.log)
    load_reference(RELEASE)  # cached: re-hashed against the recorded sha256, no request
    assert len(http_server.log) == n
    ckpt = bytearray((run / CKPT).read_bytes())
    ckpt[-100] ^= 1
    (run / CKPT).write_bytes(bytes(ckpt))  # corrupted in the cache
    with pytest.raises(ValueError, match="corrupted"):
        load_reference(RELEASE)


def test_download_cli_into_a_folder_and_its_errors(http_server, in_tmp, capsys, monkeypatch):
    _serve_case(http_server, "caduceus_ps", "context_32k/caduceus_ps_run")
    assert main(["download", "context_32k/caduceus_ps_run", "--dir", "checkpoints", "--base-url", http_server.base,
                 "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == f"ok {Path('checkpoints') / 'context_32k' / 'caduceus_ps_run'}"
    assert type(load_reference("checkpoints/context_32k/caduceus_ps_run")).__name__ == "CaduceusLM"
    # the server lacks the run / nothing listens / a malformed name: one line each, exit 2
    assert main(["download", "context_1k/absent", "--dir", "new/dir", "--base-url", http_server.base,
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "HTTP 404" in err and "context_1k/absent/model_config.json" in err
    assert not Path("new").exists()  # the folders it made for the run are gone again
    monkeypatch.setenv("DNAX_REFERENCE_URL", "http://127.0.0.1:9")  # the discard port: refused
    monkeypatch.setenv("DNAX_CACHE", str(in_tmp / "cache"))
    assert main(["load", RELEASE, "--out", "out"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: cannot reach http://127.0.0.1:9/" + RELEASE)
    assert "place it at" in err and not Path("out").exists()
    assert not (in_tmp / "cache" / "reference_checkpoints" / "context_1k").exists()  # nothing half-made
    assert main(["download", "dna_xlstm_500k_mlm_ph"]) == 2
    assert "not a released run name" in capsys.readouterr().err


def test_hub_repository_sources_fetch_config_then_the_weights_it_needs(in_tmp, monkeypatch, capsys):
    """`hf://owner/name` through huggingface_hub (patched here to serve local folders the way it lays out its cache:
    one snapshot folder per revision): Caduceus (model.safetensors) and a HyenaDNA-layout release (weights.ckpt)."""
    import huggingface_hub

    from dnax.models.backbones.hyena import HyenaLM

    hyena = in_tmp / "hub" / "LongSafari" / "hyenadna-test"
    hyena.mkdir(parents=True)
    config = {"d_model": 16, "n_layer": 1, "d_inner": 64, "vocab_size": 12,
              "layer": {"_name_": "hyena", "emb_dim": 5, "filter_order": 8, "l_max": 34, "modulate": True}}
    (hyena / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    source = HyenaLM.from_reference_config(config).eval()
    torch.save({"state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}}, hyena / "weights.ckpt")
    shutil.copytree(CONFORMANCE / "caduceus_ps" / "hf", in_tmp / "hub" / "kuleshov-group" / "caduceus-test")
    fetched = []

    def fake_download(repo, filename, cache_dir=None, **kw):
        src = in_tmp / "hub" / repo / filename
        if not src.is_file():
            raise huggingface_hub.errors.EntryNotFoundError(f"404 Client Error. Entry Not Found for url: {filename}")
        dst = Path(cache_dir) / repo.replace("/", "--") / "snapshots" / "abc123" / filename
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
        fetched.append((repo, filename))
        return str(dst)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setenv("DNAX_CACHE", str(in_tmp / "cache"))
    model = load_reference("hf://LongSafari/hyenadna-test")
    ids = torch.randint(7, 12, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(model(ids), source(ids), rtol=0, atol=0)
    assert fetched == [("LongSafari/hyenadna-test", "config.json"), ("LongSafari/hyenadna-test", "weights.ckpt")]
    expected = load_reference(CONFORMANCE / "caduceus_ps" / "hf")
    caduceus = load_reference("hf://kuleshov-group/caduceus-test")
    ids = torch.from_numpy(np.load(CONFORMANCE / "caduceus_ps" / "input_ids.npy")).long()
    torch.testing.assert_close(caduceus(ids), expected(ids), rtol=0, atol=0)
    assert fetched[-1] == ("kuleshov-group/caduceus-test", "model.safetensors")
    assert main(["download", "hf://kuleshov-group/caduceus-test"]) == 0
    assert capsys.readouterr().out.startswith("ok " + str(in_tmp / "cache" / "huggingface"))
    # a repository the hub lacks (or offline without a cached copy): one line naming it and what to do, exit 2
    assert main(["load", "hf://nobody/absent", "--out", "out"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: hf://nobody/absent: cannot fetch from the Hugging Face hub")
    assert "EntryNotFoundError" in err and "huggingface-cli download nobody/absent --local-dir DIR" in err
