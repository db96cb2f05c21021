"""The progress line: time left comes from the pace seen, also for a job resumed part-way."""

import io

import pytest

from fewshot_gui.cli import progress
from fewshot_gui.cli.progress import ProgressBar


def test_time_left_of_a_resumed_job_uses_its_own_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 10.0, 20.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    stream = io.StringIO()
    bar = ProgressBar("train", 1000, stream)  # started at t=0
    bar.update(700)  # resumed at 700: the first line cannot know the pace yet
    bar.update(710)  # 10 episodes in 10 s -> 290 left take 290 s
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("train [") and "710/1000" in lines[-1]
    assert "290s left" in lines[-1]
