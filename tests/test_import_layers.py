"""The import graph of the project's packages has no circles and never imports upward.

The graph is built with ``ast`` from every module of the packages below (module-level and function-level imports,
relative ones resolved), one node per module. ``LAYERS`` is the one place the layer order is written down, lowest
first; a module belongs to the first layer whose prefixes match it most specifically (``COMMANDS`` are the command
lines — console scripts and ``python -m`` tools — which may import anything). A module may import its own layer or
any lower one. The model registry (``derain_edge.registry``) is at the ground floor: the model packages register
themselves when imported, and it imports the built-in ones by name (``importlib``), not with an import statement.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("derain_edge", "lpnet", "anlcl_lite", "calibration", "export", "runtime")

# the command lines (console scripts in pyproject.toml, and `python -m` measurement tools): the top floor
COMMANDS = ("derain_edge.commands", "export.cli",
            "export.tflite_measure", "runtime.cli", "runtime.bench", "runtime.serve")

# lowest first: (layer, module prefixes)
LAYERS = (
    ("core", ("derain_edge",)),                       # files, image I/O, metrics, rain, scenes, registry, optional deps
    ("models", ("lpnet", "anlcl_lite")),              # networks, their weights and training loops
    ("calibration", ("calibration",)),                # calibration sets for quantization
    ("engines", ("derain_edge.engines",)),            # one engine per artifact format + the pad/tile policy: what
                                                      # export measures with and runtime runs
    ("export", ("export",)),                          # artifacts, sidecars, accuracy cost
    ("runtime", ("runtime",)),                        # backends, Derainer, sources/sinks, the auto-export cache
    ("commands", COMMANDS),                           # derain-train/eval/synth/demo/export/run/bench/serve
)


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _resolve(name: str, known) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package
                    for _ in range(node.level - 1):
                        parent = parent.rpartition(".")[0]
                    base = f"{parent}.{base}" if base else parent
                # `from pkg import mod` imports the submodule when there is one, else a name of pkg
                targets = [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                resolved = _resolve(target, known)
                if resolved and resolved != module:
                    graph[module].add(resolved)
    return graph


def layer_of(module: str) -> int:
    best, rank = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > rank:
                best, rank = index, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_graph_sees_module_and_function_level_imports():
    graph = import_graph()
    assert "derain_edge.files" in graph["lpnet.weights"]           # module level
    assert "anlcl_lite.dcdgan" in graph["anlcl_lite.objectives"]    # inside a function
    assert "calibration.frames" in graph["calibration.store"]       # relative
    assert "derain_edge.engines.backends" in graph["export.artifact"]  # export measures through the engines


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_no_import_from_a_lower_layer_to_a_higher_one():
    graph = import_graph()
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
              for m, targets in sorted(graph.items()) for t in sorted(targets) if layer_of(t) > layer_of(m)]
    assert upward == []


def test_every_console_script_is_a_command():
    text = (ROOT / "pyproject.toml").read_text()
    scripts = text.split("[project.scripts]")[1].split("\n[")[0]
    for line in scripts.strip().splitlines():
        module = line.split("=", 1)[1].strip().strip('"').split(":")[0]
        assert layer_of(module) == len(LAYERS) - 1, f"{module} is a console script but not in COMMANDS"
