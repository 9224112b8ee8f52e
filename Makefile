# Two commands for a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: setup demo test clean

setup: $(VENV)/.installed

# torch first, from the local CPU wheel; every later install is held to constraints.txt so pip never swaps it for a
# multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[all]"
	# onnx2tf 1.29.24 is the newest for Python 3.11 and hard-pins an old stack; it works with ours, so it goes in
	# with --no-deps (an extra cannot say that; derain-export --target tflite prints this command when it is missing).
	# Why: docs/toolchain.md §5b
	$(BIN)/python -m pip install -q --no-deps onnx2tf==1.29.24
	# Triton's Python backend stub runs in its own venv of this interpreter with numpy<2 (docs/serving.md)
	$(BIN)/derain-serve --setup-stub
	touch $@

demo: setup
	$(BIN)/derain-demo --out runs/demo
	$(BIN)/derain-run demo runs/demo/demo.mp4 --headless

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
