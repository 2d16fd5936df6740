"""The 12-id character vocabulary of the reference (Caduceus/DNA-xLSTM `CharacterTokenizer`): the single source of truth.

    [CLS]0 [SEP]1 [BOS]2 [MASK]3 [PAD]4 [RESERVED]5 [UNK]6 A7 C8 G9 T10 N11

Differences from the reference, on purpose:
- lowercase (soft-masked) bases map like uppercase (the reference maps them to [UNK]);
- IUPAC ambiguity codes (R Y K M S W B D H V, either case) map to N.
Any other byte is invalid: `encode` raises, naming the first offending position.
"""
from __future__ import annotations

import numpy as np
import torch

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]")
BASES = ("A", "C", "G", "T", "N")
VOCAB = SPECIAL_TOKENS + BASES
VOCAB_SIZE = len(VOCAB)  # 12

CLS, SEP, BOS, MASK, PAD, RESERVED, UNK = range(7)
A, C, G, T, N = range(7, 12)
NUCLEOTIDES = (A, C, G, T)

_COMPLEMENT_BASE = {A: T, C: G, G: C, T: A}
#: id -> id of its complement; specials and N map to themselves (an involution).
COMPLEMENT = np.array([_COMPLEMENT_BASE.get(i, i) for i in range(VOCAB_SIZE)], dtype=np.uint8)
#: the same as the {id: id} dict the reference passes to RCPS modules.
COMPLEMENT_MAP = {i: int(c) for i, c in enumerate(COMPLEMENT)}

INVALID = 255
_IUPAC_AMBIGUOUS = "RYKMSWBDHVN"


def _build_encode_table() -> np.ndarray:
    table = np.full(256, INVALID, dtype=np.uint8)
    for base, idx in zip("ACGT", NUCLEOTIDES):
        table[ord(base)] = table[ord(base.lower())] = idx
    for code in _IUPAC_AMBIGUOUS:
        table[ord(code)] = table[ord(code.lower())] = N
    return table


#: byte -> token id (INVALID for bytes that are not nucleotides or IUPAC codes).
ENCODE_TABLE = _build_encode_table()
_DECODE = np.array([ord(c) for c in "??????" + "?" + "ACGTN"], dtype=np.uint8)


def encode(seq: str | bytes | bytearray | memoryview) -> np.ndarray:
    """DNA text -> uint8 token ids (no special tokens added). Raises ValueError on a non-IUPAC character."""
    raw = np.frombuffer(seq.encode("ascii", "replace") if isinstance(seq, str) else bytes(seq), dtype=np.uint8)
    ids = ENCODE_TABLE[raw]
    bad = np.flatnonzero(ids == INVALID)
    if bad.size:
        pos = int(bad[0])
        raise ValueError(f"invalid nucleotide {chr(raw[pos])!r} at position {pos}")
    return ids


def decode(ids) -> str:
    """Token ids -> text; specials become '?'."""
    ids = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids, dtype=np.int64)
    return _DECODE[ids].tobytes().decode("ascii")


def complement(ids: torch.Tensor) -> torch.Tensor:
    """Complement every id (A<->T, C<->G; specials and N unchanged), any shape, any integer dtype."""
    table = torch.as_tensor(COMPLEMENT, device=ids.device).to(ids.dtype)
    return table[ids.long()]


def reverse_complement(ids: torch.Tensor) -> torch.Tensor:
    """Reverse complement along the last axis."""
    return complement(ids).flip(-1)
