"""The export pipeline: validate everything up front, then per target and precision export → measure → accept/reject.

Every target is ``export_<target>(model, job)`` with one ``export.job.ExportJob``. For every artifact it returns
(``export.artifact.Exported``) the exporter measures, through the runtime's engine for the format and its pad/tile
policy (``derain_edge.engines``), **parity** (max|Δ| and PSNR-Y against FP32 PyTorch on a seeded test image at the
artifact's size) and the **accuracy cost** on the validation pairs at their own size (``export.cost``; once per
precision for the fixed-size artifacts that pad every pair — the others of them take it over,
``cost["measured_with"]`` — and on its own for an artifact that tiles some pair), writes the
sidecar (``export.sidecar``), and rejects the artifact — deleting it — when the PSNR-Y drop against ground truth
exceeds its precision's limit (``export.formats.MAX_DROP_DB``), unless ``allow_degraded``. Nothing is exported before
every argument, input folder and backend has been checked, so a typo never costs a half-finished run.
"""
from __future__ import annotations

import hashlib
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import formats as F
from .artifact import Exported
from .job import ExportJob, Workspace
from derain_edge.progress import Steps


class ExportArgumentError(ValueError):
    """A bad argument or input, found before any work is done; the message names it (and suggests a fix)."""


@dataclass
class ExportRequest:
    targets: list[F.Format]
    precisions: dict[str, tuple[str, ...]]
    model: str = "lpnet"
    weights: Path | None = None
    calib: str | None = None
    calib_count: int = 32
    sizes: list[tuple[int, int]] | None = None
    val: Path | None = None
    val_limit: int | None = None
    out: Path = Path("exports")
    allow_degraded: bool = False
    opset: int = 20
    skipped: list[str] = field(default_factory=list)  # targets left out because they lack --precision


@dataclass
class Result:
    target: str
    precision: str
    path: Path | None
    status: str                      # "ok" | "degraded" | "failed" | "unchecked"
    reason: str = ""
    sidecar: Path | None = None
    parity: dict | None = None
    cost: dict | None = None
    limit_db: float | None = None


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status == "failed"]


# ----------------------------------------------------------------------------------------------- validation
def parse_size(text: str) -> tuple[int, int]:
    """'640x480' (W×H, width first like every command) → (480, 640) = (height, width)."""
    from derain_edge.sizes import parse_size as _parse

    return _parse(text, minimum=16, maximum=8192, error=ExportArgumentError)


def validate(targets, *, precision: str | None = None, model: str = "lpnet", weights=None, calib=None,
             sizes=None, dynamic: bool = False, val=None, out="exports", allow_degraded: bool = False,
             calib_count: int = 32, val_limit: int | None = None, opset: int = 20) -> ExportRequest:
    """Checks every argument and input path, keyword-only (the one place arguments are validated; the targets get
    an ``ExportJob`` built from the result); returns the request or raises ExportArgumentError naming the problem."""
    from derain_edge.registry import list_models

    names = [t for item in ([targets] if isinstance(targets, str) else list(targets or [])) for t in item.split(",")]
    names = [t.strip() for t in names if t.strip()]
    if not names:
        raise ExportArgumentError("give a target: --target " + "|".join([f.name for f in F.FORMATS] + ["all"]))
    fmts: list[F.Format] = []
    for t in names:
        try:
            for f in F.resolve_target(t):
                if f not in fmts:
                    fmts.append(f)
        except ValueError as e:
            raise ExportArgumentError(str(e)) from None
    precisions, skipped = {}, []
    for f in fmts:
        try:
            precisions[f.name] = F.resolve_precision(f, precision)
        except ValueError as e:
            if precision is not None and len(fmts) > 1 and str(precision).lower() in F.ALL_PRECISIONS:
                skipped.append(f"{f.name} (no {precision}; it allows {', '.join(f.precisions)})")
                continue  # with several targets, each takes the precision if it supports it
            raise ExportArgumentError(str(e)) from None
    if not precisions:
        raise ExportArgumentError(f"none of the targets {', '.join(f.name for f in fmts)} supports {precision}")
    fmts = [f for f in fmts if f.name in precisions]
    models = list_models()
    if model not in models:
        raise ExportArgumentError(f"unknown model '{model}'{F.suggest(model, models)}; choose from: {', '.join(models)}")
    if weights is not None and not Path(weights).is_file():
        raise ExportArgumentError(f"--weights {weights}: file not found")
    size_list = [parse_size(s) if isinstance(s, str) else tuple(int(v) for v in s) for s in (sizes or [])]
    if dynamic and size_list:
        raise ExportArgumentError("give either --dynamic or --size, not both")
    if dynamic:
        fixed = [f.name for f in fmts if not f.dynamic]
        if fixed:
            raise ExportArgumentError(f"{', '.join(fixed)} cannot keep a dynamic H×W (one model per size); "
                                      f"give --size WxH for {'it' if len(fixed) == 1 else 'them'} or drop --dynamic")
    if calib is not None and not Path(calib).exists():
        raise ExportArgumentError(f"--calib {calib}: not found (give a folder of images, a video or a .npy set)")
    if val is not None:
        v = Path(val)
        if not (v / "rainy").is_dir() or not (v / "clean").is_dir():
            raise ExportArgumentError(f"--val {val}: expected a folder with rainy/ and clean/ subfolders")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportArgumentError(f"--out {out} exists and is not a folder")
    if int(calib_count) < 1:
        raise ExportArgumentError(f"--calib-count must be ≥ 1, got {calib_count}")
    if val_limit is not None and int(val_limit) < 1:
        raise ExportArgumentError(f"--val-limit must be ≥ 1, got {val_limit}")
    from .onnx_export import MIN_OPSET

    if int(opset) < MIN_OPSET:
        raise ExportArgumentError(f"--opset {opset} is below {MIN_OPSET}, the lowest the dynamo exporter honours")
    return ExportRequest(fmts, precisions, model, Path(weights) if weights else None, str(calib) if calib else None,
                         int(calib_count), size_list or None, Path(val) if val else None,
                         int(val_limit) if val_limit else None, out, bool(allow_degraded), int(opset), skipped)


