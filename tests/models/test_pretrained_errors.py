"""`dnax.pretrained` misused: damaged or foreign directories are named, user files are never deleted, a compiled
backbone saves as its module."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dnax.models.backbones.xlstm import XLSTMLM
from dnax.pretrained import from_pretrained, save_pretrained


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = XLSTMLM(d_model=32, n_layer=1).eval()
    return model, save_pretrained(model, tmp_path / "m")


def _edit_config(directory, **changes):
    cfg = json.loads((directory / "config.json").read_text())
    cfg.update(changes)
    (directory / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("damage, error, message", [
    (lambda d: (d / "model.safetensors").write_bytes(b"garbage"), ValueError,
     "model.safetensors: not a readable safetensors file"),
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:500]), ValueError,
     "model.safetensors: not a readable safetensors file"),
    (lambda d: (d / "config.json").write_text("{not json"), ValueError, r"config.json: not valid JSON"),
    (lambda d: (d / "config.json").write_text("[1]"), ValueError, "config.json: not a dnax pretrained config"),
    (lambda d: _edit_config(d, version=3), ValueError, "config.json: format version 3, this dnax reads up to 2"),
    (lambda d: _edit_config(d, **{"class": "dnax.models.backbones.xlstm.Nope"}), ValueError,
     r"config.json: class 'dnax.models.backbones.xlstm.Nope' cannot be imported"),
    (lambda d: _edit_config(d, **{"class": "dnax.models.backbones.nope.XLSTMLM"}), ValueError,
     "cannot be imported"),
    (lambda d: _edit_config(d, **{"class": "dnax.pretrained.save_pretrained"}), ValueError,
     r"class 'dnax.pretrained.save_pretrained' is not a torch.nn.Module subclass; not calling it"),
    (lambda d: _edit_config(d, **{"class": "subprocess.run"}), ValueError,
     r"class 'subprocess.run' is outside dnax; importing it would run its module's code \(pass trust_code=True"),
    (lambda d: _edit_config(d, **{"class": None}), ValueError, "'class' must be an import path string, got None"),
    (lambda d: _edit_config(d, version="1"), ValueError, "config.json: format version '1' is not an integer"),
    (lambda d: _edit_config(d, kwargs={**json.loads((d / "config.json").read_text())["kwargs"], "bogus": 1}),
     ValueError, r"config.json: its kwargs do not build XLSTMLM: .*unexpected keyword argument 'bogus'"),
    (lambda d: _edit_config(d, kwargs={**json.loads((d / "config.json").read_text())["kwargs"], "d_model": "x"}),
     ValueError, r"config.json: its kwargs do not build XLSTMLM: "),
    (lambda d: _edit_config(d, kwargs=[1]), ValueError, "'kwargs' must be a JSON object, got list"),
    (lambda d: save_file({k: (v.to(torch.int32) if k == "lm_head.weight" else v)
                          for k, v in load_file(d / "model.safetensors").items()}, d / "model.safetensors"),
     ValueError, r"model.safetensors: lm_head.weight is stored as I32, not a floating-point dtype \(1 such"),
    (lambda d: _edit_config(d, kwargs={**json.loads((d / "config.json").read_text())["kwargs"], "d_model": 64}),
     RuntimeError, r"model.safetensors: does not fit XLSTMLM as config.json describes it"),
], ids=["garbage_weights", "truncated_weights", "bad_json", "not_an_object", "newer_version", "unknown_class",
        "unknown_module", "not_a_module", "outside_dnax", "class_missing", "version_a_string", "unknown_kwarg",
        "bad_kwarg_value", "kwargs_not_object", "int_weights", "weights_of_another_size"])
def test_damaged_directory_is_named_on_one_line(saved, damage, error, message):
    _, d = saved
    damage(d)
    with pytest.raises(error, match=message) as info:
        from_pretrained(d)
    assert str(d) in str(info.value) and "\n" not in str(info.value)


def test_a_format_1_rcps_slstm_model_keeps_the_head_flip_it_was_saved_with(tmp_path):
    """Before format 2, XLSTMLM had no `s_rc_head_flip` and an RCPS model with sLSTM blocks always flipped; such a
    folder loads with the flip (a model without sLSTM blocks, or saved today, as recorded)."""
    torch.manual_seed(0)
    kw = dict(d_model=32, n_layer=2, m_num_heads=2, s_num_heads=2, m_qkv_proj_blocksize=4, rcps=True,
              bidirectional=True, s_backend="vanilla", m_backend="parallel")
    for s_lstm_at, flipped in (([0], True), ([], False)):
        d = save_pretrained(XLSTMLM(**kw, s_lstm_at=s_lstm_at), tmp_path / f"m{len(s_lstm_at)}")
        cfg = json.loads((d / "config.json").read_text())
        assert cfg["version"] == 2 and cfg["kwargs"]["s_rc_head_flip"] is False
        assert from_pretrained(d).init_kwargs["s_rc_head_flip"] is False
        del cfg["kwargs"]["s_rc_head_flip"]
        (d / "config.json").write_text(json.dumps({**cfg, "version": 1}))
        assert from_pretrained(d).init_kwargs["s_rc_head_flip"] is flipped


class _MyBackbone(torch.nn.Linear):  # a user's own module, saved with dnax
    def __init__(self, n: int):
        super().__init__(n, n)
        self.init_kwargs = {"n": n}


def test_a_class_outside_dnax_loads_only_when_trusted(tmp_path):
    model = _MyBackbone(3)
    d = save_pretrained(model, tmp_path / "mine")
    assert json.loads((d / "config.json").read_text())["class"] == f"{__name__}._MyBackbone"
    with pytest.raises(ValueError, match="is outside dnax"):
        from_pretrained(d)
    loaded = from_pretrained(d, trust_code=True)
    assert type(loaded) is _MyBackbone and torch.equal(loaded.weight, model.weight)


def test_a_failed_final_rename_puts_the_earlier_output_back(saved, monkeypatch):
    """The earlier output is moved aside before the new one is renamed into place; if that rename fails, it is
    moved back (no temporary folders left)."""
    import dnax.pretrained

    _, d = saved
    before = (d / "model.safetensors").read_bytes()
    real = dnax.pretrained.os.replace

    def failing(src, dst):
        if Path(dst) == d and ".tmp-" in Path(src).name:
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr(dnax.pretrained.os, "replace", failing)
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(XLSTMLM(d_model=64, n_layer=1), d)
    assert (d / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in d.parent.iterdir()) == ["m"]


def test_a_file_or_cuda_without_a_gpu_is_named(saved):
    _, d = saved
    with pytest.raises(NotADirectoryError, match="config.json: a file; give the directory"):
        from_pretrained(d / "config.json")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="map_location 'cuda', but CUDA is not available here"):
            from_pretrained(d, map_location="cuda")


def test_save_never_deletes_files_beside_an_earlier_output(saved):
    model, d = saved
    (d / "README.md").write_text("my notes")
    before = (d / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="an earlier output, but it also holds README.md; not replacing it"):
        save_pretrained(XLSTMLM(d_model=64, n_layer=1), d)
    assert (d / "README.md").read_text() == "my notes" and (d / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in d.parent.iterdir()) == ["m"]  # no temporary directory left


def test_compiled_backbone_saves_as_its_module(tmp_path, saved):
    model, _ = saved
    d = save_pretrained(torch.compile(model), tmp_path / "compiled")
    assert json.loads((d / "config.json").read_text())["class"] == "dnax.models.backbones.xlstm.XLSTMLM"
    ids = torch.randint(7, 11, (2, 8))
    with torch.no_grad():
        assert torch.equal(from_pretrained(d)(ids), model(ids))


def test_weights_load_in_fp32_unless_a_dtype_is_asked_for(tmp_path):
    """A bf16 backbone comes back in fp32 by default (training keeps fp32 master weights), in bf16 with
    dtype='auto' (a mixed one mixed), in any floating dtype asked for; other dtypes are refused by name."""
    torch.manual_seed(0)
    model = XLSTMLM(d_model=32, n_layer=1).eval().to(torch.bfloat16)
    first = next(model.parameters())
    first.data = first.data.float()  # one tensor kept in fp32, as mixed-precision setups do
    directory = save_pretrained(model, tmp_path / "bf16")
    saved = {name: t.dtype for name, t in model.state_dict().items()}
    assert {torch.bfloat16, torch.float32} <= set(saved.values())

    default = from_pretrained(directory)
    assert {t.dtype for t in default.state_dict().values() if t.is_floating_point()} == {torch.float32}
    auto = from_pretrained(directory, dtype="auto")
    assert {name: t.dtype for name, t in auto.state_dict().items()} == saved
    for name, t in auto.state_dict().items():
        assert torch.equal(t, model.state_dict()[name]), name
    assert {t.dtype for t in from_pretrained(directory, dtype="float16").parameters()} == {torch.float16}
    ids = torch.randint(0, 12, (1, 9))
    torch.testing.assert_close(auto(ids).float(), model(ids).float())
    for bad in ("int8", torch.int64, "fp32"):
        with pytest.raises(ValueError, match="is not a floating-point torch dtype"):
            from_pretrained(directory, dtype=bad)
