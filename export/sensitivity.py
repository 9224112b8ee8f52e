"""Per-layer INT8 sensitivity, and keeping the sensitive layers in higher precision when INT8 misses its limit.

A "layer" here is a module of the PyTorch model (``pyramid.down``, ``subnets.4.block3a`` …): LPNet shares one module's
weights across its recursions, so one module is several ONNX Conv nodes, found through the weight initializer they
read. For each layer we quantize everything *except* that layer and measure the PSNR-Y drop against ground truth; the
layer whose exclusion recovers the most is kept in float (``nodes_to_exclude`` of the Q/DQ quantizer — TensorRT then
runs it in FP16/FP32), and the search repeats until the drop is within the limit or ``max_excluded`` layers are out.
"""
from __future__ import annotations

import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np

from .qdq import QUANT_OPS, quantize_qdq


def layer_groups(fp32_path: str | Path) -> "OrderedDict[str, list[str]]":
    """module name → ONNX node names of its convolutions, in graph order (e.g. 'subnets.4.head' → 5 Conv nodes)."""
    import onnx

    proto = onnx.load(str(fp32_path))
    inits = {i.name for i in proto.graph.initializer}
    groups: OrderedDict[str, list[str]] = OrderedDict()
    for node in proto.graph.node:
        if node.op_type in QUANT_OPS and len(node.input) > 1 and node.input[1] in inits:
            module = node.input[1].rsplit(".", 1)[0] if node.input[1].endswith(".weight") else node.input[1]
            groups.setdefault(module, []).append(node.name)
    return groups


def coarse_name(layer: str) -> str:
    """'subnets.3.block1' → 'subnets.3' (one pyramid level's sub-network); 'pyramid.up' stays itself."""
    parts = layer.split(".")
    return ".".join(parts[:2]) if parts[0] == "subnets" else layer


def find_exclusions(fp32_path: str | Path, calib: np.ndarray, drop_of: Callable[[Path], float], limit: float,
                    max_excluded: int = 4, method: str = "minmax", log: Callable[[str], None] = lambda s: None) -> dict:
    """Greedy search for few layers to keep in float so that ``drop_of(qdq_path) ≤ limit``.

    Each round first finds the most sensitive *block* (a pyramid operator or one level's sub-network: 7 probes),
    then the most sensitive layer inside it (≤ 5 probes), and keeps that layer in float. Returns
    ``{"limit_db", "baseline_drop_db", "rounds": [{"blocks": {block: drop}, "layers": {layer: drop}, "excluded",
    "drop_db"}], "excluded": [layers], "nodes_to_exclude": [...], "drop_db", "met"}``.
    """
    groups = layer_groups(fp32_path)
    blocks: OrderedDict[str, list[str]] = OrderedDict()
    for layer in groups:
        blocks.setdefault(coarse_name(layer), []).append(layer)
    excluded: list[str] = []
    rounds = []
    with tempfile.TemporaryDirectory(prefix="derain-sens-") as tmp:
        def drop_without(layers: list[str]) -> float:
            nodes = [n for layer in layers for n in groups[layer]]
            path = quantize_qdq(fp32_path, Path(tmp) / "probe.onnx", calib, method=method, nodes_to_exclude=nodes)
            return round(float(drop_of(path)), 4)

        current = baseline = drop_without([])
        log(f"INT8 sensitivity: every layer int8 → PSNR-Y drop {current:.3f} dB (limit {limit} dB)")
        if current > limit:
            floor = drop_without(list(groups))  # only the graph input quantized: the best any exclusion can do
            if floor > limit:
                log(f"  even with every layer in float the drop is {floor:.3f} dB: no exclusion can meet the limit")
                return {"limit_db": limit, "baseline_drop_db": baseline, "all_float_drop_db": floor, "rounds": [],
                        "excluded": [], "nodes_to_exclude": [], "drop_db": current, "met": False}
        while current > limit and len(excluded) < max_excluded:
            block_drops = {}
            for block, layers in blocks.items():
                todo = [layer for layer in layers if layer not in excluded]
                if todo:
                    block_drops[block] = drop_without(excluded + todo)
                    log(f"  {block} in float → {block_drops[block]:.3f} dB")
            if not block_drops:
                break
            block = min(block_drops, key=block_drops.get)
            todo = [layer for layer in blocks[block] if layer not in excluded]
            layer_drops = {todo[0]: block_drops[block]} if len(todo) == 1 else {}
            for layer in todo if len(todo) > 1 else []:
                layer_drops[layer] = drop_without(excluded + [layer])
                log(f"    {layer} in float → {layer_drops[layer]:.3f} dB")
            layer = min(layer_drops, key=layer_drops.get)
            rounds.append({"blocks": block_drops, "layers": layer_drops, "excluded": layer, "drop_db": layer_drops[layer]})
            if layer_drops[layer] >= current:
                break  # keeping any single layer in float no longer helps
            excluded.append(layer)
            current = layer_drops[layer]
            log(f"  → {layer} stays in float: {current:.3f} dB")
    return {"limit_db": limit, "baseline_drop_db": baseline, "rounds": rounds, "excluded": excluded,
            "nodes_to_exclude": [n for layer in excluded for n in groups[layer]], "drop_db": current,
            "met": current <= limit}
