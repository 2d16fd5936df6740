"""Load reference (DNA-xLSTM, Caduceus, HyenaDNA) runs and releases into dnax backbones, and run conformance cases.

A reference run folder, as released (e.g. `checkpoints/context_1k/<run_name>/`):

    <run>/model_config.json            {"config": {"_target_": "...xLSTMConfig" | "...CaduceusConfig", ...}}
    <run>/checkpoints/test/loss.ckpt   Lightning checkpoint, weights under `model.backbone.` (xLSTM) or
                                       `model.` (Caduceus: `model.caduceus.backbone.*`, `model.lm_head.*`)

(`checkpoints/last.ckpt` where there is no `test/loss.ckpt`). Families (`FAMILIES`): xLSTM, Caduceus, Transformer++
(`models.llama.TransformerConfig`), Mamba (mamba_ssm `MambaConfig`, the caduceus `configs/model/mamba.yaml` layout)
and HyenaDNA (the hydra `model:` dict with `layer._name_: hyena`). Also a Hugging Face Caduceus directory
(`config.json` with `model_type: caduceus` + `model.safetensors`, the tied copies dropped; they are re-tied) and a
HyenaDNA release directory (LongSafari/hyenadna-*: `config.json` + `weights.ckpt`). Hub repositories of either kind
are sources too, as `hf://owner/name` (fetched once into the dnax cache with `huggingface_hub`).

A released run can also be named, e.g. `context_1k/dna_xlstm_500k_mlm_ph` (the names the reference's fine-tuning
scripts use; `KNOWN_RELEASES`): it is downloaded once from the reference's download page (`RELEASE_URL`, or
`$DNAX_REFERENCE_URL` for a mirror) into `<dnax cache>/reference_checkpoints/<name>/` and verified on every later
use (`dnax.download`: resumable, size-checked, sha256 recorded). That the page serves `<name>/model_config.json`
and `<name>/checkpoints/test/loss.ckpt`, the layout its README asks users to recreate, is assumed, not checked
(no network where dnax is developed); where it does not, the error names the URL and where to place the files.

Python:

    from dnax.convert import load_reference
    model = load_reference("checkpoints/context_1k/<run_name>")      # or the .ckpt path itself
    model = load_reference("<hf_dir>")  # an HF Caduceus directory: config.json + model.safetensors (= load_hf)
    model = load_reference("context_1k/dna_xlstm_500k_mlm_ph")          # a released run, downloaded once
    model = load_reference("hf://LongSafari/hyenadna-tiny-1k-seqlen")   # a hub release, downloaded once

CLI:

    python -m dnax.convert load RUN_DIR --out DIR    # reference run (or released name) -> dnax format
    python -m dnax.convert download NAME [--dir DIR] # fetch a released run (default: into the dnax cache)
    python -m dnax.convert download hf://OWNER/NAME  # a Caduceus / HyenaDNA release from the Hugging Face hub
    python -m dnax.convert check CASE_DIR            # one conformance case (shared/conformance/<case>)

Exit codes: 0 ok; 1 `check` above tolerance; 2 bad input (missing files, not a checkpoint, weights that do not fit
the model); 3 model family not implemented in dnax.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from torch import nn

from dnax.data.sources import cache_root
from dnax.download import DownloadError, fetch
from dnax.models.input_ids import check_input_ids
from dnax.pretrained import declares_pretrained, from_pretrained, is_pretrained_dir, save_pretrained

PREFIX = "model.backbone."  # xLSTM
#: reference model family -> (dnax backbone, its name in messages, the prefix stripped from the Lightning keys;
#: HyenaDNA's keys go through `hyena.reference_state_dict`)
FAMILIES = {
    "xlstm": ("dnax.models.backbones.xlstm:XLSTMLM", "xLSTM", PREFIX),
    "caduceus": ("dnax.models.backbones.caduceus:CaduceusLM", "Caduceus", "model."),
    "llama": ("dnax.models.backbones.transformer_pp:TransformerPPLM", "Transformer++ (llama)", PREFIX),
    "mamba": ("dnax.models.backbones.mamba:MambaLM", "Mamba", "model."),
    "hyena": ("dnax.models.backbones.hyena:HyenaLM", "HyenaDNA", "model."),
}
HF_CONFIG, HF_WEIGHTS = "config.json", "model.safetensors"
HF_PREFIX = "hf://"  # a Hugging Face hub repository as a source: hf://owner/name
CKPT_IN_RUN = Path("checkpoints") / "test" / "loss.ckpt"
#: (checkpoint, model config) inside a run folder, tried in order: the released DNA-xLSTM layout, a run's last
#: checkpoint (the reference scripts' `checkpoints/last.ckpt`), a HyenaDNA release (LongSafari/hyenadna-*)
RUN_LAYOUTS = ((CKPT_IN_RUN, "model_config.json"), (Path("checkpoints") / "last.ckpt", "model_config.json"),
               (Path("weights.ckpt"), HF_CONFIG))
DEFAULT_TOLERANCE = 1e-5
#: the DNA-xLSTM README's download page for its pretrained runs
RELEASE_URL = "https://ml.jku.at/research/Bio-xLSTM/downloads/DNA-xLSTM/checkpoints"
RELEASE_NAME = re.compile(r"context_\d+k/[A-Za-z0-9][A-Za-z0-9_.-]*")
#: released runs named by the reference's scripts_downstream/run_{genomics,nucleotide}.sh (any other
#: `context_<n>k/<run>` name is fetched the same way)
KNOWN_RELEASES = ("context_1k/dna_xlstm_500k_mlm_ph", "context_1k/dna_xlstm_500k_mlm_ps",
                  "context_1k/dna_xlstm_2m_mlm_ph", "context_1k/dna_xlstm_2m_mlm_ps")


class ConversionError(ValueError):
    """Bad input for conversion: missing files, unreadable checkpoint, unknown config."""


class SourceNotFoundError(ConversionError, FileNotFoundError):
    """A model or weights source that does not exist (a ConversionError that is also a FileNotFoundError)."""


class WeightMismatchError(ConversionError):
    """The checkpoint's tensors do not fit the model built from the config (lists every offending key)."""

    def __init__(self, source: str, missing: list[str], unexpected: list[str],
                 mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]):
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): " + ", ".join(missing))
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): " + ", ".join(unexpected))
        if mismatched:
            parts.append(f"shape mismatches ({len(mismatched)}): " + ", ".join(
                f"{k} checkpoint {list(c)} vs model {list(m)}" for k, c, m in mismatched))
        super().__init__(f"{source}: weights do not fit the model; " + "; ".join(parts))


