"""What a weights file really is, when it is not safetensors, and how to convert a PyTorch pickle safely.

derain-edge reads weights only from safetensors (no pickle: a file from anywhere cannot run code). When a user passes
something else (``torch.save``'s ``.pt``/``.pth``, an ONNX model, a NumPy array…) the loaders call
:func:`foreign_weights_message` to say what the file is and the one command that converts it::

    python -m derain_edge.weights_io model.pt model.safetensors

The conversion uses ``torch.load(weights_only=True)``, PyTorch's restricted unpickler that only rebuilds tensors and
plain containers (it refuses pickles that would run code), then writes the tensors as safetensors.
"""
from __future__ import annotations

import sys
import zipfile
from pathlib import Path

CONVERT = "python -m derain_edge.weights_io"


def sniff(path: str | Path) -> str | None:
    """A short description of what `path` holds when it is recognisably not safetensors, else None."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return None
    if not head:
        return "an empty file (0 bytes)"
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            return "a ZIP archive"
        if any(n.endswith("data.pkl") for n in names):
            return "a PyTorch pickle checkpoint (torch.save)"
        if any(n.endswith(".npy") for n in names):
            return "a NumPy .npz archive"
        return "a ZIP archive"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (an old-style torch.save checkpoint?)"
    if head[:6] == b"\x93NUMPY":
        return "a NumPy .npy array"
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return "an HDF5 file (Keras weights?)"
    if path.suffix.lower() == ".onnx" or (head[0] == 0x08 and 3 <= head[1] <= 12 and head[2:3] == b"\x12"):
        return "an ONNX model (an exported artifact: pass it as --model to derain-run / Derainer, not as weights)"
    if head[4:8] in (b"TFL3",):
        return "a TFLite model (an exported artifact, not weights)"
    n = int.from_bytes(head[:8], "little")
    if 2 <= n <= 100_000_000 and head[8:9] == b"{":
        return None  # looks like safetensors (8-byte header length, then JSON)
    return None


def foreign_weights_message(path: str | Path, error: Exception | str | None = None) -> str:
    """The one-line error for weights that are not readable safetensors: what the file is and what to do."""
    path = Path(path)
    what = sniff(path)
    if what is None:
        detail = f": {error}" if error else ""
        return f"{path} is not a readable safetensors file (corrupt or half-written?){detail}"
    if what.startswith("a PyTorch pickle") or what.startswith("a Python pickle"):
        out = path.with_suffix(".safetensors")
        return (f"{path} is {what}, not safetensors; derain-edge does not unpickle files (unpickling can run code). "
                f"If you trust it, convert it once with: {CONVERT} {path} {out}")
    return f"{path} is {what}, not a safetensors weights file"


def convert(src: str | Path, dst: str | Path) -> Path:
    """Converts a torch.save checkpoint to safetensors with torch's restricted (weights-only) unpickler.

    Accepts a bare state dict or a dict holding one under ``state_dict``/``model``/``model_state_dict``."""
    import torch
    from safetensors.torch import save_file

    from .files import atomic_path

    try:
        obj = torch.load(str(src), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, … ; report in one line
        raise ValueError(f"{src}: torch.load(weights_only=True) refused it ({str(e).splitlines()[0]}); "
                         "it is not a plain tensor checkpoint") from e
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(f"{src}: no state dict of tensors found (top level: {type(obj).__name__})")
    tensors = {str(k): v.detach().cpu().contiguous() for k, v in obj.items()}
    with atomic_path(dst) as tmp:
        save_file(tensors, str(tmp), metadata={"converted_from": Path(src).name})
    return Path(dst)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog=CONVERT, description="Convert a torch.save checkpoint (.pt/.pth) to safetensors "
                                "with torch's weights-only unpickler.")
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    args = p.parse_args(argv)
    if not args.src.is_file():
        print(f"error: {args.src}: file not found", file=sys.stderr)
        return 2
    try:
        out = convert(args.src, args.dst)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