def check_backends(request: ExportRequest) -> dict:
    """Imports every target's function (and backends) now; MissingDependency / TargetUnavailable otherwise."""
    return {f.name: F.load_function(f) for f in request.targets}


# ------------------------------------------------------------------------------------------------ pipeline
class CachedReference:
    """FP32 PyTorch outputs, computed once per distinct input (every artifact is compared on the same images);
    least-recently-used entries go first once the cache holds `max_bytes`."""

    def __init__(self, model, max_bytes: int = 768 << 20):
        from collections import OrderedDict

        from .cost import torch_runner

        self._run = torch_runner(model)
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._bytes, self.max_bytes = 0, int(max_bytes)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        key = hashlib.sha1(np.ascontiguousarray(x, np.float32).tobytes()).digest() + str(x.shape).encode()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        y = self._run(x)
        self._cache[key] = y
        self._bytes += y.nbytes
        while self._bytes > self.max_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._bytes -= old.nbytes
        return y


def derain_edge_version() -> str:
    try:
        from importlib.metadata import version

        return version("derain-edge")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "source"


def _remove(path: Path | None) -> None:
    if path is None:
        return
    from .sidecar import sidecar_path

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    sidecar_path(path).unlink(missing_ok=True)


def _remove_artifact(exp: Exported) -> None:
    _remove(Path(exp.path))
    for companion in exp.extra.get("companions", []):
        _remove(Path(exp.path).parent / companion)


def judge(precision: str, cost: dict | None, parity: dict | None) -> tuple[bool, str, float]:
    """(within limits?, reason, limit in dB) for one artifact's measurements."""
    limit = F.MAX_DROP_DB[precision]
    if cost is None:
        return True, "not measured on this machine", limit
    reasons = []
    drop = cost.get("psnr_y_drop_db")
    if drop is not None and drop > limit:
        reasons.append(f"PSNR-Y drop {drop:.3f} dB > {limit} dB allowed for {precision}")
    floor = F.MIN_PSNR_VS_FP32_DB.get(precision)
    if floor is not None and cost["psnr_y_vs_fp32_db"] < floor:
        reasons.append(f"PSNR-Y vs FP32 PyTorch {cost['psnr_y_vs_fp32_db']:.1f} dB < {floor} dB ({precision} must be "
                       f"near-exact)")
    return not reasons, "; ".join(reasons), limit


