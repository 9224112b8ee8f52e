"""Optional dependencies, one home: whether a module is installed, importing it or failing with the one pip command
that installs it (derain-edge's extras, pyproject.toml [project.optional-dependencies]).

``require(module)`` raises ``MissingDependency`` (an ImportError) whose message is the exact install command;
``require(module, extra, what="the OpenVINO backend", error=BackendError)`` raises the caller's error type with
"<what> needs the Python package '<module>' …" instead. ``importable(module)`` never imports it.
"""
from __future__ import annotations

import importlib
import importlib.util


class MissingDependency(ImportError):
    """An optional backend is not installed; the message is the exact pip command that installs it."""


# module → pip extra of derain-edge that provides it (pyproject.toml [project.optional-dependencies])
EXTRA_OF = {
    "onnx": "onnx", "onnxscript": "onnx", "onnxslim": "onnx", "onnxruntime": "onnx",
    "tensorrt": "tensorrt",
    "coremltools": "coreml",
    "tensorflow": "tflite", "onnx2tf": "tflite", "ai_edge_litert": "tflite",
}


# onnx2tf cannot be a dependency of the [tflite] extra: every release for Python 3.11 hard-pins an older stack
# (numpy 1.26, onnx 1.19, onnxruntime 1.23, TensorFlow 2.19 …) that pip would install over ours, while it runs fine on
# ours (docs/toolchain.md). pip extras cannot say --no-deps, so the exporter names this one command instead.
ONNX2TF = "onnx2tf==1.29.24"
ONNX2TF_COMMAND = f"pip install --no-deps {ONNX2TF}"
# what onnx2tf imports, all provided by the [tflite] extra
TFLITE_STACK = ("tensorflow", "tf_keras", "onnx_graphsurgeon", "sng4onnx", "ai_edge_litert", "psutil", "onnx",
                "onnxruntime")


def install_hint(extra: str) -> str:
    return f'pip install "derain-edge[{extra}]"'


def importable(module: str) -> bool:
    """Whether `module` is installed (found without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def install_command(extra: str, missing=()) -> str:
    """The one command line that makes `extra`'s target work, given the modules found `missing`."""
    missing = set(missing)
    if extra != "tflite":
        return install_hint(extra)
    stack_missing = [m for m in TFLITE_STACK if not importable(m)]
    if "onnx2tf" in missing and not stack_missing and not (missing - {"onnx2tf"}):
        return ONNX2TF_COMMAND
    if importable("onnx2tf") and "onnx2tf" not in missing:
        return install_hint(extra)
    return f"{install_hint(extra)} && {ONNX2TF_COMMAND}"


def require(module: str, extra: str | None = None, *, what: str | None = None, error: type[Exception] | None = None):
    """``importlib.import_module(module)``, or MissingDependency with the exact install command (with `what`: `error`
    saying "<what> needs the Python package '<module>' (<reason>); install it with: pip install …")."""
    extra = extra or EXTRA_OF.get(module.split(".")[0], "onnx")
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if what is not None:
            raise (error or MissingDependency)(f"{what} needs the Python package '{module}' ({e}); install it with: "
                                               f"{install_hint(extra)}") from e
        top = module.split(".")[0]
        # a module that is there but fails to import for lack of one of its own dependencies
        missing = {top} if getattr(e, "name", None) in (None, top, module) else {top, str(e.name)}
        raise MissingDependency(missing_message([module], extra, missing, e)) from e


def missing_message(modules, extra: str, missing, error=None) -> str:
    command = install_command(extra, missing)
    why = f" ({error})" if error is not None else ""
    note = (" (onnx2tf goes in with --no-deps: its own pins would replace numpy, onnx, onnxruntime and TensorFlow "
            "with older versions)") if "no-deps" in command else ""
    return f"{', '.join(modules)} {'is' if len(modules) == 1 else 'are'} not installed{why}; run: {command}{note}"
