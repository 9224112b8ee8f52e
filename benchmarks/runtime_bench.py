"""Script form of ``derain-bench`` (for checkouts without the console script installed):

    python benchmarks/runtime_bench.py --size 640x480 --json runs/bench.json
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
