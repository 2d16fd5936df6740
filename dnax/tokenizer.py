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


def encode(seq: str | bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """One DNA sequence (text, or its ASCII bytes) -> uint8 token ids (no special tokens added). Raises ValueError on a
    non-IUPAC character, naming it and its position; TypeError on anything but one sequence (e.g. a list)."""
    if isinstance(seq, str):
        raw = np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)  # one byte per character
    elif isinstance(seq, (bytes, bytearray, memoryview)) or (isinstance(seq, np.ndarray) and seq.dtype == np.uint8):
        raw = np.frombuffer(bytes(seq), dtype=np.uint8)
    else:
        raise TypeError(f"encode takes one sequence (str or bytes), got {type(seq).__name__}; encode each one")
    ids = ENCODE_TABLE[raw]
    bad = np.flatnonzero(ids == INVALID)
    if bad.size:
        pos = int(bad[0])
        char = seq[pos] if isinstance(seq, str) else chr(raw[pos])
        raise ValueError(f"invalid nucleotide {char!r} at position {pos}")
    return ids


def decode(ids) -> str:
    """One sequence of token ids (1-D: list, array or tensor) -> text; specials become '?'. Raises ValueError on
    ids outside 0..11 or another rank, TypeError on non-integer ids."""
    ids = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids)
    if ids.size == 0:
        return ""
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"decode takes integer token ids, got dtype {ids.dtype}")
    if ids.ndim != 1:
        raise ValueError(f"decode takes one sequence (1-D ids), got shape {ids.shape}; decode each row")
    if ids.min() < 0 or ids.max() >= VOCAB_SIZE:
        bad = ids.min() if ids.min() < 0 else ids.max()
        raise ValueError(f"decode: token id {bad} outside the vocabulary 0..{VOCAB_SIZE - 1}")
    return _DECODE[ids].tobytes().decode("ascii")


def complement(ids: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Complement every id (A<->T, C<->G; specials and N unchanged), any shape, any integer dtype; a numpy array
    (e.g. from `encode`) gives a numpy array."""
    if isinstance(ids, np.ndarray):
        return COMPLEMENT[ids].astype(ids.dtype, copy=False)
    table = torch.as_tensor(COMPLEMENT, device=ids.device).to(ids.dtype)
    return table[ids.long()]


def reverse_complement(ids: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Reverse complement along the last axis (tensor or numpy array, as `complement`)."""
    out = complement(ids)
    return out[..., ::-1].copy() if isinstance(out, np.ndarray) else out.flip(-1)
