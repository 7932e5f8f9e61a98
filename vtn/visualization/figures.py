"""Saving a matplotlib figure the way every picture of vtn is saved: its folder made, one line for a failed write,
the figure closed either way."""

import os

from vtn.utils.files import writing


def save_figure(fig, output: str, dpi: int) -> str:
    """`fig.savefig(output)` (any OS error becomes one OutputWriteError naming `output`), then close `fig`."""
    import matplotlib.pyplot as plt  # heavy: only when a picture is drawn

    try:
        with writing(output):
            os.makedirs(os.path.dirname(os.path.abspath(output)) or ".", exist_ok=True)
            fig.savefig(output, dpi=dpi)
    finally:
        plt.close(fig)
    return output
