"""Caduceus (BiMamba, optionally RC-equivariant), parameter-for-parameter the reference `CaduceusForMaskedLM`.

`state_dict()` keys are the reference's (Lightning checkpoint keys without `model.`; the HF `model.safetensors` keys):

    caduceus.backbone.embeddings.word_embeddings.weight             (Vp, D)   RCPS: ...{embedding.weight, complement_map}
    caduceus.backbone.layers.<i>.mixer[.submodule].mamba_fwd.*      Mamba mixer (RCPS wraps it: `.submodule.`)
    caduceus.backbone.layers.<i>.mixer[.submodule].mamba_rev.*      reverse-direction Mamba; in_proj/out_proj tied
    caduceus.backbone.layers.<i>.norm.weight                        RCPS with fused_add_norm=false: norm.submodule.weight
    caduceus.backbone.norm_f.weight                                 RCPS with fused_add_norm=false: norm_f.submodule.weight
    lm_head.weight                                                  (Vp, D)   RCPS: lm_head.{lm_head.weight, complement_map}

Vp = vocab_size padded to a multiple of `pad_vocab_size_multiple` (12 -> 16); padded ids are their own complement.
The LM head is tied to the embedding, and with `bidirectional_weight_tie` the reverse Mamba's in/out projections are
the forward one's (one storage each).

BiMamba: `out = mamba_fwd(x) (+ or *) flip(mamba_rev(flip(x)))` over length ("add" / "ew_multiply").
RCPS (Caduceus-PS): hidden states have 2*D channels `[forward half, RC half]` (RC half in RC orientation). The
reference's blocks differ by `fused_add_norm`, and dnax follows each exactly:
  - true (every released config): the fused branch of `RCPSMambaBlock` normalises the SECOND half as its forward
    stream and the flipped FIRST half as its RC stream, i.e. swaps the halves of both the normalised states and the
    residual every layer (still exactly RC-equivariant); `norm_f` does not swap.
  - false: `RCPSAddNormWrapper` (no swap), keys with `.submodule.`.
Without RCPS both settings are the same arithmetic (mamba_ssm `Block`).

Caduceus-PH (post-hoc conjoining) is the non-RCPS model trained with RC augmentation and evaluated on both strands:
`conjoin(fn, input_ids, undo)` averages `fn(x)` with `undo(fn(rc(x)))` for any `fn` (logits, hidden states,
a classifier); `CaduceusLM.conjoined_logits` is the LM case.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from torch import nn

from dnax.models.backbones.mamba import MambaBlock, make_norm, padded_vocab_size
from dnax.models.input_ids import check_input_ids
from dnax.models.layers.mamba import (
    Mamba,
    mamba_lm_init_,
    reset_module_parameters_,
    ssm_both_directions,
)
from dnax.models.layers.rcps import (RCPSAddNormWrapper, RCPSEmbedding, RCPSLMHead, RCPSWrapper,
                                     _complement_tensor, rc)

BidirectionalStrategy = Literal["add", "ew_multiply"]


# ---------------------------------------------------------------------------------------------- reverse complement

def reverse_complement_ids(input_ids: torch.Tensor, complement: torch.Tensor) -> torch.Tensor:
    """(B, L) ids -> ids of the reverse-complement strand; `complement` is an id -> id table (tensor)."""
    return complement.to(input_ids.device)[input_ids.flip(-1)]


def conjoin(fn: Callable[[torch.Tensor], torch.Tensor], input_ids: torch.Tensor, complement: torch.Tensor,
            undo: Callable[[torch.Tensor], torch.Tensor] = lambda y: y) -> torch.Tensor:
    """Post-hoc conjoining (Caduceus-PH evaluation): `(fn(x) + undo(fn(rc(x)))) / 2`.

    `undo` maps an output computed on the reverse-complement strand back to the forward strand's frame: identity
    for per-sequence outputs (class scores, pooled embeddings), `lambda y: y.flip(1)` for per-position hidden
    states, `undo_token_logits(complement)` for per-position token logits.
    """
    return (fn(input_ids) + undo(fn(reverse_complement_ids(input_ids, complement)))) / 2


def undo_token_logits(complement: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """For `conjoin`: logits (B, L, V) of the RC strand -> forward frame (flip length, complement the vocabulary)."""
    return lambda logits: logits.flip(1)[..., complement.to(logits.device)]


# ---------------------------------------------------------------------------------------------- layers

class BiMamba(nn.Module):
    """The reference `BiMambaWrapper`: `mamba_fwd`, and `mamba_rev` applied to the length-flipped input.

    With tied projections and "add" (off the fused CUDA path) in_proj runs once and both directions' scans run as one
    dnax scan call; when either Mamba has a `scan_fn`, the two Mambas run separately, as the reference does."""

    def __init__(self, d_model: int, bidirectional: bool = True, bidirectional_strategy: BidirectionalStrategy = "add",
                 bidirectional_weight_tie: bool = True, **mamba_kwargs: Any):
        super().__init__()
        if bidirectional and bidirectional_strategy not in ("add", "ew_multiply"):
            raise NotImplementedError(f"bidirectional_strategy {bidirectional_strategy!r} (expected add or ew_multiply)")
        self.bidirectional, self.strategy = bidirectional, bidirectional_strategy
        self.weight_tie = bidirectional and bidirectional_weight_tie
        self.mamba_fwd = Mamba(d_model, **mamba_kwargs)
        self.mamba_rev = Mamba(d_model, **mamba_kwargs) if bidirectional else None
        if self.weight_tie:
            for name in ("in_proj", "out_proj"):
                fwd, rev = getattr(self.mamba_fwd, name), getattr(self.mamba_rev, name)
                rev.weight = fwd.weight
                rev.bias = fwd.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        fwd, rev = self.mamba_fwd, self.mamba_rev
        if rev is None:
            return fwd(x)
        custom_scan = fwd.scan_fn is not None or rev.scan_fn is not None
        if self.weight_tie and self.strategy == "add" and not fwd._fused_cuda(x) and not custom_scan:
            # shared projections act per position: in_proj once, then one out_proj on the summed inner states
            xz = fwd.in_proj(x)
            if fwd.cuda_scan_kernel(xz) is not None:
                y = fwd.ssm(xz) + rev.ssm(xz.flip(1)).flip(1)
            else:  # the dnax scan: both directions in one call
                y = ssm_both_directions(fwd, rev, xz)
            out = fwd.out_proj(y)
            return out if fwd.out_proj.bias is None else out + fwd.out_proj.bias  # both directions add the bias
        out_rev = rev(x.flip(1)).flip(1)
        return fwd(x) + out_rev if self.strategy == "add" else fwd(x) * out_rev


def _add(x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
    return x if residual is None else x + residual


class RCPSMambaBlock(nn.Module):
    """RC-equivariant add + norm + BiMamba on (B, L, 2D) -> ((B, L, 2D) mixer output, (B, L, 2D) residual).

    `fused_add_norm=True`: `norm` is the bare norm and the halves swap (the reference's fused branch);
    False: `norm` is an `RCPSAddNormWrapper`."""

    def __init__(self, mixer: BiMamba, norm: nn.Module, fused_add_norm: bool, residual_in_fp32: bool = False):
        super().__init__()
        self.mixer = RCPSWrapper(mixer)
        self.norm = norm if fused_add_norm else RCPSAddNormWrapper(norm)
        self.fused_add_norm, self.residual_in_fp32 = fused_add_norm, residual_in_fp32

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor | None = None):
        d = hidden_states.shape[-1] // 2
        if self.fused_add_norm:
            # forward stream <- second half, RC stream <- first half: the residual's halves swap
            first = _add(hidden_states[..., :d], None if residual is None else residual[..., :d])
            second = _add(hidden_states[..., d:], None if residual is None else residual[..., d:])
            if self.residual_in_fp32:
                first, second = first.float(), second.float()
            dtype = self.norm.weight.dtype
            fwd_in, rc_in = self.norm(second.to(dtype)), self.norm(rc(first).to(dtype))  # both forward-oriented
            residual = torch.cat([second, first], dim=-1)
        else:
            hidden_states, residual = self.norm(hidden_states, residual=residual, prenorm=True)
            if self.residual_in_fp32:
                residual = residual.float()
            fwd_in, rc_in = hidden_states[..., :d], rc(hidden_states[..., d:])
        # the RCPS mixer's two calls as one batch (same weights): [forward half; RC half in forward orientation]
        B = fwd_in.shape[0]
        out = self.mixer.submodule(torch.cat([fwd_in, rc_in], dim=0))
        return torch.cat([out[:B], rc(out[B:])], dim=-1), residual


class CaduceusBackbone(nn.Module):
    """`CaduceusMixerModel`: embeddings -> blocks -> add + norm_f; `forward(ids) -> (B, L, D or 2D)`."""

    def __init__(self, embeddings: nn.Module, layers: list[nn.Module], norm_f: nn.Module, rcps: bool,
                 residual_in_fp32: bool):
        super().__init__()
        self.embeddings = embeddings
        self.layers = nn.ModuleList(layers)
        self.norm_f = norm_f
        self.rcps, self.residual_in_fp32 = rcps, residual_in_fp32

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden, residual = self.embeddings.word_embeddings(input_ids), None
        for layer in self.layers:
            hidden, residual = layer(hidden, residual)
        if not self.rcps:
            residual = _add(hidden, residual)
            return self.norm_f(residual.to(self.norm_f.weight.dtype))
        if isinstance(self.norm_f, RCPSAddNormWrapper):
            return self.norm_f(hidden, residual=residual, prenorm=False)
        d = hidden.shape[-1] // 2  # fused reference branch for norm_f: no swap
        res = _add(hidden, residual).to(self.norm_f.weight.dtype)
        return torch.cat([self.norm_f(res[..., :d]), rc(self.norm_f(rc(res[..., d:])))], dim=-1)


# ---------------------------------------------------------------------------------------------- the LM

class CaduceusLM(nn.Module):
    """CaduceusForMaskedLM: token ids (B, L) -> logits (B, L, Vp). Reference `CaduceusConfig` keyword names."""

    def __init__(
        self,
        d_model: int = 128,
        n_layer: int = 4,
        vocab_size: int = 12,
        pad_vocab_size_multiple: int = 8,
        max_length: int = 1024,  # recorded for the recipes; the model has no length limit
        ssm_cfg: dict[str, Any] | None = None,
        rms_norm: bool = True,
        fused_add_norm: bool = True,
        residual_in_fp32: bool = False,
        norm_epsilon: float = 1e-5,
        initializer_cfg: dict[str, Any] | None = None,
        bidirectional: bool = True,
        bidirectional_strategy: BidirectionalStrategy = "add",
        bidirectional_weight_tie: bool = True,
        rcps: bool = False,
        complement_map: dict[int, int] | None = None,
    ):
        init_kwargs = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__()
        if n_layer < 1:
            raise ValueError(f"{type(self).__name__}: n_layer must be >= 1, got {n_layer}")
        #: the constructor arguments, for `dnax.pretrained.save_pretrained`
        self.init_kwargs = init_kwargs
        if complement_map is None:
            from dnax.tokenizer import COMPLEMENT_MAP

            complement_map = COMPLEMENT_MAP
        self.d_model, self.n_layer, self.max_length, self.rcps = d_model, n_layer, max_length, rcps
        self.vocab_size = padded_vocab_size(vocab_size, pad_vocab_size_multiple)
        cmap = {int(k): int(v) for k, v in complement_map.items()}
        cmap.update({i: i for i in range(len(cmap), self.vocab_size)})  # padded ids: their own complement
        complement = _complement_tensor(cmap, self.vocab_size)
        self._init_cfg = dict(initializer_cfg or {})

        # module creation order = the reference's random-draw order
        embeddings = nn.Module()
        embeddings.word_embeddings = (RCPSEmbedding(self.vocab_size, d_model, complement) if rcps
                                      else nn.Embedding(self.vocab_size, d_model))
        layers = []
        for i in range(n_layer):
            mixer = BiMamba(d_model, bidirectional, bidirectional_strategy, bidirectional_weight_tie, layer_idx=i,
                            **(ssm_cfg or {}))
            norm = make_norm(d_model, rms_norm, norm_epsilon)
            layers.append(RCPSMambaBlock(mixer, norm, fused_add_norm, residual_in_fp32) if rcps
                          else MambaBlock(norm, mixer, residual_in_fp32))
        norm_f = make_norm(d_model, rms_norm, norm_epsilon)
        if rcps and not fused_add_norm:
            norm_f = RCPSAddNormWrapper(norm_f)
        self.caduceus = nn.Module()
        self.caduceus.backbone = CaduceusBackbone(embeddings, layers, norm_f, rcps, residual_in_fp32)
        self.lm_head = (RCPSLMHead(d_model, self.vocab_size, complement) if rcps
                        else nn.Linear(d_model, self.vocab_size, bias=False))
        self.register_buffer("_complement", complement, persistent=False)
        mamba_lm_init_(self, n_layer, **self._init_cfg)  # HF post_init: one pass, then the tie
        self.tie_weights()

    @property
    def word_embeddings(self) -> nn.Module:
        return self.caduceus.backbone.embeddings.word_embeddings

    def tie_weights(self) -> None:
        """LM head weight := embedding weight (one Parameter)."""
        if self.rcps:
            self.lm_head.lm_head.weight = self.word_embeddings.embedding.weight
        else:
            self.lm_head.weight = self.word_embeddings.weight

    def reset_parameters(self) -> None:
        """Fresh reference initialisation (module defaults, Mamba dt/A/D init, then the LM init and the tie)."""
        reset_module_parameters_(self)
        mamba_lm_init_(self, self.n_layer, **self._init_cfg)
        self.tie_weights()

    def hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) ids -> (B, L, d_model) after norm_f; RCPS: (B, L, 2 d_model), reference layout."""
        return self.caduceus.backbone(check_input_ids(input_ids, self.vocab_size, type(self).__name__))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) ids -> (B, L, padded vocab) logits."""
        return self.lm_head(self.hidden_states(input_ids))

    def conjoined_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Caduceus-PH evaluation: mean of the logits of x and of RC(x) mapped back (flip, complement)."""
        return conjoin(self, input_ids, self._complement, undo_token_logits(self._complement))

    # ------------------------------------------------------------------ reference interop

    @classmethod
    def from_reference_config(cls, model_config: dict[str, Any], **overrides: Any) -> "CaduceusLM":
        """Build from a reference `model_config.json` dict ({"config": {...}} or the inner dict) or an HF
        `config.json` dict. `complement_map: null` is filled from `dnax.tokenizer`; an already padded
        `vocab_size` (HF) stays as is. Unknown keys raise."""
        cfg = dict(model_config.get("config", model_config))
        for key in ("_target_", "architectures", "model_type", "torch_dtype", "transformers_version", "auto_map"):
            cfg.pop(key, None)
        if cfg.get("complement_map") is not None:
            cfg["complement_map"] = {int(k): int(v) for k, v in cfg["complement_map"].items()}
        cfg.update(overrides)
        return cls(**cfg)

    @classmethod
    def from_hf(cls, directory: str | Path, **overrides: Any) -> "CaduceusLM":
        """Load a Hugging Face Caduceus directory (`config.json` + `model.safetensors`, as the caduceus repo
        releases models; tied copies absent there are re-tied). Strict: missing or extra keys raise. Eval mode."""
        from safetensors.torch import load_file

        d = Path(directory)
        model = cls.from_reference_config(json.loads((d / "config.json").read_text()), **overrides)
        state = load_file(str(d / "model.safetensors"))
        model.load_state_dict(complete_tied_keys(model, state), strict=True)
        return model.eval()


def complete_tied_keys(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add the keys of tied parameters that a de-duplicated state dict (HF `save_pretrained`) left out, taking
    the tensor saved under another name of the same parameter."""
    state = dict(state)
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    for group in names.values():
        present = [n for n in group if n in state]
        for n in group:
            if n not in state and present:
                state[n] = state[present[0]]
    return state

