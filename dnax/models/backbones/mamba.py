"""Causal Mamba language model, parameter-for-parameter `mamba_ssm.models.mixer_seq_simple.MambaLMHeadModel`.

`state_dict()` keys are the reference's (the Lightning checkpoint keys without `model.`):

    backbone.embedding.weight              (Vp, D)   Vp = vocab_size padded to a multiple of pad_vocab_size_multiple
    backbone.layers.<i>.norm.weight        (D,)      RMSNorm (LayerNorm: + .bias)
    backbone.layers.<i>.mixer.*            Mamba (v1) mixer, dnax.models.layers.mamba
    backbone.norm_f.weight                 (D,)
    lm_head.weight                         (Vp, D)   tied to the embedding (one storage) when tie_embeddings

Blocks are the reference's add -> norm -> mixer ordering: `residual = h + residual; h = mixer(norm(residual))`,
final `norm_f(h + residual)`. `fused_add_norm` only selects the reference's fused Triton kernel for the same
arithmetic and is accepted for config compatibility. The constructor draws the reference's random numbers in the
reference's order (MixerModel init, then the LM init again, then the tie), so a seed gives the reference's weights.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dnax.models.input_ids import check_input_ids
from dnax.models.layers.mamba import Mamba, RMSNorm, mamba2_mixer, mamba_lm_init_, reset_module_parameters_


def padded_vocab_size(vocab_size: int, multiple: int) -> int:
    """`vocab_size` rounded up to a multiple of `multiple` (the reference's padding)."""
    return vocab_size + (-vocab_size) % multiple


def make_norm(d_model: int, rms_norm: bool, eps: float) -> nn.Module:
    return RMSNorm(d_model, eps=eps) if rms_norm else nn.LayerNorm(d_model, eps=eps)


def make_mixer(d_model: int, ssm_cfg: dict[str, Any] | None, layer_idx: int) -> nn.Module:
    """A Mamba (v1) mixer from a reference `ssm_cfg`; `ssm_cfg["layer"] == "Mamba2"` gives a Mamba2 mixer."""
    cfg = dict(ssm_cfg or {})
    layer = cfg.pop("layer", "Mamba1")
    if layer == "Mamba2":
        return mamba2_mixer(d_model, layer_idx=layer_idx, **cfg)
    if layer != "Mamba1":
        raise ValueError(f"ssm_cfg.layer must be 'Mamba1' or 'Mamba2', got {layer!r}")
    return Mamba(d_model, layer_idx=layer_idx, **cfg)


class MambaBlock(nn.Module):
    """mamba_ssm `Block` without MLP: (h, residual) -> (mixer(norm(h + residual)), h + residual)."""

    def __init__(self, norm: nn.Module, mixer: nn.Module, residual_in_fp32: bool = False):
        super().__init__()
        self.norm, self.mixer = norm, mixer
        self.residual_in_fp32 = residual_in_fp32

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor | None = None):
        residual = hidden_states if residual is None else hidden_states + residual
        hidden_states = self.norm(residual.to(self.norm.weight.dtype))
        if self.residual_in_fp32:
            residual = residual.float()
        return self.mixer(hidden_states), residual


class MixerModel(nn.Module):
    """embedding -> MambaBlocks -> add + norm_f; `forward(ids) -> (B, L, D)`."""

    def __init__(self, d_model: int, n_layer: int, vocab_size: int, ssm_cfg: dict | None, rms_norm: bool,
                 norm_epsilon: float, residual_in_fp32: bool):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.layers = nn.ModuleList(
            MambaBlock(make_norm(d_model, rms_norm, norm_epsilon), make_mixer(d_model, ssm_cfg, i), residual_in_fp32)
            for i in range(n_layer))
        self.norm_f = make_norm(d_model, rms_norm, norm_epsilon)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden, residual = self.embedding(input_ids), None
        for layer in self.layers:
            hidden, residual = layer(hidden, residual)
        residual = hidden if residual is None else hidden + residual
        return self.norm_f(residual.to(self.norm_f.weight.dtype))


class MambaLM(nn.Module):
    """Causal Mamba LM (`MambaLMHeadModel`): token ids (B, L) -> logits (B, L, Vp). Reference config names:
    `MambaConfig` fields plus `initializer_cfg`; `ssm_cfg` holds the mixer's keyword arguments."""

    def __init__(
        self,
        d_model: int = 128,
        n_layer: int = 4,
        vocab_size: int = 12,
        pad_vocab_size_multiple: int = 8,
        max_length: int = 1024,  # recorded for the recipes; the model itself has no length limit
        ssm_cfg: dict[str, Any] | None = None,
        rms_norm: bool = True,
        residual_in_fp32: bool = False,
        fused_add_norm: bool = True,  # the reference's kernel switch: same arithmetic
        norm_epsilon: float = 1e-5,
        initializer_cfg: dict[str, Any] | None = None,
        tie_embeddings: bool = True,
    ):
        init_kwargs = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__()
        if n_layer < 1:
            raise ValueError(f"{type(self).__name__}: n_layer must be >= 1, got {n_layer}")
        #: the constructor arguments, for `dnax.pretrained.save_pretrained`
        self.init_kwargs = init_kwargs
        self.d_model, self.n_layer, self.max_length = d_model, n_layer, max_length
        self.vocab_size = padded_vocab_size(vocab_size, pad_vocab_size_multiple)
        self.tie_embeddings = tie_embeddings
        self._init_cfg = dict(initializer_cfg or {})
        self.backbone = MixerModel(d_model, n_layer, self.vocab_size, ssm_cfg, rms_norm, norm_epsilon,
                                   residual_in_fp32)
        mamba_lm_init_(self.backbone, n_layer, **self._init_cfg)
        self.lm_head = nn.Linear(d_model, self.vocab_size, bias=False)
        mamba_lm_init_(self, n_layer, **self._init_cfg)
        self.tie_weights()

    def tie_weights(self) -> None:
        if self.tie_embeddings:
            self.lm_head.weight = self.backbone.embedding.weight

    def reset_parameters(self) -> None:
        """Fresh reference initialisation (module defaults, Mamba dt/A/D init, then the LM init)."""
        reset_module_parameters_(self)
        mamba_lm_init_(self, self.n_layer, **self._init_cfg)
        self.tie_weights()

    def hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, L, d_model) after norm_f."""
        return self.backbone(check_input_ids(input_ids, self.vocab_size, type(self).__name__))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, L, padded vocab) logits."""
        return self.lm_head(self.hidden_states(input_ids))

    @classmethod
    def from_reference_config(cls, model_config: dict[str, Any], **overrides: Any) -> "MambaLM":
        """Build from a reference `model_config.json` dict ({"config": {...}, "initializer_cfg"?: {...}} or the
        inner dict; the caduceus `configs/model/mamba.yaml` layout). Unknown keys raise."""
        cfg = dict(model_config.get("config", model_config))
        cfg.pop("_target_", None)
        for ignored in ("d_intermediate", "attn_layer_idx", "attn_cfg"):  # must be the no-MLP, no-attention values
            if cfg.pop(ignored, None):
                raise NotImplementedError(f"MambaLM: {ignored} is not supported (Mamba-only blocks)")
        if "initializer_cfg" in model_config and "initializer_cfg" not in cfg:
            cfg["initializer_cfg"] = model_config["initializer_cfg"]
        cfg.update(overrides)
        return cls(**cfg)
