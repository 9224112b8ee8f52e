"""How many inference threads: the idle cores, never all cores of a busy machine (rule in ``runtime.auto``'s
docstring; ``DERAIN_EDGE_THREADS`` overrides it). Below every engine, which takes its default from here
(``runtime.auto`` re-exports these)."""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

log = logging.getLogger("runtime.auto")


def available_cpus() -> int:
    """CPUs this process may run on: the affinity mask, bounded by a cgroup v2/v1 CPU quota (containers)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def _cgroup_quota() -> float | None:
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if q > 0 and p > 0:
            return q / p
    except (OSError, ValueError):
        pass
    return None


def physical_cores() -> int:
    """Distinct (package, core) pairs among the CPUs we may use: SMT siblings add little to convolutions."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
    cores = set()
    for c in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{c}/topology")
        try:
            cores.add((topo.joinpath("physical_package_id").read_text().strip(),
                       topo.joinpath("core_id").read_text().strip()))
        except OSError:
            cores.add(("cpu", str(c)))
    return max(1, len(cores))


def default_threads(load: float | None = None) -> int:
    """Inference threads that do not collapse on a busy machine (the rule in this module's docstring)."""
    env = os.environ.get("DERAIN_EDGE_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            log.warning("ignoring DERAIN_EDGE_THREADS=%r (not an integer)", env)
    n = min(available_cpus(), physical_cores())
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # Windows
            load = 0.0
    return max(1, min(n, int(math.floor(n - load + 0.5))))


def threads_reason(threads: int) -> str:
    try:
        load = f"load {os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):
        load = "no load average"
    return f"{threads} thread{'s' if threads != 1 else ''} ({load} on {available_cpus()} CPUs)"