def run(request: ExportRequest, write=None, progress: bool = True) -> Report:
    """Runs the export; returns the Report (the CLI turns failed results into a non-zero exit)."""
    from derain_edge.files import sha256_file
    from derain_edge.registry import get_spec, load_model

    from . import cost as C
    from .sidecar import write_sidecar

    write = write or (lambda s: print(s, file=sys.stderr, flush=True))
    functions = check_backends(request)
    for note in request.skipped:
        write(f"warning: skipping {note}")
    jobs = [(f, p) for f in request.targets for p in request.precisions[f.name]]
    needs_calib = any(p in ("int8", "int16x8") for _, p in jobs)
    steps = Steps(2 + int(needs_calib) + len(jobs), write)
    report = Report()

    with steps.step(f"load {request.model}"):
        try:
            model, weights_path = load_model(request.model, request.weights)
        except ValueError as e:
            raise ExportArgumentError(str(e)) from None
        weights_sha = sha256_file(weights_path)
        steps.note(f"weights {weights_path} (sha256 {weights_sha[:12]}…)")

    with steps.step("validation pairs"):
        if request.val is not None:
            try:
                pairs = C.load_pairs(request.val, request.val_limit)
            except C.CostError as e:
                raise ExportArgumentError(str(e)) from None
            val_source = str(request.val)
        else:
            pairs = C.synthetic_pairs(request.val_limit or 4)
            val_source = C.SYNTHETIC_SOURCE
        steps.note(f"{len(pairs)} pairs from {val_source}")
    calib, calib_summary = None, None
    if needs_calib:
        with steps.step("calibration set"):
            from calibration import build_calibration, save_calibration
            from calibration.build import SyntheticCalibrationWarning

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SyntheticCalibrationWarning)
                cs = build_calibration(request.calib, count=request.calib_count)
            for w in caught:
                if issubclass(w.category, SyntheticCalibrationWarning):
                    write(f"warning: {w.message}")
            calib, calib_summary = cs.data, cs.summary
            stem = request.model
            save_calibration(calib, request.out / "calibration" / f"{stem}_calib_nchw.npy", "NCHW", cs.source)
            if any(f.name == "tflite" for f in request.targets):
                save_calibration(calib, request.out / "calibration" / f"{stem}_calib_nhwc.npy", "NHWC", cs.source)
            steps.note(f"{calib_summary['count']} frames {calib_summary['size'][1]}x{calib_summary['size'][0]} from "
                       f"{cs.source}, values {calib_summary['value_range']} → {request.out / 'calibration'}")

    reference = CachedReference(model)
    hints = get_spec(request.model).export_hints
    with Workspace() as workspace:  # the run's scratch: one FP32 ONNX for every target and precision
        for fmt, precision in jobs:
            job = ExportJob(out_dir=request.out, stem=request.model, precision=precision,
                            sizes=list(request.sizes or []) or None, calib=calib, val=pairs, hints=hints, opset=request.opset,
                            workspace=workspace)
            with steps.step(f"{fmt.name} {precision}"):
                _run_job(functions[fmt.name], fmt, job, request, model, reference, val_source, weights_sha,
                         calib_summary, progress, write, report)
    report.timings = steps.timings
    return report


def _run_job(func, fmt, job: ExportJob, request, model, reference, val_source, weights_sha, calib_summary, progress,
             write, report) -> None:
    """One target × precision: export, then check every artifact it wrote (a failure is recorded, not raised)."""
    precision = job.precision
    try:
        exported = func(model, job)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - one target failing must not hide the others' results
        report.results.append(Result(fmt.name, precision, None, "failed", f"{type(e).__name__}: {e}"))
        write(f"error: {fmt.name} {precision}: {type(e).__name__}: {e}")
        return
    measured = None  # (artifact name, cost) of the first artifact that pads every validation pair: shared (see
    for exp in exported:  # _pads_every_pair); an artifact that tiles some pair is measured on its own
        try:
            shares = _pads_every_pair(exp, job.val)
            result = _check_one(exp, fmt, func, job, request, model, reference, val_source, weights_sha,
                                calib_summary, progress, write, measured if shares else None)
            report.results.append(result)
            if shares and measured is None and result.cost is not None:
                measured = (Path(exp.path).name, result.cost)
        except KeyboardInterrupt:
            _remove_artifact(exp)  # interrupted mid-measurement: no artifact without checks
            raise
        except Exception as e:  # noqa: BLE001 - e.g. the artifact crashed on a validation image
            _remove_artifact(exp)
            reason = f"checks failed: {type(e).__name__}: {e}"
            report.results.append(Result(exp.target, exp.precision, None, "failed", reason))
            write(f"error: {exp.target} {exp.precision}: {reason}; {Path(exp.path).name} removed")


