"""Training tricks, each a pure function plus a thin Composer Algorithm."""