# ---------------------------------------------------------------------------------------------- locating files

def is_release_name(source: str | Path) -> bool:
    """True for a released run's name (`context_1k/<run>`) that is not a local path."""
    return not Path(source).exists() and RELEASE_NAME.fullmatch(str(source)) is not None


def download_release(name: str, directory: str | Path | None = None, *, base_url: str | None = None,
                     progress: bool = True) -> Path:
    """Fetch the released reference run `name` (e.g. `context_1k/dna_xlstm_500k_mlm_ph`) into `<directory>/<name>/`
    (default directory: `<dnax cache>/reference_checkpoints`) as `model_config.json` + `checkpoints/test/loss.ckpt`
    from `<base_url>/<name>/` (default `$DNAX_REFERENCE_URL`, else `RELEASE_URL`); files already there are
    verified against their recorded sha256 instead. Returns the run folder. `DownloadError` (one line) when
    offline or the server lacks a file, `ConversionError` for a malformed name."""
    if RELEASE_NAME.fullmatch(name) is None:
        raise ConversionError(f"{name!r}: not a released run name (expected context_<n>k/<run>, e.g. "
                              f"{KNOWN_RELEASES[0]})")
    base = (base_url or os.environ.get("DNAX_REFERENCE_URL") or RELEASE_URL).rstrip("/")
    root = Path(directory if directory is not None else cache_root() / "reference_checkpoints")
    run = root / name
    made = [d for d in (run, *run.parents) if not d.exists()]  # the folders this call creates, deepest first
    run.mkdir(parents=True, exist_ok=True)
    lock = run / ".download.lock"
    try:
        with FileLock(str(lock)):  # the processes of one launch download it once, not concurrently
            for file in ("model_config.json", CKPT_IN_RUN.as_posix()):
                fetch(f"{base}/{name}/{file}", run / file, progress=progress)
    except DownloadError:
        if not any(f.is_file() and f != lock for f in run.rglob("*")):  # nothing fetched (a .part resumes)
            shutil.rmtree(run, ignore_errors=True)
            for folder in made[1:]:  # context_1k/ and the --dir folder where this call made them and they are empty
                try:
                    folder.rmdir()
                except OSError:
                    break
        raise
    return run


