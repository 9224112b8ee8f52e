"""The `triton` target: a Triton Inference Server model repository for GPU servers and DeepStream (`nvinferserver`).

    derain-export --target triton --out exports/          # → exports/triton/lpnet_fp32/{config.pbtxt, 1/model.onnx}
    tritonserver --model-repository exports/triton        # on a box with Triton's ONNX Runtime backend

Layout (Triton's model repository convention)::

    exports/triton/lpnet_fp32/
        config.pbtxt                    platform onnxruntime_onnx, dynamic batching, I/O names from the sidecar
        1/model.onnx                    the ONNX export with a dynamic batch dimension (+ model.onnx.json sidecar)
        config.tensorrt_plan.pbtxt      the same model as a TensorRT plan (GPU boxes) …
        make_plan.sh                    … built on the GPU box by trtexec into ../lpnet_fp32_trt/

The ONNX export has batch 1; the repository's copy gets a symbolic batch dimension, checked here by running a batch
of 2 against two single frames in onnxruntime (identical, or the export fails). ``validate_repository`` parses
config.pbtxt with Triton's own protobuf schema (``tritonclient.grpc.model_config_pb2``) and checks names, data types
and dims against the ONNX graph and the sidecar. Serving this repository needs Triton's ONNX Runtime or TensorRT
backend, which PyTriton (``derain-serve``) does not ship; ``derain-serve`` serves any Derainer model instead.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .artifact import Exported

MAX_BATCH = 8
QUEUE_DELAY_US = 2000
BATCH_DIM = "batch"
# ONNX element type name (numpy) → Triton data type
TRITON_DTYPE = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "uint8": "TYPE_UINT8", "int8": "TYPE_INT8"}
# TensorRT profile for the plan route: (H, W) smallest / tuned / largest, batch 1 … MAX_BATCH
PLAN_PROFILE = {"min": (16, 16), "opt": (480, 640), "max": (1080, 1920)}


class TritonRepositoryError(ValueError):
    """The model repository is inconsistent (config vs ONNX graph vs sidecar)."""


def export_triton(model, job) -> list[Exported]:
    """One model folder per size (one for dynamic H×W) under OUT/triton/; returns them as Exported for the
    exporter's parity/cost checks (the runner is onnxruntime on the repository's model.onnx)."""
    import tempfile

    from .formats import BY_NAME
    from .onnx_export import export_onnx, onnx_io, versions

    job.check(BY_NAME["triton"])
    precision, max_batch = job.precision, int(job.options.get("max_batch", MAX_BATCH))
    repo = job.out_dir / "triton"
    results = []
    with tempfile.TemporaryDirectory(prefix="derain-triton-") as scratch:
        for exp in export_onnx(model, job.replace(out_dir=Path(scratch))):
            name = Path(exp.path).stem  # lpnet_fp32, lpnet_fp32_640x480, …
            folder = repo / name
            if folder.exists():
                shutil.rmtree(folder)
            onnx_path = folder / "1" / "model.onnx"
            onnx_path.parent.mkdir(parents=True)
            batchable = dynamic_batch_copy(exp.path, onnx_path)
            inputs, outputs = onnx_io(onnx_path)
            mb = max_batch if batchable else 0
            write_config(folder / "config.pbtxt", name, "onnxruntime_onnx", inputs, outputs, mb)
            companions = ["../config.pbtxt"]
            if batchable:
                write_config(folder / "config.tensorrt_plan.pbtxt", f"{name}_trt", "tensorrt_plan", inputs, outputs,
                             mb)
                write_plan_script(folder / "make_plan.sh", name, inputs[0]["name"], precision, mb)
                companions += ["../config.tensorrt_plan.pbtxt", "../make_plan.sh"]
            validate_repository(folder, sidecar=False)
            extra = {k: v for k, v in exp.extra.items() if k != "companions"}
            extra["triton"] = {"repository": str(repo), "model_name": name, "platform": "onnxruntime_onnx",
                               "max_batch_size": mb, "dynamic_batching": bool(mb),
                               "max_queue_delay_microseconds": QUEUE_DELAY_US if mb else None,
                               "tensorrt_plan": "make_plan.sh → ../{}_trt/".format(name) if mb else None}
            extra["companions"] = companions
            results.append(Exported(path=onnx_path, target="triton", format="onnx", precision=precision,
                                    inputs=inputs, outputs=outputs, sizes=exp.sizes, versions=versions(),
                                    extra=extra))
    return results


def dynamic_batch_copy(src, dst) -> bool:
    """Copies the ONNX with a symbolic batch dimension on its inputs/outputs when a batch of 2 gives exactly the
    single-frame results in onnxruntime; otherwise copies it unchanged and returns False (max_batch_size 0)."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(src))
    for v in list(proto.graph.input) + list(proto.graph.output) + list(proto.graph.value_info):
        dims = v.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = BATCH_DIM
    try:
        onnx.checker.check_model(proto)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        inp = session.get_inputs()[0]
        h, w = [d if isinstance(d, int) else s for d, s in zip(inp.shape[2:], (24, 32))]
        dtype = np.float16 if "float16" in inp.type else np.float32
        x = np.random.default_rng(0).random((2, 3, h, w)).astype(dtype)
        both = session.run(None, {inp.name: x})[0]
        single = np.concatenate([session.run(None, {inp.name: x[i:i + 1]})[0] for i in range(2)])
        ok = both.shape == single.shape and np.array_equal(both, single)
    except Exception:  # noqa: BLE001 - a graph that cannot batch is served with batch 1
        ok = False
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    if ok:
        onnx.save_model(proto, str(dst))
    else:
        shutil.copyfile(src, dst)
    return ok


