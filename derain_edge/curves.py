"""Training-curve plots, written next to the checkpoints so a glance tells whether a run is healthy."""
from __future__ import annotations

from pathlib import Path

from .files import atomic_path


def plot_training_curve(history: dict, path: str | Path, title: str = "training") -> Path:
    """history: {"loss": [[step, value], …], "val_psnr_y": [[step, dB], …]} → PNG with loss and validation PSNR-Y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if history.get("loss"):
        steps, values = zip(*history["loss"])
        ax.plot(steps, values, color="tab:blue", lw=1, label="training loss")
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss", color="tab:blue")
    if history.get("val_psnr_y"):
        ax2 = ax.twinx()
        steps, values = zip(*history["val_psnr_y"])
        ax2.plot(steps, values, "o-", color="tab:red", ms=3, label="validation PSNR-Y (mean)")
        for name in (history["val_sets"][-1][1] if history.get("val_sets") else {}):
            if name != "score":  # one thin line per condition: heavy, light, dry
                ax2.plot([s for s, _ in history["val_sets"]], [v[name] for _, v in history["val_sets"]], lw=0.8, alpha=0.7, label=name)
        ax2.set_ylabel("validation PSNR-Y (dB)", color="tab:red")
        if history.get("val_sets"):
            ax2.legend(loc="lower right", fontsize=7)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
