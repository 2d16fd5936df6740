"""The Genomic Benchmarks baseline CNN (Grešová et al. 2023; genomic-benchmarks `models/torch.py` `CNN`), as a
sequence-feature backbone for `dnax.models.classifier.SequenceClassifier`.

    ids (B, L) -> embedding (B, L, E=100) -> 3 x [Conv1d(k=8, valid) -> BatchNorm1d -> ReLU -> MaxPool1d(2)]
        channels E -> 16 -> 8 -> 4 -> flatten (B, 4 * L3) -> Linear(., 512)  =  features (B, 512)

The classifier's head is the paper's final `Linear(512, outputs)` (no activation in between, as in the paper).
Differences from the paper's code: `num_classes` logits with cross-entropy instead of one sigmoid output (the
paper's code handles 2 classes only; Caduceus' port does the same); the ReLU after blocks 2 and 3, which
Caduceus' port (`genomics_benchmark_cnn.py`) drops, is kept as in the paper. The flatten size depends on the
input length, so every batch must be padded to `max_length` (the downstream loaders do).
"""
from __future__ import annotations

import torch
from torch import nn

from dnax.models.input_ids import check_input_ids


class GenomicBenchmarksCNN(nn.Module):
    """Args: `max_length` (the padded input length), `vocab_size`, `embedding_dim` (100 in the paper's
    experiments), `d_output` (512)."""

    def __init__(self, max_length: int, vocab_size: int = 12, embedding_dim: int = 100, d_output: int = 512):
        init_kwargs = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__()
        #: the constructor arguments, for `dnax.pretrained.save_pretrained`
        self.init_kwargs = init_kwargs
        self.max_length, self.d_output = max_length, d_output
        layers, channels = [], embedding_dim
        for out in (16, 8, 4):
            layers += [nn.Conv1d(channels, out, kernel_size=8), nn.BatchNorm1d(out), nn.ReLU(), nn.MaxPool1d(2)]
            channels = out
        self.embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        length = max_length
        for _ in range(3):
            length = (length - 7) // 2
        if length < 1:
            raise ValueError(f"max_length {max_length} is too short for 3 conv(8)+pool(2) blocks (needs >= 50)")
        self.dense = nn.Linear(4 * length, d_output)

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def sequence_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, max_length) token ids -> (B, d_output)."""
        input_ids = check_input_ids(input_ids, self.embeddings.num_embeddings, type(self).__name__, allow_empty=True)
        if input_ids.shape[-1] != self.max_length:
            raise ValueError(f"GenomicBenchmarksCNN expects inputs padded to max_length {self.max_length}, "
                             f"got length {input_ids.shape[-1]}")
        x = self.embeddings(input_ids).transpose(1, 2)  # (B, E, L)
        return self.dense(self.cnn(x))

    forward = sequence_features