def download_hf(repo: str) -> Path:
    """A Caduceus or HyenaDNA release on the Hugging Face hub (`owner/name`, e.g.
    `kuleshov-group/caduceus-ps_seqlen-131k_d_model-256_n_layer-16`, `LongSafari/hyenadna-tiny-1k-seqlen`) -> its
    local folder: `config.json` and the weights that config calls for (`model.safetensors`, or HyenaDNA's
    `weights.ckpt`), fetched once with `huggingface_hub` into `<dnax cache>/huggingface` (etag-checked; with
    `HF_HUB_OFFLINE=1` from that cache only). `DownloadError` (one line) when neither the cache nor the hub has it."""
    from huggingface_hub import hf_hub_download

    cache = str(cache_root() / "huggingface")
    try:
        config_path = Path(hf_hub_download(repo, HF_CONFIG, cache_dir=cache))
        weights = "weights.ckpt" if reference_family(_read_json(config_path)) == "hyena" else HF_WEIGHTS
        weights_path = Path(hf_hub_download(repo, weights, cache_dir=cache))
    except ConversionError:
        raise
    except Exception as e:  # noqa: BLE001 - network, offline mode, missing repo or file: many exception types
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise DownloadError(f"{HF_PREFIX}{repo}: cannot fetch from the Hugging Face hub ({type(e).__name__}: "
                            f"{first}); download it elsewhere (huggingface-cli download {repo} --local-dir DIR) "
                            "and pass DIR") from None
    if weights_path.parent != config_path.parent:
        raise DownloadError(f"{HF_PREFIX}{repo}: {HF_CONFIG} and {weights} came from different revisions")
    return config_path.parent


def local_source(source: str | Path) -> Path:
    """The local path of a reference source: `hf://owner/name` and released run names (`context_1k/<run>`) are
    downloaded (`download_hf`, `download_release`); anything else is taken as a path."""
    text = str(source)
    if text.startswith(HF_PREFIX):
        return download_hf(text[len(HF_PREFIX):])
    return download_release(text) if is_release_name(text) else Path(source)


def _is_hf_dir(p: Path) -> bool:  # a dnax.pretrained folder has the same two file names
    return (p.is_dir() and (p / HF_CONFIG).is_file() and (p / HF_WEIGHTS).is_file()
            and not (p / CKPT_IN_RUN).exists() and not is_pretrained_dir(p))


def is_reference_source(path: str | Path) -> bool:
    """True where `path` is a local reference source for `load_reference`: a `.ckpt` file, a run folder (its
    `model_config.json`; `load_reference` names a missing checkpoint), a HyenaDNA release folder or a Hugging Face
    Caduceus folder."""
    p = Path(path)
    hyena_ckpt, hyena_config = RUN_LAYOUTS[-1]
    return ((p.is_file() and p.suffix == ".ckpt") or _is_hf_dir(p) or (p / "model_config.json").is_file()
            or ((p / hyena_ckpt).is_file() and (p / hyena_config).is_file()))


def _resolve(run_dir_or_ckpt: str | Path, model_config: dict | str | Path | None) -> tuple[Path, dict, str]:
    """(checkpoint, model config, where the config came from) of a run folder or checkpoint file."""
    p = Path(run_dir_or_ckpt)
    if p.is_dir():
        found = next(((p / c, p / m) for c, m in RUN_LAYOUTS if (p / c).is_file()), None)
        if found is None:
            raise ConversionError(f"{p / CKPT_IN_RUN}: checkpoint not found (expected <run>/"
                                  + ", ".join(c.as_posix() for c, _ in RUN_LAYOUTS[:-1])
                                  + f" or a HyenaDNA release's {RUN_LAYOUTS[-1][0]} beside {RUN_LAYOUTS[-1][1]})")
        ckpt, cfg_path = found
    elif p.is_file():
        # <run>/checkpoints/test/loss.ckpt or <run>/checkpoints/last.ckpt -> <run>/model_config.json;
        # <release>/weights.ckpt -> <release>/config.json
        near = [d / "model_config.json" for d in p.parents[:3]] + [p.parent / HF_CONFIG]
        ckpt, cfg_path = p, next((c for c in near if c.is_file()), None)
    else:
        raise SourceNotFoundError(f"{p}: no such run directory or checkpoint file")
    if model_config is None:
        if cfg_path is None or not cfg_path.is_file():
            what = (f"{cfg_path}: not found" if cfg_path else
                    f"{p}: no model_config.json in the 3 folders above it, nor {HF_CONFIG} beside it")
            raise ConversionError(f"{what} (pass model_config=..., or --model-config to python -m dnax.convert load)")
        model_config = cfg_path
    where = str(model_config) if isinstance(model_config, (str, Path)) else "model_config"
    if isinstance(model_config, (str, Path)):
        model_config = _read_json(Path(model_config))
    if not isinstance(model_config, dict):
        raise ConversionError(f"{where}: model config must be a JSON object, got {type(model_config).__name__}")
    return ckpt, model_config, where


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:  # unreadable, not UTF-8, not JSON
        raise ConversionError(f"{path}: cannot read model config ({e})") from None