def _dims(shape, batched: bool) -> list[int]:
    dims = shape[1:] if batched else shape
    return [int(d) if isinstance(d, int) and d > 0 else -1 for d in dims]


def config_text(name: str, platform: str, inputs: list[dict], outputs: list[dict], max_batch: int) -> str:
    """config.pbtxt (protobuf text format of Triton's ModelConfig)."""
    def tensors(entries):
        rows = []
        for e in entries:
            dims = ", ".join(str(d) for d in _dims(e["shape"], max_batch > 0))
            rows.append(f'  {{\n    name: "{e["name"]}"\n    data_type: {TRITON_DTYPE[e["dtype"]]}\n'
                        f'    dims: [ {dims} ]\n  }}')
        return ",\n".join(rows)

    text = (f'# Written by derain-export --target triton. Frames: NCHW float32 RGB in [0, 1], any H×W.\n'
            f'name: "{name}"\nplatform: "{platform}"\nmax_batch_size: {max_batch}\n'
            f'input [\n{tensors(inputs)}\n]\noutput [\n{tensors(outputs)}\n]\n')
    if max_batch > 0:
        text += f"dynamic_batching {{\n  max_queue_delay_microseconds: {QUEUE_DELAY_US}\n}}\n"
    text += "instance_group [\n  {\n    count: 1\n    kind: KIND_AUTO\n  }\n]\n"
    return text


def write_config(path: Path, name: str, platform: str, inputs, outputs, max_batch: int) -> Path:
    Path(path).write_text(config_text(name, platform, inputs, outputs, max_batch))
    return Path(path)


def write_plan_script(path: Path, name: str, input_name: str, precision: str, max_batch: int) -> Path:
    """make_plan.sh: trtexec builds the plan on the GPU box (engines are not portable), into ../NAME_trt/."""
    def shape(hw, n):
        return f"{input_name}:{n}x3x{hw[0]}x{hw[1]}"

    p = PLAN_PROFILE
    flags = {"fp32": "", "fp16": "--fp16", "int8": "--int8 --fp16"}[precision]
    text = f"""#!/usr/bin/env bash
# Builds the TensorRT plan of this model on the GPU that will serve it (run inside NVIDIA's Triton/TensorRT
# container, or where trtexec is on PATH), as a second model of this repository: ../{name}_trt/.
# TensorRT 11 is strongly typed: precision comes from the ONNX (FP16 weights, Q/DQ), pass TRT_STRONGLY_TYPED=1.
set -euo pipefail
cd "$(dirname "$0")"
out=../{name}_trt
mkdir -p "$out/1"
flags="{flags}"
[ "${{TRT_STRONGLY_TYPED:-0}}" = 1 ] && flags="--stronglyTyped"
trtexec --onnx=1/model.onnx --saveEngine="$out/1/model.plan" $flags \\
  --minShapes={shape(p['min'], 1)} --optShapes={shape(p['opt'], min(4, max_batch))} \\
  --maxShapes={shape(p['max'], max_batch)}
cp config.tensorrt_plan.pbtxt "$out/config.pbtxt"
echo "plan in $out; restart tritonserver or load model {name}_trt"
"""
    Path(path).write_text(text)
    Path(path).chmod(0o755)
    return Path(path)


