"""HyenaDNA language-model backbone, parameter-for-parameter the reference `ConvLMHeadModel`
(HazyResearch/hyena-dna `src/models/sequence/long_conv_lm.py`, `model._name_: lm`, `layer._name_: hyena`).

`state_dict()` keys equal the reference Lightning checkpoint keys without the leading `model.`:

    backbone.embeddings.word_embeddings.weight       (V_pad, D)   V_pad: vocab_size rounded up to a multiple of 8
    backbone.layers.<i>.mixer.*                      Hyena operator (dnax.models.layers.hyena, key list there),
                                                     including the filter's positional buffers `pos_emb.{z, t}`
    backbone.layers.<i>.norm1.{weight, bias}         (D,)  LayerNorm before the mixer
    backbone.layers.<i>.mlp.{fc1, fc2}.{weight, bias}      D -> d_inner -> D, GELU (tanh approximation)
    backbone.layers.<i>.norm2.{weight, bias}         (D,)  LayerNorm before the MLP
    backbone.ln_f.{weight, bias}                     (D,)
    lm_head.weight                                   (V_pad, D)   tied to the word embeddings (one tensor)

Checkpoints trained with the reference's `checkpoint_mixer` / `checkpoint_mlp` have an extra `.layer` in
`.mixer.layer.` / `.mlp.layer.`; `reference_state_dict` maps any reference checkpoint to this layout.

The block is the reference's prenorm flash-attn `Block`: (hidden, residual) pairs, dropout -> add -> LayerNorm ->
mixer, dropout -> add -> LayerNorm -> MLP; the first block's first dropout is `embed_dropout`, the rest
`resid_dropout`; the residual stream is kept in fp32 when `residual_in_fp32`. Causal by construction (causal
short conv, causal FFT convolution). Logits cover the padded vocabulary (V_pad), as the reference's.

Sequence length: any L <= l_max works (the implicit filter is evaluated on its first L positions, exactly as the
reference); longer inputs raise ValueError. `l_max` defaults to max_length + 2, the reference recipe's
`layer.l_max: ${dataset.max_length}+2`; its value changes the positional features, so it is part of the weights.

Initialisation replays the reference `ConvLMHeadModel.__init__`: module construction draws in construction order
(the release's `src` order, out_proj before in_proj), `_init_weights` applied to the backbone, the (then untied) LM
head's construction and `_init_weights` draws, then tying. The tests check the scheme's distributions and the
deterministic tensors exactly; bit-equality of the random draws with the reference is not tested (the oracle copy,
`standalone_hyenadna.py`, builds in_proj first and so draws in another order).
"""
from __future__ import annotations

import math
import re
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from dnax.models.input_ids import check_input_ids
from dnax.models.layers.hyena import ExponentialModulation, HyenaFilter, HyenaOperator, PositionalEmbedding, Sin

_RESET_OWN = (nn.Linear, nn.Conv1d, nn.Embedding, nn.LayerNorm, HyenaFilter, Sin, PositionalEmbedding,
              ExponentialModulation)  # modules whose reset_parameters touches only their own tensors


class Mlp(nn.Module):
    """fc1 -> GELU (tanh) -> fc2."""

    def __init__(self, d_model: int, d_inner: int):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_inner)
        self.fc2 = nn.Linear(d_inner, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class HyenaBlock(nn.Module):
    """Prenorm block on (hidden, residual): residual += dropout1(hidden); hidden = mixer(norm1(residual));
    residual += dropout2(hidden); hidden = mlp(norm2(residual))."""

    def __init__(self, mixer: nn.Module, mlp: nn.Module, d_model: int, dropout1: float, dropout2: float,
                 eps: float, residual_in_fp32: bool):
        super().__init__()
        self.mixer = mixer
        self.dropout1 = nn.Dropout(dropout1)
        self.norm1 = nn.LayerNorm(d_model, eps=eps)
        self.mlp = mlp
        self.dropout2 = nn.Dropout(dropout2)
        self.norm2 = nn.LayerNorm(d_model, eps=eps)
        self.residual_in_fp32 = residual_in_fp32

    def _add_norm(self, hidden, residual, dropout, norm):
        residual = dropout(hidden) if residual is None else dropout(hidden) + residual
        hidden = norm(residual.to(norm.weight.dtype))
        return hidden, residual.float() if self.residual_in_fp32 else residual

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor | None):
        hidden, residual = self._add_norm(hidden, residual, self.dropout1, self.norm1)
        hidden, residual = self._add_norm(self.mixer(hidden), residual, self.dropout2, self.norm2)
        return self.mlp(hidden), residual


