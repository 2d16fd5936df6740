"""Save and load dnax backbones in a self-describing directory: `model.safetensors` + `config.json`.

`config.json` holds the backbone's class import path and the keyword arguments it was constructed with:

    {"format": "dnax-pretrained", "version": 1, "class": "dnax.models.backbones.xlstm.XLSTMLM", "kwargs": {...}}

A backbone exposes the keyword arguments it was constructed with as `init_kwargs` (a dict of plain values);
every dnax backbone records them in its `__init__`, so models built by fiddle configs, `from_reference_config` or
`from_pretrained` can all be saved.

Writes are atomic: everything goes to a temporary sibling directory first, which is then renamed into place.
Shared/tied tensors are handled by `safetensors.torch.save_model` / `load_model` (they de-duplicate shared storage).
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model
from torch import nn

from dnax.atomic import current_umask

#: format 2: XLSTMLM's `s_rc_head_flip` (a class whose kwargs changed meaning upgrades older ones with its
#: `upgrade_init_kwargs(kwargs, version)`)
FORMAT, VERSION = "dnax-pretrained", 2
WEIGHTS, CONFIG = "model.safetensors", "config.json"


def init_kwargs(model: nn.Module) -> dict[str, Any]:
    """The constructor kwargs a backbone recorded as `init_kwargs`."""
    kwargs = getattr(model, "init_kwargs", None)
    if not isinstance(kwargs, dict):
        raise ValueError(f"{type(model).__name__} does not record its constructor arguments (`init_kwargs`); "
                         "save the backbone (e.g. `lm.backbone`), not the Composer model")
    return dict(kwargs)


# ---------------------------------------------------------------------------------------------- JSON encoding

def _encode(v: Any, where: str) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_encode(x, where) for x in v]
    if isinstance(v, dict):
        if all(isinstance(k, str) for k in v):
            return {k: _encode(x, where) for k, x in v.items()}
        return {"__items__": [[_encode(k, where), _encode(x, where)] for k, x in v.items()]}
    raise TypeError(f"constructor kwarg {where!r} of type {type(v).__name__} cannot be stored in config.json")


def _decode(v: Any) -> Any:
    if isinstance(v, list):
        return [_decode(x) for x in v]
    if isinstance(v, dict):
        if set(v) == {"__items__"}:
            return {_decode(k): _decode(x) for k, x in v["__items__"]}
        return {k: _decode(x) for k, x in v.items()}
    return v


# ---------------------------------------------------------------------------------------------- save / load

def save_pretrained(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write `directory/model.safetensors` and `directory/config.json` atomically, replacing an earlier
    `save_pretrained` directory there; anything else at `directory` (a file, a folder with other contents, an
    earlier output beside files of yours) is refused with FileExistsError, never deleted. A `torch.compile`d
    backbone is saved as the module it compiled."""
    model = getattr(model, "_orig_mod", model)  # torch.compile's OptimizedModule wraps the backbone
    directory = Path(directory)
    if directory.exists() and not is_pretrained_dir(directory) and not (
            directory.is_dir() and not any(directory.iterdir())):
        raise FileExistsError(f"{directory}: exists and is not a dnax pretrained directory; not replacing it "
                              "(choose another path, or remove it first)")
    extra = sorted(p.name for p in directory.iterdir() if p.name not in (WEIGHTS, CONFIG)) if directory.is_dir() else []
    if extra:
        raise FileExistsError(f"{directory}: an earlier output, but it also holds {', '.join(extra[:3])}"
                              f"{', ...' if len(extra) > 3 else ''}; not replacing it (move them, or choose another "
                              "path)")
    cls = type(model)
    config = {"format": FORMAT, "version": VERSION, "class": f"{cls.__module__}.{cls.__qualname__}",
              "kwargs": {k: _encode(v, k) for k, v in init_kwargs(model).items()}}
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    umask = current_umask()
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the result should look like a plain mkdir
    try:
        save_model(model, str(tmp / WEIGHTS), metadata={"format": "pt"})
        os.chmod(tmp / WEIGHTS, 0o666 & ~umask)  # as config.json
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        _replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _replace_dir(new: Path, directory: Path) -> None:
    """Rename `new` to `directory`; an earlier `directory` is moved aside first and put back if the rename fails."""
    if not directory.exists():
        os.replace(new, directory)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=directory.parent))
    try:
        os.replace(directory, old / "d")
    except BaseException:
        old.rmdir()
        raise
    try:
        os.replace(new, directory)
    except BaseException:
        os.replace(old / "d", directory)
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


