"""The training-curve PNG of an ANLCL-lite run: loss terms, D/G balance, η and the rain branch, and the probe's
PSNR-Y / SSIM-Y per set beside them (dashed: the rainy input's own score, i.e. doing nothing).

`python -m anlcl_lite.curve RUN_DIR [OUT.png]` redraws it from RUN_DIR/scalars.json."""
from __future__ import annotations

import json
import sys
from pathlib import Path

LOSS_SKIP = {"step", "stage", "seconds", "total", "d", "d_real", "d_fake", "d_o", "eta", "r_abs", "r_cover", "probe"}


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in rows:
        v = r.get(key)
        if v is not None and v != "":
            xs.append(int(r["step"]))
            ys.append(float(v))
    return xs, ys


def _legend(ax, **kw) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def draw_curve(rows: list[dict], path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for r in rows for k in r})
    probe_sets = sorted({k.split("/")[1] for k in keys if k.startswith("probe/")})
    terms = [k for k in keys if k not in LOSS_SKIP and not k.startswith("probe/")]
    stage2 = [r["step"] for r in rows if r.get("stage") == 2 and not any(k.startswith("probe/") for k in r)]
    stage1 = [r["step"] for r in rows if r.get("stage") == 1 and "total" in r]
    boundary = max(stage1) if stage1 and stage2 else None

    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    ax = axes[0, 0]
    for k in terms:
        xs, ys = _series(rows, k)
        if xs and all(y > 0 for y in ys):
            ax.plot(xs, ys, label=k, lw=1)
    ax.set_yscale("log")
    ax.set_title("loss terms (unweighted)")
    _legend(ax, fontsize=7, ncol=2)

    ax = axes[0, 1]
    for k in ("d", "d_real", "d_fake", "adv", "d_o"):
        xs, ys = _series(rows, k)
        if xs:
            ax.plot(xs, ys, label=k, lw=1)
    ax.axhline(0.5, color="grey", lw=0.5, ls=":")
    ax.set_title("D/G balance: D loss, mean D(clean), mean D(B),\nG's adversarial term", fontsize=9)
    _legend(ax, fontsize=7)

    ax = axes[0, 2]
    for k in ("eta", "r_abs", "r_cover"):
        xs, ys = _series(rows, k)
        if xs:
            ax.plot(xs, ys, label=k, lw=1)
    for s in probe_sets:
        xs, ys = _series(rows, f"probe/{s}/rain_in_r")
        if xs:
            ax.plot(xs, ys, "o-", ms=3, label=f"rain in R: {s}", lw=1)
    ax.set_title("η (mean), mean |R|, rain-pixel share of R,\nprobe: share of the true rain in R", fontsize=9)
    _legend(ax, fontsize=7)

    for ax, metric, what in ((axes[1, 0], "psnr", "PSNR-Y (dB)"), (axes[1, 1], "ssim", "SSIM-Y")):
        for i, s in enumerate(probe_sets):
            xs, ys = _series(rows, f"probe/{s}/{metric}")
            if not xs:
                continue
            line, = ax.plot(xs, ys, "o-", ms=3, lw=1.2, label=s)
            base = [r.get(f"probe/{s}/input_{metric}") for r in rows if r.get(f"probe/{s}/input_{metric}") not in (None, "")]
            if base:
                ax.axhline(float(base[0]), color=line.get_color(), ls="--", lw=0.8)
        ax.set_title(f"probe {what}: never trained on\n(dashed: rainy input; dry: output vs input)", fontsize=9)
        _legend(ax, fontsize=7)

    ax = axes[1, 2]
    xs, ys = _series(rows, "total")
    ax.plot(xs, ys, lw=1, label="total")
    ax.set_title("objective (stage 1: init L1; stage 2: L_G)")
    ax.set_yscale("log")
    _legend(ax, fontsize=7)
    for ax in axes.flat:
        ax.set_xlabel("step")
        if boundary is not None:
            ax.axvline(boundary, color="k", lw=0.6, ls=":")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)
    return path


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m anlcl_lite.curve RUN_DIR [OUT.png]", file=sys.stderr)
        return 2
    run = Path(argv[0])
    rows = json.loads((run / "scalars.json").read_text())
    out = draw_curve(rows, argv[1] if len(argv) > 1 else run / "curve.png", title=str(run))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
