"""Read the reference's released checkpoints (PyTorch-Lightning 1.8.6 `.ckpt`, DNA-xLSTM / Caduceus layout).

Their `hyper_parameters` is a pickled omegaconf `DictConfig`, so `torch.load(weights_only=True)` refuses them and a
plain `weights_only=False` load needs omegaconf installed. This reader maps every `omegaconf.*` global to an inert
stub and returns only the tensors.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch


class _OmegaconfStub:
    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state


class _TolerantUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module.split(".")[0] == "omegaconf":
            return _OmegaconfStub
        return super().find_class(module, name)


class _PickleModule:
    Unpickler = _TolerantUnpickler
    load = pickle.load


def load_lightning_state_dict(path: str | Path, strip_prefix: str = "") -> dict[str, torch.Tensor]:
    """The `state_dict` of a reference Lightning checkpoint, with `strip_prefix` removed from every key.

    Raises ValueError (naming the file) if a key lacks the prefix or the file has no state_dict.
    """
    ckpt = torch.load(Path(path), map_location="cpu", pickle_module=_PickleModule, weights_only=False)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    sd = ckpt["state_dict"]
    bad = [k for k in sd if not k.startswith(strip_prefix)]
    if bad:
        raise ValueError(f"{path}: keys without prefix {strip_prefix!r}, e.g. {bad[0]!r}")
    return {k[len(strip_prefix):]: v for k, v in sd.items()}