def _import(path: str) -> type:
    module, _, name = path.rpartition(".")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def is_pretrained_dir(path: str | os.PathLike) -> bool:
    """True where `path` holds a `save_pretrained` directory (a Hugging Face folder has the same two file names)."""
    cfg_path = Path(path) / CONFIG
    if not (cfg_path.is_file() and (Path(path) / WEIGHTS).is_file()):
        return False
    return _declares_format(cfg_path)


def _declares_format(cfg_path: Path) -> bool:
    try:
        return json.loads(cfg_path.read_text()).get("format") == FORMAT
    except (ValueError, AttributeError, OSError):  # not JSON, not UTF-8, not an object, unreadable
        return False


def declares_pretrained(path: str | os.PathLike) -> bool:
    """True where `path/config.json` says it is a `save_pretrained` directory, whether or not its weights are there
    (`from_pretrained` then names what is missing)."""
    return _declares_format(Path(path) / CONFIG)


def from_pretrained(directory: str | os.PathLike, map_location: str | torch.device = "cpu",
                    dtype: torch.dtype | str | None = None, trust_code: bool = False, **overrides: Any) -> nn.Module:
    """Rebuild the backbone saved by `save_pretrained` (kwargs from config.json, `overrides` replace some, e.g.
    `m_backend="auto"`) and load its weights strictly. Returns it in eval mode.

    dtype: None (default) loads floating-point weights in fp32, what training wants (master weights; bf16 runs
    under autocast); a floating torch dtype (or its name, "bfloat16") casts them all; "auto" keeps each tensor's
    saved dtype, so a model saved in bf16 comes back in bf16 (and a mixed one mixed).
    trust_code: import the class config.json names even outside the `dnax` package (importing a module runs its
    code: only for directories you trust)."""
    device = torch.device(map_location)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"from_pretrained: map_location {str(map_location)!r}, but CUDA is not available here")
    dtype = _checked_dtype(dtype)
    model = pretrained_backbone(directory, trust_code=trust_code, **overrides)
    cls, w_path = type(model), Path(directory) / WEIGHTS
    try:
        saved = _saved_dtypes(w_path)
        tensors = dict([*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)])
        wrong = [n for n, d in saved.items() if n in tensors and tensors[n].is_floating_point()
                 and d not in _SAFETENSORS_DTYPES]
        if wrong:  # load_model would cast e.g. an int32 tensor into a float parameter without a word
            raise ValueError(f"{w_path}: {wrong[0]} is stored as {saved[wrong[0]]}, not a floating-point dtype "
                             f"({len(wrong)} such tensors); save it again")
        if dtype == "auto":
            _to_saved_dtypes(tensors, saved)
        elif dtype is not None:
            model.to(dtype)
        load_model(model, str(w_path), strict=True, device=str(device))  # raises on any mismatch
    except SafetensorError as e:
        raise ValueError(f"{w_path}: not a readable safetensors file ({_one_line(e)}); save it again") from None
    except RuntimeError as e:  # missing / unexpected / mis-shaped keys: the weights are not this config's model
        raise RuntimeError(f"{w_path}: does not fit {cls.__name__} as config.json describes it: "
                           f"{_one_line(e)}") from None
    return model.eval()


