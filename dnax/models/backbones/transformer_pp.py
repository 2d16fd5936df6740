"""Transformer++ (Llama) language-model backbone, parameter-for-parameter the DNA-xLSTM (Bio-xLSTM) baseline
`models/llama/modelling_llama.py::TransformerLMHeadModel.backbone` (llama2.c's `Transformer`).

`TransformerPPLM(**flat_config)` takes the reference `TransformerConfig` keyword names (configs/model/llama.yaml);
`state_dict()` keys equal the reference checkpoint keys without `model.backbone.`:

    tok_embeddings.weight                           (V, D)       tied to output.weight (both keys present)
    layers.<i>.attention.{wq, wk, wv, wo}.weight    (H Dh, D), (Hkv Dh, D) x 2, (D, H Dh)
    layers.<i>.feed_forward.{w1, w3}.weight         (F, D)       w1 = gate, w3 = up
    layers.<i>.feed_forward.w2.weight               (D, F)       down
    layers.<i>.{attention_norm, ffn_norm}.weight    (D,)         RMSNorm
    norm.weight                                     (D,)
    output.weight                                   (V, D)

Block: h = x + attention(attention_norm(x)); out = h + feed_forward(ffn_norm(h)); the model is embedding ->
dropout -> blocks -> norm -> output. Attention is causal unless `bidirectional=True` (then every position attends to
every other, used with the MLM objective). The vocabulary is not padded (neither is the reference's).

Differences from the reference, none of which changes its outputs where it runs:
- RoPE tables (Meta interleaved pairs, theta `rope_theta`, 10000 in the reference) are computed for the actual
  input length on every forward, so inputs longer than `max_length` work (the reference precomputes `max_length`
  positions and fails on longer inputs). `max_length` is recorded for the recipes and changes nothing.
- `tie_embeddings=False` unties embedding and head (the reference always ties), `gradient_checkpointing` is a switch
  (the reference always checkpoints every block), `rope_theta` is configurable.
- Attention always goes through `F.scaled_dot_product_attention` (the reference falls back to a manual softmax on
  PyTorch < 2.0).

Initialisation replays the reference's: every Linear and the embedding N(0, 0.02) in module order (the tied weight
is drawn twice, the head's draw stays), norms 1, then `wo` and `w3` (llama2.c scales the up projection `w3`, not
`w2`) of each block N(0, 0.02 / sqrt(2 n_layer)). Submodules are built in the reference's order, so the random
numbers are drawn in the same sequence.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from dnax.models.input_ids import check_input_ids
from dnax.models.layers.attention import Attention, RMSNorm, SwiGLU, swiglu_hidden_dim
from dnax.models.layers.common import rope_cos_sin


class TransformerBlock(nn.Module):
    """Pre-norm residual block: attention then SwiGLU feed-forward, each behind its own RMSNorm."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None, hidden_dim: int, norm_eps: float,
                 dropout: float, causal: bool):
        super().__init__()
        self.attention = Attention(d_model, n_heads, n_kv_heads, dropout=dropout, causal=causal)
        self.feed_forward = SwiGLU(d_model, hidden_dim, dropout=dropout)
        self.attention_norm = RMSNorm(d_model, eps=norm_eps)
        self.ffn_norm = RMSNorm(d_model, eps=norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:  # (B, S, D)
        h = x + self.attention(self.attention_norm(x), cos, sin)
        return h + self.feed_forward(self.ffn_norm(h))


class TransformerPPLM(nn.Module):
    """Token embedding -> Llama blocks -> RMSNorm -> LM head. Flat reference config names, plus dnax's
    `rope_theta`, `tie_embeddings` and `gradient_checkpointing`."""

    def __init__(
        self,
        d_model: int = 256,
        n_layer: int = 4,
        n_heads: int = 16,
        n_kv_heads: int | None = None,  # None: n_heads (plain multi-head attention)
        bidirectional: bool = False,
        vocab_size: int = 12,
        hidden_dim: int | None = None,  # None: 2/3 * 4 d_model rounded up to multiple_of
        multiple_of: int = 8,
        norm_eps: float = 1e-5,
        max_length: int = 1024,
        dropout: float = 0.0,
        rope_theta: float = 10000.0,
        tie_embeddings: bool = True,
        gradient_checkpointing: bool = False,
    ):
        init_kwargs = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__()
        #: the constructor arguments, for `dnax.pretrained.save_pretrained`
        self.init_kwargs = init_kwargs
        if n_layer < 1:
            raise ValueError(f"TransformerPPLM: n_layer must be >= 1, got {n_layer}")
        self.d_model, self.n_layer, self.vocab_size = d_model, n_layer, vocab_size
        self.max_length, self.rope_theta, self.bidirectional = max_length, rope_theta, bidirectional
        self.gradient_checkpointing = gradient_checkpointing
        ffn_dim = swiglu_hidden_dim(d_model, hidden_dim, multiple_of)

        # built in the reference's order (embedding, blocks, norm, head), so construction draws the same numbers
        self.tok_embeddings = nn.Embedding(vocab_size, d_model)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerBlock(d_model, n_heads, n_kv_heads, ffn_dim, norm_eps, dropout, causal=not bidirectional)
            for _ in range(n_layer))
        self.norm = RMSNorm(d_model, eps=norm_eps)
        self.output = nn.Linear(d_model, vocab_size, bias=False)
        if tie_embeddings:
            self.tok_embeddings.weight = self.output.weight
        self.head_dim = self.layers[0].attention.head_dim
        self.reset_parameters()

    @property
    def causal(self) -> bool:
        return not self.bidirectional

    def reset_parameters(self) -> None:
        """The reference init, drawing random numbers in the reference's order (see the module docstring)."""
        nn.init.normal_(self.tok_embeddings.weight, mean=0.0, std=0.02)
        for layer in self.layers:
            attn, ffn = layer.attention, layer.feed_forward
            for linear in (attn.wq, attn.wk, attn.wv, attn.wo, ffn.w1, ffn.w2, ffn.w3):
                nn.init.normal_(linear.weight, mean=0.0, std=0.02)
            layer.attention_norm.reset_parameters()
            layer.ffn_norm.reset_parameters()
        self.norm.reset_parameters()
        nn.init.normal_(self.output.weight, mean=0.0, std=0.02)
        residual_std = 0.02 / math.sqrt(2 * self.n_layer)
        for layer in self.layers:
            nn.init.normal_(layer.attention.wo.weight, mean=0.0, std=residual_std)
            nn.init.normal_(layer.feed_forward.w3.weight, mean=0.0, std=residual_std)

    def hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids, any L -> (B, L, d_model) after the final norm."""
        input_ids = check_input_ids(input_ids, self.vocab_size, type(self).__name__)
        cos, sin = rope_cos_sin(self.head_dim, input_ids.shape[1], self.rope_theta, device=input_ids.device)
        h = self.dropout(self.tok_embeddings(input_ids))
        for layer in self.layers:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                h = checkpoint(layer, h, cos, sin, use_reentrant=False)
            else:
                h = layer(h, cos, sin)
        return self.norm(h)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, L, vocab_size) logits."""
        return self.output(self.hidden_states(input_ids))

    # ------------------------------------------------------------------ reference interop

    @classmethod
    def from_reference_config(cls, model_config: dict[str, Any], **overrides: Any) -> "TransformerPPLM":
        """Build from a reference model config dict ({"config": {...}} as in `model_config.json`, or the inner
        `TransformerConfig` dict); `_target_` is dropped, `overrides` replace entries, unknown keys raise."""
        cfg = dict(model_config.get("config", model_config))
        cfg.pop("_target_", None)
        cfg.update(overrides)
        return cls(**cfg)