def _pads_every_pair(exp: Exported, pairs) -> bool:
    """True for a fixed-size artifact that holds every validation pair in one of its sizes, i.e. the runtime pads
    each pair (bottom/right, mirrored) instead of tiling it. Such artifacts of one precision have the same weights
    and quantization (TFLite int8 files share their activation ranges, ``export.tflite.quantize_int8_with``) and see
    the same pixels up to the far padding, so one cost serves them all; an artifact that tiles some pair (smaller
    than a validation image, hence cheap) is measured on its own."""
    if exp.sizes == "dynamic" or not pairs:
        return False
    from derain_edge.engines.tiling import choose_size

    sizes = [tuple(int(v) for v in s) for s in exp.sizes]
    return not any(choose_size(*p.rainy.shape[:2], sizes)[1] for p in pairs)


def _measure(exp: Exported, reference, pairs, val_source, progress, measured=None):
    """(parity, cost). Parity: a short run at the artifact's own size. Cost: on the validation pairs at their own
    size through the runtime's engine and pad/tile policy — once per precision for the artifacts that pad every
    pair (`measured`: (name, cost) of the first, recorded as ``cost["measured_with"]``; see ``_pads_every_pair``)."""
    from . import cost as C

    if exp.runner is None:
        return None, None
    size = C.PARITY_SIZE if exp.sizes == "dynamic" else tuple(exp.sizes[0])
    parity = C.parity(exp.runner, reference, size)
    if measured is not None:
        return parity, {**measured[1], "measured_with": measured[0]}
    return parity, C.measure(exp.runner, reference, pairs, exp.sizes, val_source, progress=progress)


SENSITIVITY_PAIRS = 8  # validation pairs used by each sensitivity probe (the final check uses all of them)


def _recover_int8(exp: Exported, func, job: ExportJob, model, reference, write,
                  full_drop: float) -> tuple[Exported | None, dict]:
    """INT8 missed its limit: find the sensitive layers, re-export with them in float (see export.sensitivity).

    The search probes on SENSITIVITY_PAIRS pairs, which can see a smaller drop than the whole set (`full_drop`, the
    one judged): the probe's target is the limit scaled by how much the probe pairs under-read this artifact's drop,
    so a search that "meets" the limit on the probe also meets it on the whole set."""
    from . import cost as C
    from .artifact import artifact_runner
    from .onnx_export import fp32_onnx
    from .sensitivity import find_exclusions

    probe_pairs = job.val[:SENSITIVITY_PAIRS]
    calib, workspace = job.calib, job.scratch()

    def drop_of(path):
        return C.measure(artifact_runner(path, "onnx", {}), reference, probe_pairs, "dynamic",
                         "sensitivity")["psnr_y_drop_db"]

    fp32 = fp32_onnx(model, job.opset, workspace)
    limit = F.MAX_DROP_DB["int8"]
    probe_drop = drop_of(Path(exp.path))
    if 0 < probe_drop < full_drop:
        limit = round(limit * probe_drop / full_drop, 4)
        write(f"      the {len(probe_pairs)} probe pairs see {probe_drop:.3f} dB of the {len(job.val)} pairs' "
              f"{full_drop:.3f} dB: the search aims at ≤ {limit:.3f} dB on them")
    key = (hashlib.sha256(fp32.read_bytes()).hexdigest(), hashlib.sha256(calib.tobytes()).hexdigest(),
           tuple(p.name for p in probe_pairs), limit)
    if key in workspace.sensitivity:  # the onnx and jetson INT8 models are the same Q/DQ graph
        sens = workspace.sensitivity[key]
    else:
        write(f"      {exp.target} int8 misses {F.MAX_DROP_DB['int8']} dB: per-layer sensitivity on {len(probe_pairs)} pairs")
        # every probe calibrates on the whole set, as the artifact does: with fewer frames min/max ranges are
        # narrower and the probes would measure another quantization than the one being repaired
        sens = find_exclusions(fp32, calib, drop_of, limit, method=job.options.get("method", "minmax"),
                               log=lambda m: write(f"      {m}"))
        workspace.sensitivity[key] = sens
    report_path = job.out_dir / f"{job.stem}_{exp.target}_int8.sensitivity.json"
    from derain_edge.files import atomic_write_text
    import json

    atomic_write_text(report_path, json.dumps(sens, indent=2) + "\n")
    write(f"      sensitivity report: {report_path}")
    if not sens["met"] or not sens["excluded"]:
        return None, sens
    redone = func(model, job.replace(precision="int8", nodes_to_exclude=tuple(sens["nodes_to_exclude"])))
    return next((e for e in redone if e.path == exp.path), None), sens


