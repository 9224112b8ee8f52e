"""Load-time checks of an exported artifact against its sidecar and the runtime's contract.

A sidecar is a JSON file anyone can edit, so the runtime trusts none of it blindly:

* the artifact it names resolves inside the sidecar's own folder (no ``..``, no absolute path, no symlink out);
* an ONNX graph's own input/output names, dtypes, channel axis (layout) and fixed sizes must agree with the sidecar;
* every artifact, whatever its engine, must map a probe frame to the same H×W with 3 channels and plausible values
  (this catches models that return 1×1×3 or H×W×1, and a wrong ``value_range``);

each refusal is a one-line ``BackendError`` naming the field. The sidecar's own checksums (``export.sidecar``
``integrity``) catch edits of fields that the graph cannot confirm (``weights_sha256``, ``value_range``…).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import BackendError

CHANNELS = 3
PROBE_SIDE = 64  # dynamic artifacts are probed at 64×64 (a multiple of every model's alignment)
PROBE_MAX_CHANGE = 0.3  # mean |output − input| allowed on a rain-free frame (a wrong value range gives ~0.5)


def check_file(path: Path) -> None:
    """A clear error for files that cannot be a model at all (empty, unreadable)."""
    if path.is_file():
        try:
            size = path.stat().st_size
        except OSError as e:
            raise BackendError(f"{path}: cannot read it ({e.strerror or e})") from e
        if size == 0:
            raise BackendError(f"{path}: the file is empty (0 bytes; an interrupted copy or download?); "
                               "export or copy it again")


def _channel_axis(layout: str) -> int:
    return 3 if layout == "NHWC" else 1


def check_onnx_graph(path: Path, sidecar: dict | None) -> tuple[list[dict], list[dict]]:
    """The graph's own I/O entries, after checking them against `sidecar` (when given); BackendError naming the
    first field that disagrees."""
    from export.onnx_export import onnx_io

    try:
        g_in, g_out = onnx_io(path)
    except Exception as e:  # noqa: BLE001 - protobuf / onnx raise many types for a broken file
        raise BackendError(f"{path}: not a readable ONNX model ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from e
    if not g_in or not g_out:
        raise BackendError(f"{path}: not a usable ONNX model (the graph has {len(g_in)} input(s) and {len(g_out)} "
                           "output(s); a deraining model has one image in and one out)")
    sc = sidecar or {}
    for kind, graph in (("inputs", g_in), ("outputs", g_out)):
        spec = (sc.get(kind) or [None])[0]
        g = graph[0]
        if spec is not None:
            names = [e["name"] for e in graph]
            if spec["name"] not in names:
                raise BackendError(f"{path}: sidecar {kind}[0].name {spec['name']!r} is not in the graph "
                                   f"(its {kind}: {', '.join(map(repr, names))})")
            g = graph[names.index(spec["name"])]
            if spec.get("dtype") and np.dtype(spec["dtype"]) != np.dtype(g["dtype"]):
                raise BackendError(f"{path}: sidecar {kind}[0].dtype {spec['dtype']!r} disagrees with the graph "
                                   f"({g['dtype']})")
        shape = g["shape"]
        if len(shape) != 4:
            raise BackendError(f"{path}: {kind[:-1]} {g['name']!r} has shape {shape}; a deraining model takes and "
                               "gives N×3×H×W (or N×H×W×3) images")
        layout = (spec or {}).get("layout", "NCHW")
        axis = _channel_axis(layout)
        ch = shape[axis]
        other = 1 if axis == 3 else 3
        if ch != CHANNELS and spec is not None and shape[other] == CHANNELS:
            raise BackendError(f"{path}: sidecar {kind}[0].layout {layout!r} disagrees with the graph: "
                               f"{g['name']!r} has shape {shape} (channels at axis {other})")
        if isinstance(ch, int) and ch > 0 and ch != CHANNELS:
            raise BackendError(f"{path}: {kind[:-1]} {g['name']!r} has {ch} channel(s) (shape {shape}); the runtime "
                               f"works on {CHANNELS}-channel RGB images")
        if kind == "inputs":
            hw = [shape[1], shape[2]] if layout == "NHWC" else [shape[2], shape[3]]
            fixed = all(isinstance(d, int) and d > 0 for d in hw)
            sizes = sc.get("sizes")
            if spec is not None and fixed and sizes is not None:
                if sizes == "dynamic":
                    raise BackendError(f"{path}: sidecar sizes say \"dynamic\" but the graph takes only "
                                       f"{hw[1]}x{hw[0]} (WxH)")
                if any([int(v) for v in s] != hw for s in sizes):
                    listed = ", ".join(f"{s[1]}x{s[0]}" for s in sizes)
                    raise BackendError(f"{path}: sidecar sizes ({listed}, WxH) disagree with the graph, which takes "
                                       f"only {hw[1]}x{hw[0]}")
    return g_in, g_out


def check_value_ranges(sidecar: dict | None, where: str) -> None:
    for kind in ("inputs", "outputs"):
        for spec in (sidecar or {}).get(kind) or []:
            vr = spec.get("value_range", (0.0, 1.0))
            try:
                lo, hi = (float(v) for v in vr)
            except (TypeError, ValueError):
                raise BackendError(f"{where}: {kind}[].value_range {vr!r} is not [low, high]") from None
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi and max(abs(lo), abs(hi)) <= 65535):
                raise BackendError(f"{where}: {kind}[].value_range {vr!r} is not a usable pixel range "
                                   "(finite, low < high, within ±65535)")


def probe(backend, name: str = "") -> None:
    """Runs one smooth probe frame through `backend` and checks the output contract: same N and H×W, 3 channels,
    finite values that look like an image in [0, 1] (a wrong value_range puts them far outside)."""
    where = name or getattr(backend, "source", "") or "model"
    sizes = backend.sizes
    if sizes == "dynamic":
        h = w = PROBE_SIDE
        min_size = getattr(backend, "min_size", None)
        if min_size:
            h, w = max(h, int(min_size[0])), max(w, int(min_size[1]))
    else:
        h, w = min((tuple(int(v) for v in s) for s in sizes), key=lambda s: s[0] * s[1])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    x = np.stack([0.2 + 0.6 * xx / max(w - 1, 1), 0.2 + 0.6 * yy / max(h - 1, 1),
                  np.full((h, w), 0.5, np.float32)])[None].astype(np.float32)
    try:
        y = backend.run(np.ascontiguousarray(x))
    except BackendError:
        raise
    except Exception as e:  # noqa: BLE001 - an engine failing on a plain frame is reported at load, in one line
        raise BackendError(f"{where}: fails on a {w}x{h} probe frame: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    y = np.asarray(y)
    if y.shape != (1, CHANNELS, h, w):
        raise BackendError(f"{where}: output contract broken: a 1×3×{h}×{w} probe frame gave shape {tuple(y.shape)}; "
                           f"a deraining model must return 3 channels at the input's H×W")
    if not np.isfinite(y).all():
        raise BackendError(f"{where}: output contract broken: the probe frame gave NaN or infinite values")
    lo, hi = np.percentile(y, [1, 99])
    if lo < -0.5 or hi > 1.5 or float(np.abs(np.clip(y, 0, 1) - x).mean()) > PROBE_MAX_CHANGE:
        raise BackendError(f"{where}: a smooth rain-free probe frame in [0.2, 0.8] came back as {lo:.3g}..{hi:.3g} "
                           f"(mean change {float(np.abs(np.clip(y, 0, 1) - x).mean()):.2f}): the sidecar's value_range "
                           "does not match the model")
