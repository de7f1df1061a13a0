"""matplotlib for every plot of the project, on the file-only Agg backend.

Imported only by the lab's plotting functions: never on the app's run path."""
from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, plt, path: Path) -> Path:
    """Write ``fig`` to ``path`` (folders created) and free it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
