"""Read the reference's released checkpoints (PyTorch-Lightning 1.8.6 `.ckpt`, DNA-xLSTM / Caduceus layout).

Their `hyper_parameters` is a pickled omegaconf `DictConfig`, so `torch.load(weights_only=True)` refuses them, and a
plain `weights_only=False` load would import and call whatever the pickle names (a checkpoint from an untrusted
mirror could run any code). This reader resolves only the globals that rebuild tensors and plain containers; every
other global (omegaconf's classes, `typing.Any`, anything else) becomes an inert placeholder that is never imported
or called. It returns only the tensors of the `state_dict`. Composer checkpoints (`.pt`, fine-tuning from a dnax
pretraining run) are read the same way (`load_checkpoint_tensors`).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

#: globals a checkpoint's tensors and containers are rebuilt from (pickle protocol 2 names `builtins` `__builtin__`)
_REAL_GLOBALS = {
    ("collections", "OrderedDict"), ("torch", "Size"),
    *((mod, name) for mod in ("builtins", "__builtin__")
      for name in ("dict", "list", "tuple", "set", "frozenset", "int", "long", "float", "complex", "bool", "str")),
    *(("torch._utils", name) for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3",
                                           "_rebuild_parameter", "_rebuild_parameter_with_state")),
}


class _Inert:
    """Stands in for any global the reader does not resolve: takes any arguments and state, does nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass

    def add(self, item):
        pass


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _REAL_GLOBALS or (module == "torch" and isinstance(vars(torch).get(name), torch.dtype)):
            return super().find_class(module, name)
        return _Inert


class _PickleModule:
    """What `torch.load` unpickles with: the restricted Unpickler, also for the legacy (non-zip) format's header
    records, which torch reads with `pickle_module.load`."""
    Unpickler = _RestrictedUnpickler

    @staticmethod
    def load(file, **kwargs):
        return _RestrictedUnpickler(file, **kwargs).load()


def load_checkpoint_tensors(path: str | Path) -> object:
    """`torch.load` of a pickled checkpoint (Lightning `.ckpt`, Composer `.pt`) that resolves only the globals of
    tensors and plain containers: other objects in it come back as inert placeholders, and nothing it names is
    imported or called."""
    return torch.load(Path(path), map_location="cpu", pickle_module=_PickleModule, weights_only=False)


def load_lightning_state_dict(path: str | Path, strip_prefix: str = "") -> dict[str, torch.Tensor]:
    """The `state_dict` of a reference Lightning checkpoint, with `strip_prefix` removed from every key.

    Raises ValueError (naming the file) if a key lacks the prefix or the file has no state_dict.
    """
    ckpt = load_checkpoint_tensors(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    sd = ckpt["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: 'state_dict' is not a mapping of names to tensors")
    untensored = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if untensored:
        raise ValueError(f"{path}: state_dict entry {untensored[0]!r} is not a tensor")
    bad = [k for k in sd if not k.startswith(strip_prefix)]
    if bad:
        raise ValueError(f"{path}: keys without prefix {strip_prefix!r}, e.g. {bad[0]!r}")
    return {k[len(strip_prefix):]: v for k, v in sd.items()}
