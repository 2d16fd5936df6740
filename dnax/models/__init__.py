"""dnax models: backbones, layers and the Composer LM wrapper. Import submodules directly (cheap package)."""
