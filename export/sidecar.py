"""The sidecar JSON written beside every exported artifact: what the runtime needs to feed it, and what it cost.

One file per artifact, named ``<artifact>.json`` (``lpnet_fp32.onnx`` → ``lpnet_fp32.onnx.json``, a CoreML
``lpnet.mlpackage`` folder → ``lpnet.mlpackage.json``). The artifact itself is never touched (no prepended bytes),
so every vendor tool still opens it.

Keys (schema ``derain-edge/sidecar/1``)::

    schema          "derain-edge/sidecar/1"
    artifact        file or folder name of the artifact, relative to the sidecar
    target          "onnx" | "jetson" | "coreml" | "tflite" | "triton"
    format          "onnx" | "engine" | "mlpackage" | "tflite"
    precision       "fp32" | "fp16" | "int8" | "int16x8"
    model           "lpnet" | "anlcl" …
    weights_sha256  sha256 of the PyTorch weights the artifact was made from
    inputs/outputs  [{"name", "shape" (ints, or strings for dynamic dims), "dtype", "layout" ("NCHW" | "NHWC"),
                      "value_range" [lo, hi] of the pixel values it takes/gives, "color" "RGB"}]
    sizes           "dynamic" or [{"width": W, "height": H}, …]: the frame sizes the artifact accepts (sidecars
                    written before width/height were named hold [[H, W], …]; both are read, and read_sidecar
                    hands back [[H, W], …] either way)
    versions        {"derain_edge": …, "torch": …, <converter>: …}
    calibration     summary of the calibration set (or null)
    parity          {"reference": "pytorch-fp32", "max_abs_diff", "psnr_y_db", "size": {"width", "height"}} or null
                    (null when the artifact cannot run on the exporting machine, with "parity_skipped": reason)
    cost            {"psnr_y_vs_fp32_db", "ssim_y_vs_fp32", and with a paired set "psnr_y_drop_db", "ssim_y_drop",
                     "val"} or null, measured through the runtime's engine (``derain_edge.engines``) at the pairs'
                    own size; "measured_with": the artifact of the same precision it was measured on, when another
                    fixed size of that precision was (once per precision)
    integrity       {"artifact_sha256": sha256 of the artifact (a folder: of its files), "fields_sha256": {field:
                     sha256 of its JSON}} for the contract fields; read_sidecar refuses an artifact or a field that
                     changed after export, naming it (sidecars without "integrity" are read unchecked). This catches
                     mix-ups and careless edits; it is not a signature.

The artifact must be a plain name inside the sidecar's folder: "../x", absolute paths and symlinks that lead out of
the folder are refused.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath, PureWindowsPath

from derain_edge.files import atomic_write_text
from derain_edge.sizes import from_json, size_json

from .formats import ALL_PRECISIONS, ARTIFACT_FORMATS, BY_NAME

SCHEMA = "derain-edge/sidecar/1"
# the allowed values come from the one table of formats (export.formats)
TARGETS = tuple(BY_NAME)
FORMATS = ARTIFACT_FORMATS
PRECISIONS = ALL_PRECISIONS
LAYOUTS = ("NCHW", "NHWC")
MAX_SIDE = 16384  # a sidecar size beyond this is a mistake (or an attempt to make the runtime allocate terabytes)
CHECKED_FIELDS = ("target", "format", "precision", "model", "weights_sha256", "inputs", "outputs", "sizes")
REQUIRED = ("schema", "artifact", "target", "format", "precision", "model", "weights_sha256", "inputs", "outputs", "sizes")


class SidecarError(ValueError):
    """A sidecar that is missing, unreadable or does not describe a usable artifact, with the reason."""


def sidecar_path(artifact: str | Path) -> Path:
    """``<artifact>.json``; given a sidecar path, returns it unchanged."""
    artifact = Path(artifact)
    return artifact if artifact.name.endswith(".json") else artifact.with_name(artifact.name + ".json")


def artifact_path(sidecar: str | Path) -> Path:
    """The artifact a sidecar describes (resolved next to the sidecar, never outside its folder)."""
    sidecar = sidecar_path(sidecar)
    data = read_sidecar(sidecar)
    return resolve_artifact(sidecar, data["artifact"])


def resolve_artifact(sidecar: str | Path, name) -> Path:
    """``<sidecar folder>/<name>``; SidecarError when `name` is not a plain entry of that folder (``..``, an absolute
    path, a drive, a sub-path, or a symlink that leads out of the folder)."""
    sidecar = Path(sidecar)
    if not isinstance(name, str) or not name or name in (".", ".."):
        raise SidecarError(f"{sidecar}: 'artifact' {name!r} is not a file name")
    posix, win = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or win.is_absolute() or win.drive or len(posix.parts) != 1 or len(win.parts) != 1:
        raise SidecarError(f"{sidecar}: 'artifact' {name!r} must be a name inside the sidecar's folder "
                           "(no '..', no absolute path, no sub-folder)")
    folder = sidecar.parent
    path = folder / name
    try:
        inside = path.resolve().parent == folder.resolve()
    except OSError:
        inside = False
    if not inside:
        raise SidecarError(f"{sidecar}: 'artifact' {name!r} resolves outside the sidecar's folder (a symlink?)")
    return path


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, or of a folder (an .mlpackage): its files' relative names and bytes, in name order."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _field_sha(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def check_integrity(data: dict, sidecar: Path) -> None:
    """Refuses a sidecar whose checked fields, or whose artifact, changed since export (see the module doc)."""
    integrity = data.get("integrity")
    if not isinstance(integrity, dict):
        return
    fields = integrity.get("fields_sha256") or {}
    for key in CHECKED_FIELDS:
        if key in fields and _field_sha(data.get(key)) != fields[key]:
            raise SidecarError(f"{sidecar}: '{key}' was changed after export (it no longer matches the sidecar's "
                               "integrity record); re-export the artifact instead of editing its sidecar")
    want = integrity.get("artifact_sha256")
    if want:
        art = resolve_artifact(sidecar, data["artifact"])
        if art.exists() and file_sha256(art) != want:
            raise SidecarError(f"{sidecar}: the artifact {art.name} changed after export (artifact_sha256 differs): "
                               "it is not the file this sidecar describes; re-export it")


def validate(data: dict, where: str = "sidecar") -> dict:
    """Checks the keys the runtime relies on; returns `data` unchanged or raises SidecarError naming the problem."""
    if not isinstance(data, dict):
        raise SidecarError(f"{where}: expected a JSON object, got {type(data).__name__}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise SidecarError(f"{where}: missing keys {missing} (not a derain-edge sidecar?)")
    sha = data["weights_sha256"]
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha.lower())):
        raise SidecarError(f"{where}: weights_sha256 {sha!r} is not a sha256 hex digest")
    if data["schema"] != SCHEMA:
        raise SidecarError(f"{where}: schema {data['schema']!r} is not {SCHEMA!r} (made by another version?)")
    for key, allowed in (("target", TARGETS), ("format", FORMATS), ("precision", PRECISIONS)):
        if data[key] not in allowed:
            raise SidecarError(f"{where}: {key} {data[key]!r} is not one of {allowed}")
    for kind in ("inputs", "outputs"):
        specs = data[kind]
        if not isinstance(specs, list) or not specs:
            raise SidecarError(f"{where}: '{kind}' must be a non-empty list")
        for spec in specs:
            for k in ("name", "shape", "dtype", "layout", "value_range"):
                if k not in spec:
                    raise SidecarError(f"{where}: an entry of '{kind}' lacks '{k}'")
            if spec["layout"] not in LAYOUTS:
                raise SidecarError(f"{where}: layout {spec['layout']!r} of {spec['name']} is not one of {LAYOUTS}")
    normalized_sizes(data["sizes"], where)
    return data


def normalized_sizes(sizes, where: str = "sidecar"):
    """"dynamic", or [[H, W], …] from either stored form, each side between 1 and MAX_SIDE; SidecarError otherwise."""
    if sizes == "dynamic":
        return sizes
    if not isinstance(sizes, list) or not sizes:
        raise SidecarError(f"{where}: 'sizes' must be \"dynamic\" or a list of {{\"width\", \"height\"}}, "
                           f"got {sizes!r}")
    out = []
    for s in sizes:
        try:
            h, w = from_json(s)
        except (TypeError, ValueError):
            raise SidecarError(f"{where}: 'sizes' entry {s!r} is not {{\"width\": W, \"height\": H}}") from None
        if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
            raise SidecarError(f"{where}: 'sizes' entry {s!r}: width and height must be between 1 and {MAX_SIDE}")
        out.append([h, w])
    return out


def write_sidecar(artifact: str | Path, data: dict) -> Path:
    """Validates and writes ``<artifact>.json`` atomically; fills `schema` and `artifact` when absent."""
    artifact = Path(artifact)
    data = {"schema": SCHEMA, "artifact": artifact.name, **data}
    path = sidecar_path(artifact)
    validate(data, str(path))
    data["sizes"] = _named(data["sizes"])
    art = path.parent / data["artifact"]
    data["integrity"] = {"fields_sha256": {k: _field_sha(data[k]) for k in CHECKED_FIELDS if k in data}}
    if art.exists():
        data["integrity"]["artifact_sha256"] = file_sha256(art)
    for key in ("parity", "calibration"):  # their [H, W] sizes get named too
        entry = data.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("size"), (list, tuple)) and len(entry["size"]) == 2:
            data[key] = {**entry, "size": size_json(entry["size"])}
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def read_sidecar(path: str | Path) -> dict:
    """Reads and validates the sidecar of an artifact (pass the artifact or the .json itself)."""
    path = sidecar_path(path)
    if not path.is_file():
        raise SidecarError(f"{path}: sidecar not found (export with derain-export, which writes <artifact>.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SidecarError(f"{path}: not readable JSON ({e})") from e
    validate(data, str(path))
    resolve_artifact(path, data["artifact"])
    check_integrity(data, path)
    data["sizes"] = normalized_sizes(data["sizes"], str(path))
    return data


def _named(sizes):
    """[[H, W], …] or [{"width", "height"}, …] → [{"width": W, "height": H}, …] (what a sidecar stores)."""
    return sizes if sizes == "dynamic" else [size_json(hw) for hw in normalized_sizes(sizes)]
