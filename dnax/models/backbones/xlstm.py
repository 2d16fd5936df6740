"""xLSTM language-model backbone, parameter-for-parameter the DNA-xLSTM (Bio-xLSTM) `xLSTMLMHeadModel.backbone`.

`XLSTMLM(**flat_config)` takes the reference `xLSTMConfig` keyword names; `state_dict()` keys equal the reference
checkpoint keys without `model.backbone.`:

    token_embedding.weight                          (V, D)     RCPS: token_embedding.{embedding.weight, complement_map}
    xlstm_block_stack.blocks.<i>.xlstm_norm.weight  (D,)       RCPS: ...xlstm_norm.submodule.weight (all wrapped)
    xlstm_block_stack.blocks.<i>.xlstm.*            mLSTM layer (dnax.models.layers.mlstm) or sLSTM layer
    xlstm_block_stack.blocks.<i>.{ffn_norm, ffn}.*  sLSTM blocks only (gated feed-forward)
    xlstm_block_stack.post_blocks_norm.weight       (D,)
    lm_head.weight                                  (V, D)     RCPS: lm_head.{lm_head.weight, complement_map}

The vocabulary is not padded (the reference computes a padded size and never uses it).

Bidirectionality, exactly as the reference block stack (`xlstm_block_stack.py` of DNA-xLSTM) runs it:
- `bidirectional=False`: every block causal (`m_backend_bidirectional` is then ignored, as in the reference).
- `bidirectional=True, bidirectional_alternating=False`: each block is applied as
  `block(x) + flip(block(flip(x)))` with shared weights (the whole block, residual included, both times), except
  mLSTM blocks with `m_backend_bidirectional=True`, which run the native bidirectional mLSTM once.
- `bidirectional_alternating=True`: blocks with an even index (0, 2, ...) run on the flipped sequence
  (flip in, flip out), odd ones causally: the reference's `if i % 2 != 0: block(x) else: flip(block(flip(x)))`.
Flip-and-add runs both directions as one batch of 2B (same math as two calls, one pass over the weights).

sLSTM blocks (`s_lstm_at`) use `dnax.models.layers.slstm.{SLSTMLayer, GatedFeedForward}` and RCPS
(`rcps=True`) `dnax.models.layers.rcps.{RCPSWrapper, RCPSEmbedding, RCPSLMHead}`, imported only when used. RCPS
wraps every norm, layer and feed-forward; for mLSTM layers (which the reference cannot combine with RCPS) that is a
dnax extension. `s_position_embeddings` adds the reference's `ScaledSinusoidalEmbedding` (learnable `scale`) to the
block-stack input. Initialisation replays the reference's `reset_parameters` calls in the reference's order, so a
model built under a seed draws exactly the reference's initial weights (tested against the fixtures).
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from dnax.models.input_ids import check_input_ids
from dnax.models.layers.common import LayerNorm, ScaledSinusoidalEmbedding, small_init_
from dnax.models.layers.mlstm import Backend, MLSTMLayer

BlockMode = Literal["causal", "flip_add", "flipped", "native"]


def _inner(module: nn.Module) -> nn.Module:
    """The wrapped module of an RCPS wrapper, else the module itself."""
    return getattr(module, "submodule", module)


class XLSTMBlock(nn.Module):
    """Pre-norm residual block: x + xlstm(xlstm_norm(x)) [+ ffn(ffn_norm(.))]; `mode` says how it sees time."""

    def __init__(self, xlstm_norm: nn.Module, xlstm: nn.Module, ffn_norm: nn.Module | None = None,
                 ffn: nn.Module | None = None, mode: BlockMode = "causal"):
        super().__init__()
        self.xlstm_norm, self.xlstm = xlstm_norm, xlstm
        if ffn is not None:
            self.ffn_norm, self.ffn = ffn_norm, ffn
        else:
            self.ffn_norm = self.ffn = None
        self.mode = mode

    def reset_parameters(self) -> None:
        for m in (self.xlstm, self.xlstm_norm, self.ffn, self.ffn_norm):
            if m is not None:
                _inner(m).reset_parameters()

    def _block(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.xlstm(self.xlstm_norm(x))
        if self.ffn is not None:
            x = x + self.ffn(self.ffn_norm(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, S, D) -> (B, S, D)
        if self.mode == "flipped":
            return self._block(x.flip(1)).flip(1)
        if self.mode == "flip_add":  # both directions as one batch: same math as two calls, one pass over weights
            B = x.shape[0]
            y = self._block(torch.cat([x, x.flip(1)]))
            return y[:B] + y[B:].flip(1)
        return self._block(x)


class XLSTMBlockStack(nn.Module):
    def __init__(self, blocks: Sequence[XLSTMBlock], post_blocks_norm: nn.Module,
                 absolute_pos_embeds: nn.Module | None = None, gradient_checkpointing: bool = False):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.post_blocks_norm = post_blocks_norm
        self.absolute_pos_embeds = absolute_pos_embeds
        self.gradient_checkpointing = gradient_checkpointing

    def reset_parameters(self) -> None:
        for block in self.blocks:
            block.reset_parameters()
        _inner(self.post_blocks_norm).reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.absolute_pos_embeds is not None:
            x = x + self.absolute_pos_embeds(x)
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.post_blocks_norm(x)


class XLSTMLM(nn.Module):
    """Token embedding -> xLSTM block stack -> post-blocks norm -> LM head. Flat reference config names.

    dnax extras: `m_backend` also takes "kernel" (mlstm_kernels) and "auto" (fastest on the device; the math is
    the same for all), `s_backend` is handed to the sLSTM layer, `gradient_checkpointing` checkpoints each block
    (the reference always does; off by default here), `m_recompute_cell` checkpoints only the mLSTM cells (most of
    the activation memory of the chunkwise forms at long context, for one extra cell forward), `s_rc_head_flip`
    reproduces the reference's RCPS sLSTM, which flips the heads in its reverse-complement branch and so is not
    RC-equivariant (`from_reference_config` sets it: its checkpoints need it; off by default, so a dnax RCPS model
    with sLSTM blocks is exactly RC-equivariant).
    """

    def __init__(
        self,
        d_model: int = 256,
        n_layer: int = 4,
        vocab_size: int = 12,
        pad_vocab_size_multiple: int = 8,  # unused by the reference model too: kept for config compatibility
        max_length: int = 1024,
        m_conv1d_kernel_size: int = 4,
        m_conv1d_causal: bool = True,
        m_qkv_proj_blocksize: int = 4,
        m_num_heads: int = 4,
        m_proj_factor: float = 2.0,
        m_backend: Backend = "auto",
        m_chunk_size: int = 64,
        m_backend_bidirectional: bool = False,
        m_position_embeddings: bool = False,
        m_bias: bool = False,
        s_num_heads: int = 4,
        s_conv1d_kernel_size: int = 4,
        s_conv1d_causal: bool = True,
        s_lstm_at: Sequence[int] = (),
        s_proj_factor: float = 1.3,
        s_round_proj_up_dim_up: bool = True,
        s_round_proj_up_to_multiple_of: int = 64,
        s_position_embeddings: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        bidirectional_alternating: bool = False,
        rcps: bool = False,
        complement_map: dict[int, int] | None = None,
        gradient_checkpointing: bool = False,
        s_backend: Literal["auto", "vanilla", "triton", "cuda"] = "auto",
        m_recompute_cell: bool = False,
        s_rc_head_flip: bool = False,
    ):
        init_kwargs = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__()
        if n_layer < 1:
            raise ValueError(f"{type(self).__name__}: n_layer must be >= 1, got {n_layer}")
        #: the constructor arguments, for `dnax.pretrained.save_pretrained`
        self.init_kwargs = init_kwargs
        s_lstm_at = sorted(set(int(i) for i in s_lstm_at))
        if not all(0 <= i < n_layer for i in s_lstm_at):
            raise ValueError(f"s_lstm_at {s_lstm_at} outside 0..{n_layer - 1}")
        if m_backend not in ("parallel", "chunkwise", "kernel", "auto"):
            raise ValueError(f"unknown m_backend {m_backend!r}")
        if rcps and complement_map is None:
            from dnax.tokenizer import COMPLEMENT_MAP

            complement_map = COMPLEMENT_MAP
        if rcps and s_position_embeddings:
            raise NotImplementedError("s_position_embeddings with rcps (the reference cannot run it either)")
        self.d_model, self.vocab_size, self.n_layer, self.rcps = d_model, vocab_size, n_layer, rcps
        self.max_length = max_length

        if rcps:
            from dnax.models.layers.rcps import RCPSWrapper  # written separately; imported only when used
        wrap = RCPSWrapper if rcps else (lambda m: m)

        blocks = []
        for idx in range(n_layer):
            is_slstm = idx in s_lstm_at
            if not bidirectional:
                mode = "causal"
            elif bidirectional_alternating:
                mode = "causal" if idx % 2 else "flipped"
            elif m_backend_bidirectional and not is_slstm:
                mode = "native"
            else:
                mode = "flip_add"
            xlstm_norm = wrap(LayerNorm(d_model))
            if is_slstm:
                from dnax.models.layers.slstm import GatedFeedForward, SLSTMLayer  # written separately

                xlstm = SLSTMLayer(embedding_dim=d_model, num_heads=s_num_heads,
                                   conv1d_kernel_size=s_conv1d_kernel_size, conv1d_causal=s_conv1d_causal,
                                   dropout=dropout, backend=s_backend, block_idx=idx, num_blocks=n_layer,
                                   rc_head_flip=s_rc_head_flip)
                xlstm = wrap(xlstm)
                ffn_norm = wrap(LayerNorm(d_model))
                ffn = wrap(GatedFeedForward(embedding_dim=d_model, proj_factor=s_proj_factor,
                                            round_proj_up_dim_up=s_round_proj_up_dim_up,
                                            round_proj_up_to_multiple_of=s_round_proj_up_to_multiple_of,
                                            dropout=dropout, num_blocks=n_layer))
            else:
                # init_num_blocks=1: the reference's mLSTM blocks never receive the block count, so their
                # proj_down uses wang_init with num_blocks=1 (recovered from the fixture weights)
                xlstm = wrap(MLSTMLayer(
                    d_model, num_heads=m_num_heads, proj_factor=m_proj_factor, conv1d_kernel_size=m_conv1d_kernel_size,
                    conv1d_causal=m_conv1d_causal, qkv_proj_blocksize=m_qkv_proj_blocksize, bias=m_bias,
                    dropout=dropout, init_num_blocks=1, backend=m_backend, chunk_size=m_chunk_size,
                    bidirectional=mode == "native", rope=m_position_embeddings, recompute_cell=m_recompute_cell))
                ffn_norm = ffn = None
            block = XLSTMBlock(xlstm_norm, xlstm, ffn_norm, ffn, mode=mode)
            block.reset_parameters()
            blocks.append(block)
        self.xlstm_block_stack = XLSTMBlockStack(
            blocks,
            wrap(LayerNorm(d_model)),
            ScaledSinusoidalEmbedding(d_model) if s_position_embeddings else None,
            gradient_checkpointing,
        )
        if rcps:
            from dnax.models.layers.rcps import RCPSEmbedding, RCPSLMHead

            self.token_embedding = RCPSEmbedding(vocab_size, d_model, complement_map)
            self.lm_head = RCPSLMHead(d_model, vocab_size, complement_map)
        else:
            self.token_embedding = nn.Embedding(vocab_size, d_model)
            self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.reset_parameters()

    @property
    def gradient_checkpointing(self) -> bool:
        return self.xlstm_block_stack.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, value: bool) -> None:
        self.xlstm_block_stack.gradient_checkpointing = value

    def reset_parameters(self) -> None:
        """The reference init (xlstm v1 `reset_parameters`), drawing random numbers in the reference's order."""
        self.xlstm_block_stack.reset_parameters()
        small_init_(next(self.token_embedding.parameters()), dim=self.d_model)
        small_init_(next(self.lm_head.parameters()), dim=self.d_model)

    def hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, L, d_model) after `post_blocks_norm`; RCPS: (B, L, 2 d_model), reference layout."""
        input_ids = check_input_ids(input_ids, self.vocab_size, type(self).__name__)
        return self.xlstm_block_stack(self.token_embedding(input_ids))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, L, vocab_size) logits."""
        return self.lm_head(self.hidden_states(input_ids))

    # ------------------------------------------------------------------ reference interop

    _REFERENCE_IGNORED = {"_target_", "tie_weights"}  # tie_weights never reaches the reference model

    @staticmethod
    def upgrade_init_kwargs(kwargs: dict[str, Any], version: int) -> dict[str, Any]:
        """Constructor kwargs saved by an older dnax (`dnax.pretrained` format `version`) in today's meaning: before
        format 2 an RCPS model with sLSTM blocks always flipped the heads of its RC branch (`s_rc_head_flip`)."""
        if version < 2 and "s_rc_head_flip" not in kwargs and kwargs.get("rcps") and kwargs.get("s_lstm_at"):
            kwargs = {**kwargs, "s_rc_head_flip": True}
        return kwargs

    @classmethod
    def from_reference_config(cls, model_config: dict[str, Any], **overrides: Any) -> "XLSTMLM":
        """Build from a reference `model_config.json` dict ({"config": {...}} or the inner dict).

        `complement_map: null` is filled from `dnax.tokenizer` (as the reference scripts do); the reference's RCPS
        sLSTM quirk is reproduced (`s_rc_head_flip`); `overrides` replace entries, e.g. `m_backend="auto"` for speed
        (the math is the same). Unknown keys raise.
        """
        cfg = dict(model_config.get("config", model_config))
        if cfg.get("rcps") and cfg.get("s_lstm_at"):  # where the flip acts; elsewhere the default stays comparable
            cfg["s_rc_head_flip"] = True
        for key in cls._REFERENCE_IGNORED:
            cfg.pop(key, None)
        if cfg.get("complement_map") is not None:
            cfg["complement_map"] = {int(k): int(v) for k, v in cfg["complement_map"].items()}
        cfg.update(overrides)
        return cls(**cfg)
