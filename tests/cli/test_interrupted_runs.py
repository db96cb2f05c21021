"""A run stopped by a real signal, then continued, ends with exactly the manifest of a run
that was never stopped (issue: rows written before the stop must be revisited)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.test_cli import label_args
from tests.conftest import make_labeling_task

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL])
def test_a_stopped_and_continued_run_writes_the_uninterrupted_manifest(
    stop: signal.Signals, glyph_model: Path, tmp_path: Path
) -> None:
    # ~12 s on a quiet machine: the manifest's first write (after 5 s) lands mid-run.
    task = make_labeling_task(tmp_path / "task", classes=3, queries=1000)

    def env(cache: str) -> dict[str, str]:  # the stopped run embeds anew: no shared cache
        return {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_CACHE_HOME": str(tmp_path / cache)}

    def command(out: Path) -> list[str]:
        options = ["--engine", "torch", "--device", "cpu", "--batch-size", "1"]
        return [
            sys.executable,
            "-m",
            "fewshot_gui.cli",
            *label_args(task, glyph_model, out),
            *options,
        ]

    whole = tmp_path / "whole.csv"
    subprocess.run(
        command(whole), check=True, capture_output=True, env=env("whole"), timeout=300, cwd=ROOT
    )

    out = tmp_path / "stopped.csv"
    process = subprocess.Popen(command(out), stderr=subprocess.PIPE, env=env("stopped"), cwd=ROOT)
    assert process.stderr is not None
    os.set_blocking(process.stderr.fileno(), False)
    deadline = time.monotonic() + 120
    while not out.exists():  # the manifest is rewritten every 5 s while labeling
        assert process.poll() is None and time.monotonic() < deadline, "ended before a write"
        time.sleep(0.05)
    process.send_signal(stop)
    process.communicate(timeout=60)
    assert process.returncode != 0
    assert out.exists() and 0 < len(out.read_text().splitlines()) - 1 < len(task.truth)

    again = subprocess.run(
        command(out), capture_output=True, text=True, env=env("stopped"), timeout=300, cwd=ROOT
    )
    assert again.returncode == 0, again.stderr
    assert out.read_text() == whole.read_text()
