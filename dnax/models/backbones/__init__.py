"""Sequence backbones: token ids -> logits, each owning its embedding and LM head."""
