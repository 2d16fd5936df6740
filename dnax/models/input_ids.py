"""The input check every backbone runs on its token ids: one clear error for the simple mistakes.

Shape and dtype checks read only tensor metadata. The id range is checked on CPU tensors only (outside
torch.compile): on a GPU it would need a device-to-host sync every step, and an id out of range there still ends in
a device-side assert.
"""
from __future__ import annotations

import torch

_WIDENED = (torch.uint8, torch.int8, torch.int16)  # nn.Embedding takes int32 / int64 only


def check_input_ids(input_ids: torch.Tensor, num_embeddings: int, owner: str, *,
                    allow_empty: bool = False) -> torch.Tensor:
    """`input_ids` as the embedding takes them: (B, L) integer ids in [0, num_embeddings).

    uint8 / int8 / int16 ids (what `dnax.tokenizer.encode` returns) are widened to int64; float, bool and complex
    ids, another rank, no tokens (unless `allow_empty`) and, on CPU, ids outside the embedding raise, naming `owner`.
    """
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"{owner}: input_ids must be a torch.Tensor of token ids, got {type(input_ids).__name__}")
    if input_ids.dtype.is_floating_point or input_ids.dtype.is_complex or input_ids.dtype == torch.bool:
        raise TypeError(f"{owner}: input_ids must be integer token ids (torch.long), got {input_ids.dtype}")
    if input_ids.dim() != 2:
        raise ValueError(f"{owner}: input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
    if input_ids.numel() == 0 and not allow_empty:
        raise ValueError(f"{owner}: input_ids has no tokens (shape {tuple(input_ids.shape)})")
    if input_ids.dtype in _WIDENED:
        input_ids = input_ids.long()
    if input_ids.device.type == "cpu" and input_ids.numel() and not torch.compiler.is_compiling():
        low, high = (int(v) for v in torch.aminmax(input_ids))
        if low < 0 or high >= num_embeddings:
            bad = low if low < 0 else high
            raise ValueError(f"{owner}: token id {bad} outside the vocabulary 0..{num_embeddings - 1} "
                             "(ids come from dnax.tokenizer.encode, not raw bytes)")
    return input_ids
