"""A toy backbone for classifier tests: each position's hidden state is a function of its own token only."""
import torch
from torch import nn

from dnax import tokenizer as tk


class TokenwiseBackbone(nn.Module):
    """hidden state of a position = f(its token only): padding cannot leak into the real tokens' states."""

    def __init__(self, d_model=8):
        super().__init__()
        self.d_model = d_model
        self.emb = nn.Embedding(tk.VOCAB_SIZE, d_model)

    def hidden_states(self, ids):
        return torch.tanh(self.emb(ids))
