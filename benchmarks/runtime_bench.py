"""Script form of ``derain-bench`` (for checkouts without the console script installed):

    python benchmarks/runtime_bench.py --size 640x480 --json runs/bench.json
    python benchmarks/runtime_bench.py --smoke      # seconds: PyTorch eager on one 64x48 size, no export needed

``--smoke`` (this script's own flag, taken out before derain-bench parses the rest) puts tiny settings in front of
any other arguments (a later --iters replaces the smoke value; a later --size adds a size).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.bench import main  # noqa: E402

SMOKE = ["--size", "64x48", "--iters", "2", "--warmup", "0", "--rounds", "1", "--threads", "1", "--no-one-thread",
         "--no-int8", "--no-export", "--skip-opencv", "--skip-streaming"]


def smoke_argv(argv: list[str]) -> list[str]:
    return SMOKE + [a for a in argv if a != "--smoke"] if "--smoke" in argv else argv


if __name__ == "__main__":
    sys.exit(main(smoke_argv(sys.argv[1:])))
