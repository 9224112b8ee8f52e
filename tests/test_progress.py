"""derain_edge.progress: tqdm on a terminal, a plain line every few seconds in a log file."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np

from derain_edge.progress import PlainProgress, progress

ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_not_a_terminal_gives_plain_lines_every_interval(monkeypatch):
    monkeypatch.delenv("DERAIN_PROGRESS", raising=False)
    log, clock = io.StringIO(), FakeClock()
    bar = progress(total=10, desc="work", unit="img", file=log, interval=5.0, clock=clock)
    assert isinstance(bar, PlainProgress)
    for _ in range(10):
        clock.t += 2.0
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    # t = 6, 12, 18 → three periodic lines, then the closing line
    assert len(lines) == 4, lines
    assert lines[0].startswith("work: 3/10 img (30%)") and "ETA" in lines[0]
    assert lines[-1].startswith("work: 10/10 img done in 20s")
    assert "\r" not in log.getvalue()


def test_iterable_and_postfix(monkeypatch):
    monkeypatch.delenv("DERAIN_PROGRESS", raising=False)
    log = io.StringIO()
    bar = progress(range(4), desc="it", file=log, interval=0.0)
    seen = []
    for i in bar:
        seen.append(i)
        bar.set_postfix(loss=0.5)
    assert seen == [0, 1, 2, 3]
    assert "loss=0.5" in log.getvalue() and log.getvalue().splitlines()[-1].startswith("it: 4/4 it done in")


def test_disable_prints_nothing():
    log = io.StringIO()
    for _ in progress(range(3), file=log, disable=True, interval=0.0):
        pass
    assert log.getvalue() == ""


def test_terminal_gets_tqdm(monkeypatch):
    from tqdm import tqdm

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("DERAIN_PROGRESS", raising=False)
    bar = progress(total=2, file=Tty())
    assert isinstance(bar, tqdm)
    bar.close()


def test_synth_logs_progress_and_sheet_shows_written_pairs_within_budget(tmp_path, monkeypatch):
    """derain-synth --n 3 --contact-sheet into a log: a plain progress line (no second '6img' bar), the sheet shows
    only written pairs, and the sheet PNG fits its budget even when colour reduction alone does not."""
    import cv2

    from derain_edge.commands import synth as synth_cli

    clean = tmp_path / "clean"
    clean.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):  # noise images compress badly: the budget needs more than bit dropping
        cv2.imwrite(str(clean / f"img_{i:03d}.png"), rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    chosen = []
    real_sheet = synth_cli.contact_sheet

    def spy(rows, refs, title, width=synth_cli.SHEET_WIDTH):
        chosen.extend(name for name, _, _ in rows)
        return real_sheet(rows, refs, title, width)

    monkeypatch.setattr(synth_cli, "contact_sheet", spy)
    monkeypatch.setenv("DERAIN_PROGRESS_INTERVAL", "0")
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    sheet = tmp_path / "sheet.png"
    rc = synth_cli.main(["--clean", str(clean), "--out", str(tmp_path / "out"), "--n", "3",
                         "--contact-sheet", str(sheet), "--sheet-max-mb", "0.4"])
    assert rc == 0, err.getvalue()
    written = sorted(p.name for p in (tmp_path / "out" / "rainy").iterdir())
    assert written == ["img_000.png", "img_001.png", "img_002.png"]
    assert chosen and set(chosen) <= set(written)
    assert sheet.stat().st_size <= 0.4e6
    text = err.getvalue()
    assert "derain-synth: 3/3 img" in text and "6img" not in text and "4/3" not in text
    assert "\r" not in text


def test_cli_progress_to_a_log_file(tmp_path):
    """A real subprocess with stderr to a file: derain-demo prints plain progress lines there."""
    log = tmp_path / "log.txt"
    with log.open("w") as f:
        rc = subprocess.run([sys.executable, "-c", "from derain_edge.progress import progress\n"
                             "for _ in progress(range(3), desc='demo', interval=0): pass"],
                            stderr=f, stdout=subprocess.DEVNULL, cwd=ROOT, timeout=60).returncode
    assert rc == 0
    text = log.read_text()
    assert "demo: 3/3 it done in" in text and "\r" not in text