def _one_line(e: BaseException, limit: int = 600) -> str:
    """An exception's message on one line (torch's load_state_dict report spans many), cut at `limit` characters."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def _checked_dtype(dtype: torch.dtype | str | None) -> torch.dtype | str | None:
    if dtype is None or dtype == "auto":
        return dtype
    resolved = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(f"from_pretrained: dtype {dtype!r} is not a floating-point torch dtype (or 'auto', None)")
    return resolved


def _saved_dtypes(weights: Path) -> dict[str, str]:
    """The safetensors dtype name ("F32", "BF16", "I64", ...) of each tensor in `weights` (no data read)."""
    with safe_open(str(weights), framework="pt") as f:
        return {name: f.get_slice(name).get_dtype() for name in f.keys()}


def _to_saved_dtypes(tensors: dict[str, torch.Tensor], saved: dict[str, str]) -> None:
    """Cast each floating parameter / buffer (`tensors`: the model's, by every name, tied ones included) to the
    dtype its tensor has in the weights file (`saved`: `_saved_dtypes`; tied tensors are stored under one name)."""
    for name, tensor in tensors.items():
        if name in saved and tensor.is_floating_point():
            tensor.data = tensor.data.to(_SAFETENSORS_DTYPES.get(saved[name], tensor.dtype))


_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def pretrained_backbone(directory: str | os.PathLike, trust_code: bool = False, **overrides: Any) -> nn.Module:
    """The backbone a `save_pretrained` directory describes, freshly initialised (no weights read): its recorded
    constructor arguments, `overrides` replacing some. A config.json whose arguments do not build the class raises
    ValueError naming the file."""
    cls, kwargs = pretrained_spec(directory, trust_code=trust_code)
    kwargs.update(overrides)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, KeyError, AttributeError, NotImplementedError) as e:
        raise ValueError(f"{Path(directory) / CONFIG}: its kwargs do not build {cls.__name__}: "
                         f"{_one_line(e)}") from e


def pretrained_spec(directory: str | os.PathLike, trust_code: bool = False) -> tuple[type, dict[str, Any]]:
    """The backbone class and constructor arguments a `save_pretrained` directory records (no weights read). A class
    outside the `dnax` package is refused before anything is imported unless `trust_code`."""
    directory = Path(directory)
    if directory.is_file():
        raise NotADirectoryError(f"{directory}: a file; give the directory that save_pretrained wrote")
    cfg_path, w_path = directory / CONFIG, directory / WEIGHTS
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: missing (not a dnax pretrained directory)")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{cfg_path}: not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{cfg_path}: not a dnax pretrained config (format {found!r})")
    version = config.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{cfg_path}: format version {version!r} is not an integer")
    if version > VERSION:
        raise ValueError(f"{cfg_path}: format version {version}, this dnax reads up to {VERSION} "
                         "(written by a newer dnax?)")
    name, kwargs = config.get("class"), config.get("kwargs")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cfg_path}: 'class' must be an import path string, got {name!r}")
    if not (trust_code or name.startswith("dnax.")):
        raise ValueError(f"{cfg_path}: class {name!r} is outside dnax; importing it would run its module's code "
                         "(pass trust_code=True to from_pretrained if you trust this directory)")
    try:
        cls = _import(name)
    except (TypeError, ValueError, ImportError, AttributeError) as e:
        raise ValueError(f"{cfg_path}: class {name!r} cannot be imported ({e})") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):  # never call an arbitrary callable from a file
        raise ValueError(f"{cfg_path}: class {name!r} is not a torch.nn.Module subclass; not calling it")
    if not isinstance(kwargs, dict):
        raise ValueError(f"{cfg_path}: 'kwargs' must be a JSON object, got {type(kwargs).__name__}")
    kwargs = _decode(kwargs)
    if version < VERSION and hasattr(cls, "upgrade_init_kwargs"):
        kwargs = cls.upgrade_init_kwargs(kwargs, version)
    return cls, kwargs
