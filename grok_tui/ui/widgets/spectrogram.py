"""Spectrogram: the Fourier norm of W_E or W_L per frequency (rows) over checkpoints (columns,
their ticks labelled by epoch).

A heatmap with a sequential colour map; each column is that checkpoint's spectrum as shares
(ProgressTable.spectrum_shares), so the key frequencies show as bright rows that emerge
during circuit formation whatever the overall size of the weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grok_tui.ui.widgets.heatmap import Heatmap


class Spectrogram(Heatmap):
    """Frequency x checkpoint heatmap of a ProgressTable's W_E or W_L Fourier norms."""

    DEFAULT_CSS = """
    Spectrogram { height: 1fr; min-height: 6; }
    """
    can_focus = False  # no cursor: the arrow keys stay with the checkpoint timeline

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keep_aspect=False, zoom=True, show_cursor=False, **kwargs)
        self.matrix = "W_E"

    def show_table(self, table: Any, matrix: str) -> None:
        """Draw one matrix's spectrogram from a ProgressTable (None or empty: no data)."""
        self.matrix = matrix
        if table is None or not len(table):
            self.set_data(np.zeros((0, 0)), title=f"{matrix} Fourier norms: nothing yet")
            return
        shares = table.spectrum_shares(matrix)  # (n, K)
        rows = np.vstack([np.full((1, len(shares)), np.nan), shares.T])  # row k = frequency k
        epochs = table.epochs
        keys = ", ".join(map(str, table.key_freqs)) or "none yet"
        self.set_data(
            rows,  # rows: frequency k (row 0, the constant, left empty); columns: checkpoints
            diverging=False,
            vmin=0.0,
            title=(
                f"{matrix} norm per frequency, share of each checkpoint's total "
                f"(epochs {int(epochs[0]):,}-{int(epochs[-1]):,}; key freqs {keys})"
            ),
            x_label="epoch",
            y_label="k",
            x_names=[f"{int(e):,}" for e in epochs],  # a column per checkpoint, named by epoch
        )
