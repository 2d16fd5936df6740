"""`SequenceClassifier`: a Composer model for whole-sequence classification on top of any dnax backbone.

    backbone.hidden_states(input_ids) (B, L, d)  ->  pool over length (B, d)  ->  Linear(d, num_classes)

The reference equivalent is DNA-xLSTM/Caduceus `DNAEmbeddingModel*` + `SequenceDecoder(mode="pool", l_output=0)`.
Differences, on purpose:
- pooling averages the real (non-[PAD]) tokens by default; the reference averages every position, padding
  included (`pooling="mean_with_padding"` reproduces it), so its prediction depends on how much padding a batch
  has. `pooling="last"` takes the last real token (causal models; the loaders pad on the left).
- post-hoc conjoining (`rc_mode="ph"`) re-pads the reverse complement on the left instead of flipping the padding
  to the right, so both strands are scored with the same padding layout.

Reverse-complement modes (`rc_mode`):
- "none": the forward strand only.
- "ph" (post hoc): train on the strand the loader gives (turn on the loader's `rc_aug`); at evaluation the logits
  of a sequence and of its reverse complement are averaged (the reference's `conjoin_test`).
- "ps" (parameter sharing): for an RCPS backbone, whose hidden state is `[fwd half, RC half]` with the RC half
  flipped along length and channels. Both halves are pooled over the real tokens (the RC half's channels flipped
  back) and classified by the same head, and the logits averaged (the reference's `conjoin_train` decoder), so the
  prediction is exactly invariant to reverse-complementing the input.

A backbone that maps a whole sequence to one vector (the Genomic Benchmarks CNN) exposes
`sequence_features(input_ids) -> (B, d_output)` instead; pooling is then skipped.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from composer.models import ComposerModel
from torch import nn

from dnax import tokenizer as tk
from dnax.models.classification_metrics import Accuracy, classification_metrics

Pooling = Literal["mean", "mean_with_padding", "last"]
RCMode = Literal["none", "ph", "ps"]


def reverse_complement_real(input_ids: torch.Tensor, pad_id: int = tk.PAD) -> torch.Tensor:
    """Reverse-complement the real tokens of each row, keeping the [PAD] positions where they are
    (a left-padded row stays left-padded)."""
    real = input_ids != pad_id
    flipped = tk.reverse_complement(input_ids)
    out = torch.full_like(input_ids, pad_id)
    out[real] = flipped[real.flip(-1)]  # the same count per row, taken and placed in row-major order
    return out


def pool(hidden: torch.Tensor, real: torch.Tensor, pooling: Pooling, *, first: bool = False) -> torch.Tensor:
    """(B, L, d) -> (B, d). `real`: (B, L) bool, True at real tokens. `first=True` with "last" takes the first
    real token (the last one read by the RC strand)."""
    if pooling == "mean_with_padding":
        return hidden.mean(1)
    if pooling == "mean":
        weights = real.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1)
    if pooling == "last":
        positions = torch.arange(real.shape[1], device=real.device).expand_as(real)
        if first:
            idx = torch.where(real, positions, real.shape[1]).amin(1).clamp_max(real.shape[1] - 1)
        else:
            idx = torch.where(real, positions, -1).amax(1).clamp_min(0)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]
    raise ValueError(f"unknown pooling {pooling!r}: expected 'mean', 'mean_with_padding' or 'last'")


class SequenceClassifier(ComposerModel):
    """Classify whole sequences (batches `{"input_ids": (B, L) long, "labels": (B,) long}`).

    Args:
        backbone: a dnax backbone with `hidden_states(input_ids)` and `d_model` (or `sequence_features` and
            `d_output`, see the module docstring).
        num_classes: number of labels.
        pooling: "mean" (real tokens), "mean_with_padding" (the reference), "last" (last real token).
        rc_mode: "none", "ph" or "ps" (module docstring). "ps" needs a backbone with `rcps=True`; an RCPS backbone
            needs "ps".
        freeze_backbone: train the head only (backbone weights fixed, backbone kept in eval mode).
        pretrained: load the backbone weights from a dnax pretraining run / checkpoint, a `dnax.pretrained`
            directory or a reference run (see `load_backbone_weights`) before training.
        pad_id: the padding token id.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, *, pooling: Pooling = "mean",
                 rc_mode: RCMode = "none", freeze_backbone: bool = False,
                 pretrained: str | os.PathLike | None = None, pad_id: int = tk.PAD):
        super().__init__()
        if pooling not in ("mean", "mean_with_padding", "last"):
            raise ValueError(f"unknown pooling {pooling!r}: expected 'mean', 'mean_with_padding' or 'last'")
        if rc_mode not in ("none", "ph", "ps"):
            raise ValueError(f"unknown rc_mode {rc_mode!r}: expected 'none', 'ph' or 'ps'")
        rcps = bool(getattr(backbone, "rcps", False))
        if rcps != (rc_mode == "ps"):
            raise ValueError("rc_mode='ps' needs an RCPS backbone (rcps=True) and an RCPS backbone needs rc_mode='ps'"
                             f"; got rc_mode={rc_mode!r} with rcps={rcps}")
        self.backbone = backbone
        self.num_classes, self.pooling, self.rc_mode, self.pad_id = num_classes, pooling, rc_mode, pad_id
        self.freeze_backbone = freeze_backbone
        self.pooled_backbone = hasattr(backbone, "sequence_features")
        d = getattr(backbone, "d_output", None) if self.pooled_backbone else getattr(backbone, "d_model", None)
        if not isinstance(d, int):
            raise ValueError(f"{type(backbone).__name__} exposes no feature size (`d_model`, or `d_output` with "
                             "`sequence_features`)")
        self.head = nn.Linear(d, num_classes)
        if pretrained is not None:
            load_backbone_weights(backbone, pretrained)
        if freeze_backbone:
            for p in backbone.parameters():
                p.requires_grad_(False)
        lm_head = getattr(backbone, "lm_head", None)
        if isinstance(lm_head, nn.Module):  # unused here; without a gradient it would get no optimizer state and
            for p in lm_head.parameters():  # a resumed run (autoresume) would fail to load the optimizer
                p.requires_grad_(False)
        self.train_metrics = {"Accuracy": Accuracy(num_classes)}
        self.eval_metrics = classification_metrics(num_classes)

    def train(self, mode: bool = True) -> "SequenceClassifier":
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()  # fixed features: no dropout, BatchNorm statistics left as loaded
        return self

    # ------------------------------------------------------------------ forward

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, num_classes) logits of the given strand (PS: of both strands, averaged)."""
        if self.pooled_backbone:
            return self.head(self.backbone.sequence_features(input_ids))
        hidden = self.backbone.hidden_states(input_ids)
        real = input_ids != self.pad_id
        if self.rc_mode != "ps":
            return self.head(pool(hidden, real, self.pooling))
        d = hidden.shape[-1] // 2
        fwd = pool(hidden[..., :d], real, self.pooling)
        # the RC half is aligned with the forward positions and channel-flipped: pool, then flip channels back
        rc = pool(hidden[..., d:], real, self.pooling, first=True).flip(-1)
        return (self.head(fwd) + self.head(rc)) / 2

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        input_ids = batch["input_ids"]
        logits = self.logits(input_ids)
        if self.rc_mode == "ph" and not self.training:
            logits = (logits + self.logits(reverse_complement_real(input_ids, self.pad_id))) / 2
        return logits.float()

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return F.cross_entropy(outputs, batch["labels"])

    def eval_forward(self, batch: dict[str, Any], outputs: Any | None = None) -> torch.Tensor:
        return outputs if outputs is not None else self.forward(batch)

    def get_metrics(self, is_train: bool = False) -> dict:
        return self.train_metrics if is_train else self.eval_metrics

    def update_metric(self, batch: dict[str, Any], outputs: torch.Tensor, metric) -> None:
        metric.update(outputs, batch["labels"])


# ---------------------------------------------------------------------------------------------- loading weights

#: constructor kwargs that change how a backbone runs, not what its weights mean (or, for `complement_map`, that
#: travel with the weights as a buffer)
RUNTIME_KWARGS = frozenset({"m_backend", "s_backend", "gradient_checkpointing", "max_length", "dropout",
                            "complement_map", "pad_vocab_size_multiple"})


def _composer_checkpoint(path: Path) -> Path | None:
    """The checkpoint file of a Composer run directory / checkpoints folder / file, if `path` is one."""
    for candidate in (path, path / "latest-rank0.pt", path / "checkpoints" / "latest-rank0.pt"):
        if candidate.is_file() and candidate.suffix == ".pt":
            return candidate
    return None


def backbone_state_dict(source: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None, str]:
    """(backbone state dict, the backbone's constructor kwargs if recorded, a description) from `source`:

    - a dnax pretraining run directory, its `checkpoints/` folder or a Composer checkpoint `.pt` (the
      `DnaLM` weights `state.model` with keys `backbone.*`);
    - a `dnax.pretrained` directory (`config.json` + `model.safetensors`);
    - a reference run or release folder, a `.ckpt` file, or a Hugging Face Caduceus folder (see `dnax.convert`).
    """
    from dnax.convert import ConversionError, SourceNotFoundError, is_reference_source, load_reference
    from dnax.pretrained import from_pretrained, is_pretrained_dir

    path = Path(source)
    if not path.exists():
        raise SourceNotFoundError(f"pretrained backbone {str(path)!r}: no such file or directory")
    if is_pretrained_dir(path):
        model = from_pretrained(path)  # rebuilds tied / shared tensors that the file stores once
        return model.state_dict(), getattr(model, "init_kwargs", None), f"dnax pretrained {path}"
    ckpt = _composer_checkpoint(path)
    if ckpt is not None:
        from dnax.reference_checkpoint import load_checkpoint_tensors

        state = load_checkpoint_tensors(ckpt)  # only its tensors: nothing in the pickle is imported or called
        try:
            model = state["state"]["model"]
        except (KeyError, TypeError):
            raise ValueError(f"{ckpt}: not a Composer checkpoint (no state.model)") from None
        sd = {k[len("backbone."):]: v for k, v in model.items() if k.startswith("backbone.")}
        if not sd:
            raise ConversionError(f"{ckpt}: the checkpoint's model has no `backbone.*` weights")
        return sd, None, f"Composer checkpoint {ckpt}"
    if is_reference_source(path):
        model = load_reference(path)
        return model.state_dict(), getattr(model, "init_kwargs", None), f"reference run {path}"
    raise ConversionError(f"pretrained backbone {str(path)!r}: not a dnax run / Composer checkpoint, dnax "
                          "pretrained directory or reference run")


def load_backbone_weights(backbone: nn.Module, source: str | os.PathLike) -> None:
    """Load `source`'s backbone weights into `backbone` strictly (every key, every shape). Where the source
    records its constructor kwargs, those that change the architecture must match `backbone.init_kwargs`."""
    from dnax.convert import ConversionError, load_weights_checked

    sd, kwargs, what = backbone_state_dict(source)
    own = getattr(backbone, "init_kwargs", None)
    if kwargs is not None and isinstance(own, dict):
        differ = sorted(k for k in set(kwargs) | set(own) if k not in RUNTIME_KWARGS and
                        _plain(kwargs.get(k)) != _plain(own.get(k)))
        if differ:
            raise ConversionError(f"{what}: backbone configuration differs from the model's in "
                                  + ", ".join(f"{k} ({kwargs.get(k)!r} vs {own.get(k)!r})" for k in differ))
    load_weights_checked(backbone, sd, source=what)


def _plain(v: Any) -> Any:
    """Compare kwargs as their JSON form (tuples as lists, int dict keys as in `dnax.pretrained`)."""
    from dnax.pretrained import _decode, _encode

    return _decode(_encode(v, "kwarg"))
