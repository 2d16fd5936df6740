"""`DnaLM`: a Composer model around any backbone that maps token ids to logits, trained with an injected objective.

The backbone owns its embedding and LM head (`backbone(input_ids) -> logits`, `backbone.hidden_states(input_ids)`),
because their layout differs per family (RCPS embeddings and heads, padded vocabularies, tied weights) and must
match the reference's parameter names: `DnaLM.state_dict()` keys are `backbone.` + the backbone's keys, which equal
the reference LightningModule keys with their leading `model.` removed.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Literal, NamedTuple

import torch
import torch.nn.functional as F
from composer.metrics.nlp import LanguageCrossEntropy, MaskedAccuracy
from composer.models import ComposerModel
from torch import nn

from dnax.models.metrics import MLMBaselines
from dnax.models.objectives import IGNORE_INDEX


class LMOutput(NamedTuple):
    logits: torch.Tensor   # (B, L, V)
    inputs: torch.Tensor   # (B, L) what the backbone saw (masked / shifted)
    targets: torch.Tensor  # (B, L) IGNORE_INDEX where not scored


class DnaLM(ComposerModel):
    """Masked or causal DNA language model.

    Args:
        backbone: `nn.Module` with `forward(input_ids) -> logits (B, L, V)`.
        objective: callable `(batch, training) -> (inputs, targets)`, e.g. `MaskedLM()` or `CausalLM()`.
        autocast_dtype: run the forward under `torch.autocast` with this dtype on any device (for bf16 on CPU;
            on GPU prefer Composer's `precision='amp_bf16'`).
    """

    def __init__(self, backbone: nn.Module, objective: Callable[..., tuple[torch.Tensor, torch.Tensor]],
                 autocast_dtype: Literal["bfloat16", "float16"] | None = None):
        super().__init__()
        if not callable(objective):
            raise TypeError(f"DnaLM: objective must be callable, e.g. dnax.models.objectives.MaskedLM() or CausalLM(), "
                            f"got {objective!r}")
        self.backbone = backbone
        self.objective = objective
        self.autocast_dtype = autocast_dtype
        self.train_metrics = {"LanguageCrossEntropy": LanguageCrossEntropy(ignore_index=IGNORE_INDEX)}
        self.eval_metrics = {
            "LanguageCrossEntropy": LanguageCrossEntropy(ignore_index=IGNORE_INDEX),
            "MaskedAccuracy": MaskedAccuracy(ignore_index=IGNORE_INDEX),
        }
        if not getattr(objective, "causal", False):
            rates = dict(keep_prob=1.0 - objective.mask_prob - objective.random_prob,
                         random_prob=objective.random_prob, n_random_choices=objective.n_random_choices)
            self.eval_metrics["BaselineOrder0"] = MLMBaselines("order0", **rates)
            self.eval_metrics["BaselineOrder0Copy"] = MLMBaselines("order0_copy", **rates)

    def _autocast(self, device_type: str):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device_type, dtype=getattr(torch, self.autocast_dtype))

    def forward(self, batch: dict[str, Any]) -> LMOutput:
        inputs, targets = self.objective(batch, self.training)
        with self._autocast(inputs.device.type):
            logits = self.backbone(inputs)
        return LMOutput(logits.float(), inputs, targets.long())  # cross-entropy takes int64 targets only

    def loss(self, outputs: LMOutput, batch: Any) -> torch.Tensor:
        """Mean cross-entropy over the scored positions of the *global* batch: with several processes the local sum
        is divided by the global count / world size, so the averaged loss and gradients equal one process's on the
        whole batch (MLM windows have different numbers of masked positions; a mean of per-process means would
        weight them unequally)."""
        logits, targets = outputs.logits, outputs.targets.reshape(-1)
        total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets, ignore_index=IGNORE_INDEX,
                                reduction="sum")
        count = (targets != IGNORE_INDEX).sum().to(total.dtype)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
            if world > 1:
                count = count.detach().clone()
                torch.distributed.all_reduce(count)
                count = count / world
        return total / count.clamp(min=1)

    def eval_forward(self, batch: Any, outputs: Any | None = None) -> LMOutput:
        return outputs if outputs is not None else self.forward(batch)

    def get_metrics(self, is_train: bool = False) -> dict:
        return self.train_metrics if is_train else self.eval_metrics

    def update_metric(self, batch: Any, outputs: LMOutput, metric) -> None:
        if isinstance(metric, MLMBaselines):
            metric.update(outputs.inputs, outputs.targets)
        else:
            metric.update(outputs.logits, outputs.targets)