def reference_backbone(source: str | Path) -> tuple[Path, type, dict[str, Any]]:
    """(local path, dnax backbone class, its constructor arguments) of a reference source as `load_reference` takes
    it (downloaded first where it is a released run's name or `hf://owner/name`), from its config: no weights read."""
    path = local_source(source)
    if _is_hf_dir(path):
        config, where = _read_json(path / HF_CONFIG), str(path / HF_CONFIG)
    else:
        _, config, where = _resolve(path, None)
    model = _build(config, where)  # random init: only its class and constructor arguments are kept
    return path, type(model), model.init_kwargs


# ---------------------------------------------------------------------------------------------- building

def reference_family(model_config: dict[str, Any]) -> str:
    """The `FAMILIES` key of a reference config: from its `_target_` (DNA-xLSTM / Caduceus runs: `xLSTMConfig`,
    `CaduceusConfig`, `models.llama.TransformerConfig`, mamba_ssm's `MambaConfig`), an HF config's `model_type`,
    or, for HyenaDNA (no `_target_`), its `layer._name_: hyena`."""
    inner = model_config.get("config", model_config) if isinstance(model_config, dict) else model_config
    if not isinstance(inner, dict):
        raise ConversionError(f"model config must be a JSON object, got {type(inner).__name__}")
    target = str(inner.get("_target_", "") or inner.get("model_type", ""))
    for family in FAMILIES:
        if family in target.lower():
            return family
    layer = inner.get("layer")
    if not target and isinstance(layer, dict) and str(layer.get("_name_", "")).lower() == "hyena":
        return "hyena"
    raise ConversionError(f"unknown reference model _target_ {target!r} (expected an xLSTMConfig, CaduceusConfig, "
                          "llama TransformerConfig, MambaConfig, or a HyenaDNA config with layer._name_ hyena)")


def build_from_reference_config(model_config: dict[str, Any], **overrides: Any) -> nn.Module:
    """A dnax backbone (random init, constructor kwargs recorded for `save_pretrained`) for a reference config."""
    import importlib

    family = reference_family(model_config)
    where, name, _ = FAMILIES[family]
    module, cls = where.split(":")
    backbone = getattr(importlib.import_module(module), cls)
    if family == "hyena":  # its config is the flat hydra `model:` dict
        model_config = model_config.get("config", model_config)
    try:
        return backbone.from_reference_config(model_config, **overrides)
    except (TypeError, ValueError, AttributeError, KeyError) as e:  # unknown key, bad value (NotImplemented: exit 3)
        raise ConversionError(f"{name} config not understood: {e}") from None


def _build(model_config: dict[str, Any], where: str, **overrides: Any) -> nn.Module:
    """`build_from_reference_config`, its errors prefixed with where the config came from."""
    try:
        return build_from_reference_config(model_config, **overrides)
    except ConversionError as e:
        raise ConversionError(f"{where}: {e}") from None


