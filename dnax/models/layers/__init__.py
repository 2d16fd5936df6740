"""Layers shared by the backbones (xLSTM mLSTM/sLSTM, RCPS wrappers, small components)."""