def _check_one(exp: Exported, fmt, func, job: ExportJob, request, model, reference, val_source, weights_sha,
               calib_summary, progress, write, measured=None) -> Result:
    from .sidecar import write_sidecar

    parity, cost = _measure(exp, reference, job.val, val_source, progress, measured)
    ok, reason, limit = judge(exp.precision, cost, parity)
    sens = None
    if not ok and exp.precision == "int8" and exp.sizes == "dynamic" and job.calib is not None and fmt.qdq:
        redone, sens = _recover_int8(exp, func, job, model, reference, write, cost["psnr_y_drop_db"])
        if redone is not None:
            exp = redone
            parity, cost = _measure(exp, reference, job.val, val_source, progress)
            ok, reason, limit = judge(exp.precision, cost, parity)
    status = "ok" if ok else ("degraded" if request.allow_degraded else "failed")
    if exp.runner is None:
        status, reason = "unchecked", exp.skip_reason or "cannot run on this machine"
    data = {
        "target": exp.target, "format": exp.format, "precision": exp.precision, "model": request.model,
        "weights_sha256": weights_sha, "inputs": exp.inputs, "outputs": exp.outputs, "sizes": exp.sizes,
        "versions": {"derain_edge": derain_edge_version(), **exp.versions},
        "calibration": calib_summary if exp.precision in ("int8", "int16x8") else None,
        "parity": parity, "cost": cost,
        "limits": {"max_psnr_y_drop_db": limit, "min_psnr_y_vs_fp32_db": F.MIN_PSNR_VS_FP32_DB.get(exp.precision)},
        "status": status,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **{k: v for k, v in exp.extra.items() if k != "companions"},
    }
    if sens is not None:
        data["sensitivity"] = {"baseline_drop_db": sens["baseline_drop_db"], "kept_in_float": sens["excluded"],
                               "report": f"{request.model}_{exp.target}_int8.sensitivity.json"}
    if exp.runner is None:
        data["parity_skipped"] = reason
    if status == "degraded":
        data["degraded"] = reason
    if status == "failed":
        _remove_artifact(exp)
        write(f"error: {exp.target} {exp.precision}: {reason}; {Path(exp.path).name} removed "
              f"(--allow-degraded keeps it)")
        return Result(exp.target, exp.precision, None, "failed", reason, None, parity, cost, limit)
    sidecar = write_sidecar(exp.path, data)
    note = f"kept in float: {', '.join(sens['excluded'])}" if sens and sens["excluded"] and ok else ""
    return Result(exp.target, exp.precision, Path(exp.path), status, reason if status != "ok" else note, sidecar,
                  parity, cost, limit)


# ------------------------------------------------------------------------------------------------- table
def _f(v, fmt="{:.2f}") -> str:
    return "—" if v is None else fmt.format(v)


def cost_table(report: Report, root: Path | None = None) -> str:
    """The printed cost table: one row per artifact."""
    head = ("target", "precision", "artifact", "max|Δ|", "PSNR-Y vs fp32", "PSNR-Y fp32→art", "drop", "limit",
            "SSIM-Y drop", "status")
    rows = [head]
    for r in report.results:
        c = r.cost or {}
        name = "—"
        if r.path is not None:
            name = str(r.path.relative_to(root)) if root and r.path.is_relative_to(root) else r.path.name
        gt = (f"{c['psnr_y_fp32_db']:.2f}→{c['psnr_y_db']:.2f}" if "psnr_y_db" in c else "—")
        rows.append((r.target, r.precision, name, _f((r.parity or {}).get("max_abs_diff"), "{:.1e}"),
                     _f(c.get("psnr_y_vs_fp32_db"), "{:.1f}"), gt, _f(c.get("psnr_y_drop_db"), "{:+.3f}"),
                     _f(r.limit_db, "{:.2f}"), _f(c.get("ssim_y_drop"), "{:+.4f}"),
                     r.status + (f" ({r.reason})" if r.reason and r.status != "failed" else "")))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = [r for r in report.results if r.status == "failed"]
    for r in failed:
        lines.append(f"FAILED {r.target} {r.precision}: {r.reason}")
    return "\n".join(lines)
