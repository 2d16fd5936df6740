"""Headless matplotlib figures rendered to PNG bytes (write them with `dnax.atomic.atomic_write_bytes`)."""
from __future__ import annotations

import io


def subplots(*args, **kwargs):
    """`matplotlib.pyplot.subplots` on the non-interactive Agg backend (no display needed); matplotlib is imported
    only when a plot is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def png_bytes(fig) -> bytes:
    """Lay out `fig`, render it as PNG and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
