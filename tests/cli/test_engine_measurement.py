"""`fewshot label` on a model new to this machine: the engines are timed in a child process,
which cannot hang the run, and Ctrl-C stops it at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.test_cli import label_args
from tests.conftest import make_labeling_task

ROOT = Path(__file__).parents[2]


def fresh_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }


def label_command(task, model: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "fewshot_gui.cli", *label_args(task, model, out)]


def label_in_child(task, model: Path, out: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    command = label_command(task, model, out)
    env = fresh_env(tmp_path)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)


def test_the_first_run_measures_in_a_child_and_says_so(glyph_model: Path, tmp_path: Path) -> None:
    task = make_labeling_task(tmp_path / "task", classes=2, queries=10)
    done = label_in_child(task, glyph_model, tmp_path / "labels.csv", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "preparing the model for this computer: 100%" in done.stderr
    assert "the fastest measured" in done.stderr
    second = label_in_child(task, glyph_model, tmp_path / "again.csv", tmp_path)
    assert "preparing the model" not in second.stderr  # measured once per model and machine
    assert (tmp_path / "again.csv").read_text() == (tmp_path / "labels.csv").read_text()


def test_ctrl_c_while_the_engines_are_timed_stops_at_once(
    glyph_model: Path, tmp_path: Path
) -> None:
    task = make_labeling_task(tmp_path / "task", classes=2, queries=10)
    process = subprocess.Popen(
        label_command(task, glyph_model, tmp_path / "labels.csv"),
        stderr=subprocess.PIPE,
        text=True,
        env=fresh_env(tmp_path),
        cwd=ROOT,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("preparing the model for this computer"):
            break
    interrupted = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert time.monotonic() - interrupted < 3
    assert process.returncode == 130, err
    assert "Traceback" not in err and "nothing was written" in err
    assert not (tmp_path / "labels.csv").exists()
    engines = tmp_path / "cache" / "fewshot-gui" / "engines"
    assert not list(engines.glob(".*.tmp"))  # the export the child had begun is gone