def parse_config(path: Path):
    """config.pbtxt → Triton's ModelConfig protobuf (TritonRepositoryError naming the file when it does not parse)."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError as e:
        raise TritonRepositoryError(f"cannot parse {path}: tritonclient[grpc] is not installed ({e}); "
                                    'pip install -c constraints.txt "derain-edge[serve]"') from e
    try:
        return text_format.Parse(Path(path).read_text(), model_config_pb2.ModelConfig())
    except text_format.ParseError as e:
        raise TritonRepositoryError(f"{path}: {e}") from e


def validate_repository(model_dir: Path, sidecar: bool = True) -> dict:
    """Checks one model folder: config.pbtxt (and config.tensorrt_plan.pbtxt) parse with Triton's schema, the name
    is the folder's, the ONNX graph's inputs/outputs match the config by name, type and dims, and — with
    `sidecar` — the sidecar's I/O entries match both. Returns a summary; TritonRepositoryError on any mismatch."""
    from .onnx_export import onnx_io

    model_dir = Path(model_dir)
    onnx_path = model_dir / "1" / "model.onnx"
    if not onnx_path.is_file():
        raise TritonRepositoryError(f"{model_dir}: no 1/model.onnx")
    graph_in, graph_out = onnx_io(onnx_path)
    problems = []
    configs = {}
    for cfg_name, platform, expected_name in (("config.pbtxt", "onnxruntime_onnx", model_dir.name),
                                              ("config.tensorrt_plan.pbtxt", "tensorrt_plan", f"{model_dir.name}_trt")):
        path = model_dir / cfg_name
        if not path.exists():
            if cfg_name == "config.pbtxt":
                raise TritonRepositoryError(f"{model_dir}: no config.pbtxt")
            continue
        cfg = parse_config(path)
        configs[cfg_name] = cfg
        if cfg.name != expected_name:
            problems.append(f"{cfg_name}: name {cfg.name!r}, expected {expected_name!r}")
        if cfg.platform != platform:
            problems.append(f"{cfg_name}: platform {cfg.platform!r}, expected {platform!r}")
        batched = cfg.max_batch_size > 0
        if batched and not cfg.HasField("dynamic_batching"):
            problems.append(f"{cfg_name}: max_batch_size {cfg.max_batch_size} without dynamic_batching")
        for kind, tensors, graph in (("input", cfg.input, graph_in), ("output", cfg.output, graph_out)):
            if [t.name for t in tensors] != [g["name"] for g in graph]:
                problems.append(f"{cfg_name}: {kind} names {[t.name for t in tensors]} != ONNX "
                                f"{[g['name'] for g in graph]}")
                continue
            for t, g in zip(tensors, graph):
                from tritonclient.grpc import model_config_pb2

                dtype = model_config_pb2.DataType.Name(t.data_type)
                if dtype != TRITON_DTYPE.get(g["dtype"]):
                    problems.append(f"{cfg_name}: {kind} {t.name} is {dtype}, ONNX has {g['dtype']}")
                if batched and not (isinstance(g["shape"][0], str) or g["shape"][0] == -1):
                    problems.append(f"{cfg_name}: max_batch_size {cfg.max_batch_size} but ONNX {kind} {t.name} has "
                                    f"a fixed batch of {g['shape'][0]}")
                if list(t.dims) != _dims(g["shape"], batched):
                    problems.append(f"{cfg_name}: {kind} {t.name} dims {list(t.dims)}, ONNX "
                                    f"{_dims(g['shape'], batched)}")
    side = None
    if sidecar:
        from .sidecar import read_sidecar

        side = read_sidecar(onnx_path)
        for kind, entries, graph in (("inputs", side["inputs"], graph_in), ("outputs", side["outputs"], graph_out)):
            got = [(e["name"], e["dtype"], list(e["shape"])) for e in entries]
            want = [(g["name"], g["dtype"], list(g["shape"])) for g in graph]
            if got != want:
                problems.append(f"sidecar {kind} {got} != ONNX {want}")
        if side.get("target") != "triton":
            problems.append(f"sidecar target {side.get('target')!r}, expected 'triton'")
    if problems:
        raise TritonRepositoryError(f"{model_dir}: " + "; ".join(problems))
    main = configs["config.pbtxt"]
    return {"model": main.name, "max_batch_size": main.max_batch_size,
            "inputs": [t.name for t in main.input], "outputs": [t.name for t in main.output],
            "configs": sorted(configs), "sidecar": bool(side)}
