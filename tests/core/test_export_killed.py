"""An export killed with SIGKILL part way, then undone: every byte back, nothing extra left."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fewshot_gui.core.export import ExportMode
from fewshot_gui.core.export_undo import undo_export
from fewshot_gui.core.jobs import drive

EXPORT = """
import sys, time
from pathlib import Path
from fewshot_gui.core.export import execute_export, plan_export
photos, dest, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
items = [(path, "cat" if i % 2 else "dog") for i, path in enumerate(sorted(photos.iterdir()))]
for _event in execute_export(plan_export(items, dest), mode, dest / ".export.journal.jsonl"):
    time.sleep(0.002)  # slow enough for the test to land its kill part way
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.parametrize(("mode", "size"), [("move", 4_000), ("copy", 400_000)])
def test_sigkill_mid_export_then_undo_restores_every_byte(
    tmp_path: Path, mode: ExportMode, size: int
) -> None:
    photos, dest = tmp_path / "photos", tmp_path / "sorted"
    photos.mkdir()
    for number in range(300):
        (photos / f"{number:03}.jpg").write_bytes(bytes([number % 256]) * size + b"%d" % number)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in photos.iterdir()}
    journal = dest / ".export.journal.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-c", EXPORT, str(photos), str(dest), mode],
        cwd=Path(__file__).resolve().parents[2],
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.exists() and journal.read_bytes().count(b'"kind": "done"') >= 20:
            break
        time.sleep(0.001)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL  # killed, not finished
    assert 20 <= sum(1 for p in dest.rglob("*.jpg")) < 300

    summary = drive(undo_export(journal))

    assert summary.failed == 0
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in photos.iterdir()} == before
    assert not list(dest.rglob("*.jpg"))
