"""dnax: config-as-code DNA language models (xLSTM, Mamba, Caduceus, Transformer++, HyenaDNA) on Fiddle + Composer."""

__version__ = "0.1.0"