class TokenEmbeddings(nn.Module):
    """The reference `GPT2Embeddings` without position embeddings (Hyena needs none)."""

    def __init__(self, vocab_size: int, d_model: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, d_model)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(input_ids)


class HyenaBackbone(nn.Module):
    """Embeddings -> blocks -> dropout, add, ln_f: the reference `LMBackbone`."""

    def __init__(self, embeddings: nn.Module, layers: list[HyenaBlock], d_model: int, resid_dropout: float,
                 eps: float):
        super().__init__()
        self.embeddings = embeddings
        self.layers = nn.ModuleList(layers)
        self.drop_f = nn.Dropout(resid_dropout)
        self.ln_f = nn.LayerNorm(d_model, eps=eps)
        self.gradient_checkpointing = False

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, L, D)
        hidden, residual = self.embeddings(input_ids), None
        for layer in self.layers:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                hidden, residual = checkpoint(layer, hidden, residual, use_reentrant=False)
            else:
                hidden, residual = layer(hidden, residual)
        residual = self.drop_f(hidden) + residual
        return self.ln_f(residual.to(self.ln_f.weight.dtype))


def _init_weights(module: nn.Module, n_layer: int, initializer_range: float = 0.02,
                  rescale_prenorm_residual: bool = True) -> None:
    """The reference `_init_weights` (GPT-2 scheme), for `Module.apply`: Linear N(0, 0.02) with zero bias,
    Embedding N(0, 0.02), then out_proj / fc2 weights N(0, 0.02 / sqrt(2 n_layer))."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=initializer_range)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=initializer_range)
    if rescale_prenorm_residual:
        for name, p in module.named_parameters():
            if name in ("out_proj.weight", "fc2.weight"):
                nn.init.normal_(p, mean=0.0, std=initializer_range / math.sqrt(2 * n_layer))


class HyenaLM(nn.Module):
    """HyenaDNA causal LM: token embedding -> Hyena blocks -> ln_f -> tied LM head. Reference config names,
    flattened: the reference `layer:` entries are `order`, `filter_order`, `short_filter_order`, `l_max` and
    `filter_*` / `modulation_*` here (see `from_reference_config`).

    `filter_lr` / `filter_wd` are the filter MLP's optimizer settings (reference `layer.lr`, `layer.wd`; its
    recipe sets lr to the optimizer's lr, which `filter_lr=None` means); `lr_pos_emb` / `modulation_lr` of 0 make
    `z` / `deltas` buffers, as the reference's recipe does. `gradient_checkpointing` checkpoints each block.
    """

    def __init__(
        self,
        d_model: int = 128,
        n_layer: int = 2,
        d_inner: int | None = None,  # None: 4 * d_model
        vocab_size: int = 12,
        pad_vocab_size_multiple: int = 8,
        max_length: int = 1024,
        l_max: int | None = None,  # None: max_length + 2
        order: int = 2,
        filter_order: int = 64,
        short_filter_order: int = 3,
        filter_emb_dim: int = 5,
        filter_w: float = 10.0,
        filter_num_inner_mlps: int = 2,
        filter_lr: float | None = None,
        filter_wd: float = 0.0,
        lr_pos_emb: float = 0.0,
        modulate: bool = True,
        modulation_shift: float = 0.0,
        modulation_fast_decay_pct: float = 0.3,
        modulation_slow_decay_pct: float = 1.5,
        modulation_target: float = 1e-2,
        modulation_lr: float = 0.0,
        dropout: float = 0.0,
        embed_dropout: float = 0.1,
        resid_dropout: float = 0.0,
        layer_norm_epsilon: float = 1e-5,
        residual_in_fp32: bool = True,
        initializer_range: float = 0.02,
        rescale_prenorm_residual: bool = True,
        gradient_checkpointing: bool = False,
    ):
        init_kwargs = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__()
        if n_layer < 1:
            raise ValueError(f"{type(self).__name__}: n_layer must be >= 1, got {n_layer}")
        #: the constructor arguments, for `dnax.pretrained.save_pretrained`
        self.init_kwargs = init_kwargs
        d_inner = 4 * d_model if d_inner is None else d_inner
        l_max = max_length + 2 if l_max is None else l_max
        if max_length > l_max:
            raise ValueError(f"HyenaLM: max_length {max_length} exceeds the filter length l_max {l_max}")
        self.d_model, self.n_layer, self.max_length, self.l_max = d_model, n_layer, max_length, l_max
        self.initializer_range = initializer_range
        self.vocab_size = math.ceil(vocab_size / pad_vocab_size_multiple) * pad_vocab_size_multiple
        self._init = partial(_init_weights, n_layer=n_layer, initializer_range=initializer_range,
                             rescale_prenorm_residual=rescale_prenorm_residual)
        mixer = partial(
            HyenaOperator, d_model, l_max, order=order, filter_order=filter_order,
            short_filter_order=short_filter_order, dropout=dropout, emb_dim=filter_emb_dim, w=filter_w,
            num_inner_mlps=filter_num_inner_mlps, lr=filter_lr, wd=filter_wd, lr_pos_emb=lr_pos_emb,
            modulate=modulate, shift=modulation_shift, fast_decay_pct=modulation_fast_decay_pct,
            slow_decay_pct=modulation_slow_decay_pct, target=modulation_target, modulation_lr=modulation_lr)
        with torch.random.fork_rng(devices=[]):  # construction draws are discarded; reset_parameters replays them
            self.backbone = HyenaBackbone(
                TokenEmbeddings(self.vocab_size, d_model),
                [HyenaBlock(mixer(), Mlp(d_model, d_inner), d_model, embed_dropout if i == 0 else resid_dropout,
                            resid_dropout, layer_norm_epsilon, residual_in_fp32) for i in range(n_layer)],
                d_model, resid_dropout, layer_norm_epsilon)
            self.lm_head = nn.Linear(d_model, self.vocab_size, bias=False)
        self.lm_head.weight = self.backbone.embeddings.word_embeddings.weight
        self.gradient_checkpointing = gradient_checkpointing
        self.reset_parameters()

    @property
    def gradient_checkpointing(self) -> bool:
        return self.backbone.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, value: bool) -> None:
        self.backbone.gradient_checkpointing = bool(value)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The reference initialisation, drawing random numbers in the reference's order (see the module doc)."""
        for m in self.backbone.modules():  # pre-order = the reference's construction order
            if isinstance(m, _RESET_OWN):
                m.reset_parameters()
        self.backbone.apply(self._init)  # LMBackbone.__init__
        head_shape = self.lm_head.weight.shape
        nn.init.kaiming_uniform_(torch.empty(head_shape), a=math.sqrt(5))  # ConvLMHeadModel: lm_head = nn.Linear
        self.backbone.apply(self._init)  # ConvLMHeadModel.__init__: self.apply(_init_weights) ...
        nn.init.normal_(torch.empty(head_shape), std=self.initializer_range)  # ... its lm_head
        # tie_weights(): lm_head.weight is the embedding, already shared

    def hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, L, d_model) after ln_f."""
        num_embeddings = self.backbone.embeddings.word_embeddings.num_embeddings
        return self.backbone(check_input_ids(input_ids, num_embeddings, type(self).__name__))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, L, V_pad) logits."""
        return self.lm_head(self.hidden_states(input_ids))

    # ------------------------------------------------------------------ reference interop

    _LAYER_KEYS = {"order": "order", "filter_order": "filter_order", "short_filter_order": "short_filter_order",
                   "l_max": "l_max", "emb_dim": "filter_emb_dim", "w": "filter_w", "lr": "filter_lr",
                   "wd": "filter_wd", "lr_pos_emb": "lr_pos_emb", "num_inner_mlps": "filter_num_inner_mlps",
                   "modulate": "modulate", "shift": "modulation_shift", "fast_decay_pct": "modulation_fast_decay_pct",
                   "slow_decay_pct": "modulation_slow_decay_pct", "target": "modulation_target",
                   "modulation_lr": "modulation_lr", "dropout": "dropout"}
    # no effect on the math or the keys (fused kernels, leftovers the reference ignores, the filter's dropout that
    # the reference never applies), or defaults-only options checked below
    _LAYER_IGNORED = {"_name_", "local_order", "filter_dropout", "fused_bias_fc", "jit_filter", "use_flashfftconv",
                      "filter_cls", "num_heads", "inner_factor", "num_blocks", "outer_mixing", "post_order_ffn",
                      "activation", "return_state"}
    _LAYER_DEFAULTS_ONLY = {"num_heads": 1, "inner_factor": 1, "num_blocks": 1, "outer_mixing": False,
                            "post_order_ffn": False, "activation": "id", "filter_cls": "hyena-filter"}
    _MODEL_IGNORED = {"_name_", "fused_mlp", "fused_dropout_add_ln", "return_hidden_state", "checkpoint_mixer",
                      "checkpoint_mlp", "max_position_embeddings", "attn_layer_idx", "attn_cfg", "process_group",
                      "sequence_parallel", "use_flashfftconv"}

    @classmethod
    def from_reference_config(cls, model_config: dict[str, Any], **overrides: Any) -> "HyenaLM":
        """Build from a reference model config (the hydra `model:` dict or a released `config.json`).

        `max_length` becomes `layer.l_max - 2` (the recipe's +2); `overrides` replace entries. Attention layers
        (`attn_layer_idx`), non-default layer options and unknown keys raise.
        """
        cfg = dict(model_config)
        layer = dict(cfg.pop("layer", {}) or {})
        if cfg.get("attn_layer_idx"):
            raise NotImplementedError("HyenaLM: attention layers (attn_layer_idx) are not supported")
        if cfg.get("max_position_embeddings", 0):
            raise NotImplementedError("HyenaLM: position embeddings (max_position_embeddings > 0) are not supported")
        for key, default in cls._LAYER_DEFAULTS_ONLY.items():
            if key in layer and layer[key] != default:
                raise NotImplementedError(f"HyenaLM: layer.{key}={layer[key]!r} (only {default!r} is supported)")
        kwargs = {k: v for k, v in cfg.items() if k not in cls._MODEL_IGNORED}
        if cfg.get("checkpoint_mixer") or cfg.get("checkpoint_mlp"):
            kwargs["gradient_checkpointing"] = True
        initializer_cfg = kwargs.pop("initializer_cfg", None) or {}
        kwargs.update({k: v for k, v in initializer_cfg.items() if k != "glu_act"})
        unknown = set(layer) - set(cls._LAYER_KEYS) - cls._LAYER_IGNORED
        if unknown:
            raise ValueError(f"HyenaLM.from_reference_config: unknown layer keys {sorted(unknown)}")
        kwargs.update({cls._LAYER_KEYS[k]: v for k, v in layer.items() if k in cls._LAYER_KEYS})
        if "l_max" in kwargs:
            kwargs.setdefault("max_length", kwargs["l_max"] - 2)
        kwargs.update(overrides)
        return cls(**kwargs)


def reference_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A reference HyenaDNA Lightning checkpoint's `state_dict` -> `HyenaLM` keys: keeps the `model.` entries,
    strips that prefix and the `.layer` that the reference's mixer/MLP checkpointing wrappers insert."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith("model."):
            out[re.sub(r"\.(mixer|mlp)\.layer\.", r".\1.", key[len("model."):])] = value
    return out