def _read_state_dict(ckpt: Path) -> dict[str, torch.Tensor]:
    from dnax.reference_checkpoint import load_lightning_state_dict

    try:
        sd = load_lightning_state_dict(ckpt)
    except ValueError as e:
        raise ConversionError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - torch.load raises many kinds on garbage
        raise ConversionError(f"{ckpt}: not a readable checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
    return sd  # a dict of tensors: load_lightning_state_dict checks that


def load_weights_checked(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """`model.load_state_dict(state_dict, strict=True)` after checking keys and shapes; raises
    `WeightMismatchError` naming every missing / unexpected / mis-shaped key instead of a torch traceback."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items()
                  if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        raise WeightMismatchError(source, missing, unexpected, mismatched)
    model.load_state_dict(state_dict, strict=True)


def load_reference(run_dir_or_ckpt: str | Path, model_config: dict | str | Path | None = None,
                   **overrides: Any) -> nn.Module:
    """Build the dnax backbone for a reference run and load its weights; returns it in eval mode, fp32.

    `run_dir_or_ckpt`: the run folder (`model_config.json` + `checkpoints/test/loss.ckpt`), the `.ckpt` file, a
    Hugging Face Caduceus directory (see `load_hf`), a HyenaDNA release folder, a released run's name
    (`download_release`), a hub repository `hf://owner/name` (`download_hf`), or a folder this module already
    converted (`dnax.pretrained`, what `python -m dnax.convert load --out` writes).
    `model_config`: the config dict or a path to it (default: the run's `model_config.json`).
    `overrides`: constructor kwargs that replace config entries (e.g. `m_backend="auto"`).

    Raises `ConversionError` for bad input, `WeightMismatchError` (a ConversionError) when keys are missing,
    unexpected or mis-shaped (keys are the checkpoint's without `model.backbone.` for xLSTM, without `model.` for
    Caduceus; others count as unexpected). Tied parameters (Caduceus) must be present under every name.
    """
    run_dir_or_ckpt = local_source(run_dir_or_ckpt)
    if model_config is None and declares_pretrained(run_dir_or_ckpt):  # converted already (`convert load --out`)
        try:
            return from_pretrained(run_dir_or_ckpt, **overrides).float()
        except (ValueError, TypeError, RuntimeError) as e:  # damaged: from_pretrained names the file
            raise ConversionError(str(e)) from None
    if model_config is None and _is_hf_dir(Path(run_dir_or_ckpt)):
        return load_hf(run_dir_or_ckpt, **overrides)
    ckpt, config, where = _resolve(run_dir_or_ckpt, model_config)
    model = _build(config, where, **overrides)
    family = reference_family(config)
    sd = _read_state_dict(ckpt)
    if family == "hyena":  # `model.` stripped, and the `.layer` that checkpoint_mixer / _mlp wrappers insert
        from dnax.models.backbones.hyena import reference_state_dict

        sd = reference_state_dict(sd)
    else:
        prefix = FAMILIES[family][2]
        sd = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in sd.items()}
    load_weights_checked(model, sd, source=str(ckpt))
    return model.float().eval()


def load_hf(directory: str | Path, **overrides: Any) -> nn.Module:
    """A Hugging Face Caduceus directory (`CaduceusForMaskedLM.save_pretrained`: `config.json` with `vocab_size`
    already padded and string-keyed `complement_map`, `model.safetensors` without the tied copies) -> `CaduceusLM`
    in eval mode, fp32. Tied weights are re-tied; other missing / unexpected keys raise `WeightMismatchError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from dnax.models.backbones.caduceus import complete_tied_keys

    d = Path(directory)
    for p in (d / HF_CONFIG, d / HF_WEIGHTS):
        if not p.is_file():
            raise ConversionError(f"{p}: not found (expected a Hugging Face directory)")
    config = _read_json(d / HF_CONFIG)
    if not isinstance(config, dict):
        raise ConversionError(f"{d / HF_CONFIG}: model config must be a JSON object, got {type(config).__name__}")
    if config.get("model_type") != "caduceus":
        raise ConversionError(f"{d / HF_CONFIG}: neither a dnax pretrained config (\"format\": \"dnax-pretrained\") "
                              f"nor a Hugging Face Caduceus config (model_type {config.get('model_type')!r})")
    model = _build(config, str(d / HF_CONFIG), **overrides)
    try:
        sd = load_file(str(d / HF_WEIGHTS))
    except (SafetensorError, OSError) as e:
        raise ConversionError(f"{d / HF_WEIGHTS}: not a readable safetensors file ({e})") from None
    load_weights_checked(model, complete_tied_keys(model, sd), source=str(d / HF_WEIGHTS))
    return model.float().eval()


# ---------------------------------------------------------------------------------------------- conformance

def check_case(case_dir: str | Path, tolerance: float | None = None) -> dict[str, Any]:
    """Run one conformance case; returns {"logits": maxdiff, "hidden_states": maxdiff, "tolerance", "passed"}.
    `tolerance`: the largest absolute difference that passes (default: the case's `case.json` "tolerance", else
    DEFAULT_TOLERANCE)."""
    d = Path(case_dir)
    if not d.is_dir():
        raise ConversionError(f"{d}: no such case directory")
    meta_path = d / "case.json"
    meta = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError as e:  # not JSON, not UTF-8
            raise ConversionError(f"{meta_path}: not JSON ({e})") from None
        if not isinstance(meta, dict):
            raise ConversionError(f"{meta_path}: must be a JSON object, got {type(meta).__name__}")
    tol = meta.get("tolerance", DEFAULT_TOLERANCE) if tolerance is None else tolerance
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol < 0:
        where = f"{meta_path}: tolerance" if tolerance is None else "tolerance"
        raise ConversionError(f"{where} must be a finite number >= 0, got {tol!r}")
    tol = float(tol)
    arrays = {}
    for name in ("input_ids", "logits", "hidden_states"):
        p = d / f"{name}.npy"
        if not p.is_file():
            raise ConversionError(f"{p}: missing")
        try:
            arrays[name] = torch.from_numpy(np.load(p, allow_pickle=False))
        except Exception as e:  # noqa: BLE001
            raise ConversionError(f"{p}: not a .npy array ({type(e).__name__})") from None
    model = load_reference(d)
    ids = _checked_input_ids(arrays["input_ids"], model, d / "input_ids.npy")
    with torch.no_grad():
        out = {"logits": model(ids), "hidden_states": model.hidden_states(ids)}
    result: dict[str, Any] = {"tolerance": tol}
    for name, got in out.items():
        ref = arrays[name]
        if tuple(got.shape) != tuple(ref.shape):
            raise ConversionError(f"{d / (name + '.npy')}: model output shape {list(got.shape)} != expected "
                                  f"{list(ref.shape)}")
        result[name] = (got.float() - ref.float()).abs().max().item()
    result["passed"] = all(result[n] <= tol for n in out)  # NaN compares False: fails
    return result


def _checked_input_ids(ids: torch.Tensor, model: torch.nn.Module, path: Path) -> torch.Tensor:
    """`ids` as a long tensor if they are a (batch, length) array of token ids in the model's vocabulary (the
    backbones' own input check, `check_input_ids`, as a ConversionError naming the file)."""
    vocab = next(m.num_embeddings for m in model.modules() if isinstance(m, torch.nn.Embedding))
    try:
        return check_input_ids(ids, vocab, str(path)).long()
    except (TypeError, ValueError) as e:
        raise ConversionError(str(e)) from None


# ---------------------------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dnax.convert", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_load = sub.add_parser("load", help="convert a reference run folder to dnax format")
    p_load.add_argument("run_dir", help="run folder, .ckpt, HF Caduceus folder or released name")
    p_load.add_argument("--out", required=True, help="output directory (model.safetensors + config.json)")
    p_load.add_argument("--model-config", default=None,
                        help="the run's model_config.json (default: found beside the checkpoint)")
    p_check = sub.add_parser("check", help="run one conformance case")
    p_check.add_argument("case_dir")
    p_check.add_argument("--tolerance", type=float, default=None,
                         help=f"largest max abs difference that passes (default: the case.json's, else "
                              f"{DEFAULT_TOLERANCE:g})")
    p_get = sub.add_parser("download", help="fetch a released reference run (" + ", ".join(KNOWN_RELEASES)
                           + ", ...) or a hub repository hf://owner/name")
    p_get.add_argument("name")
    p_get.add_argument("--dir", default=None, help="default: <dnax cache>/reference_checkpoints (hub: the hub cache)")
    p_get.add_argument("--base-url", default=None, help=f"default: $DNAX_REFERENCE_URL, else {RELEASE_URL}")
    p_get.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "download":
            if args.name.startswith(HF_PREFIX):
                run = download_hf(args.name[len(HF_PREFIX):])
            else:
                run = download_release(args.name, args.dir, base_url=args.base_url, progress=not args.no_progress)
            print(f"ok {run}")
            return 0
        if args.cmd == "load":
            model = load_reference(args.run_dir, model_config=args.model_config)
            out = save_pretrained(model, args.out)
            n = sum(p.numel() for p in model.parameters())
            print(f"saved {type(model).__name__} ({n} parameters) to {out}")
            return 0
        r = check_case(args.case_dir, tolerance=args.tolerance)
        verdict = "PASS" if r["passed"] else "FAIL"
        print(f"{Path(args.case_dir).name}: logits max abs diff {r['logits']:.3g}, "
              f"hidden_states max abs diff {r['hidden_states']:.3g}, tolerance {r['tolerance']:g}: {verdict}")
        return 0 if r["passed"] else 1
    except NotImplementedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except (ConversionError, DownloadError, OSError) as e:
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
