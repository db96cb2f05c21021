"""The engine choice: a safe engine at once, the measurement in a child process under a cap,
and OpenVINO's streams safe to start together."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fewshot_gui.core import engine_choice
from fewshot_gui.core.checkpoint import LoadedModel, load_model
from fewshot_gui.core.engine_choice import EngineProbe, choose_engine, measure_engines
from fewshot_gui.core.engines import export_onnx
from fewshot_gui.core.errors import ConfigError
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.model_choice import measured_speeds


@pytest.fixture
def glyph_loaded(glyph_model: Path) -> LoadedModel:
    return load_model(glyph_model)


def test_a_request_is_built_as_asked(glyph_loaded: LoadedModel) -> None:
    assert choose_engine(glyph_loaded, "cpu", "torch").engine.name == "torch float32"
    bf16 = choose_engine(glyph_loaded, "cpu", "torch-bf16").engine
    assert bf16.name == "torch bfloat16 channels-last" and bf16.numerics != "float32"
    with pytest.raises(ConfigError, match="cannot run on cpu"):
        choose_engine(glyph_loaded, "cpu", "torch-fp16")
    with pytest.raises(ConfigError, match="engine must be one of"):
        choose_engine(glyph_loaded, "cpu", "fastest")


def test_auto_starts_safe_measures_in_a_child_once_and_keeps_the_decision(
    glyph_loaded: LoadedModel, tmp_path: Path
) -> None:
    started = time.perf_counter()
    first = choose_engine(glyph_loaded, "cpu", cache_dir=tmp_path)
    assert time.perf_counter() - started < 5  # times nothing, exports nothing
    assert first.measure_later and first.engine.name == "torch float32"
    assert not list(tmp_path.glob("*.onnx"))

    stages = []
    measured = drive(measure_engines(EngineProbe(glyph_loaded, cache_dir=tmp_path)), stages.append)
    assert measured is not None and measured.engine.numerics == "float32"
    percents = [int(s.message.rstrip("%").rsplit(" ", 1)[1]) for s in stages]
    assert percents == sorted(percents) and percents[-1] == 100
    assert "preparing the model for this computer" in stages[0].message
    decision = next(iter(json.loads((tmp_path / "choices.json").read_text()).values()))
    assert set(decision["rates"]) == set(engine_choice.EXACT_ON_CPU) - {
        k for k in engine_choice.EXACT_ON_CPU if not engine_choice._has(k.split("-")[0])
    }
    assert all(rate > 0 for rate in decision["rates"].values())
    assert measured.engine.name.split()[0] == decision["engine"]
    # The model chooser shows the fastest engine's speed here, by model name.
    assert measured_speeds(tmp_path) == {glyph_loaded.name: max(decision["rates"].values())}

    again = choose_engine(glyph_loaded, "cpu", cache_dir=tmp_path)
    assert not again.measure_later
    assert again.engine.name == measured.engine.name and "measured" in again.reason


def test_an_exported_model_starts_on_onnxruntime(glyph_loaded: LoadedModel, tmp_path: Path) -> None:
    export_onnx(glyph_loaded, tmp_path)
    first = choose_engine(glyph_loaded, "cpu", cache_dir=tmp_path)
    assert first.measure_later and first.engine.name == "onnxruntime float32"


def test_a_measurement_past_its_cap_is_killed_and_costs_only_speed(
    glyph_loaded: LoadedModel, tmp_path: Path
) -> None:
    # The child needs seconds just to import torch: a cap of 0.3 s always cuts it short.
    probe = EngineProbe(glyph_loaded, cache_dir=tmp_path, cap_s=0.3)
    started = time.perf_counter()
    measured = drive(measure_engines(probe))
    assert time.perf_counter() - started < 3
    assert not probe._process.is_alive()
    assert measured is not None and measured.engine.name == "torch float32"
    decision = next(iter(json.loads((tmp_path / "choices.json").read_text()).values()))
    assert decision["rates"] == {} and all("cap" in why for why in decision["failed"].values())


def test_a_cancelled_measurement_stops_its_child(glyph_loaded: LoadedModel, tmp_path: Path) -> None:
    probe = EngineProbe(glyph_loaded, cache_dir=tmp_path)
    assert drive(measure_engines(probe, cancel=lambda: True)) is None
    assert not probe._process.is_alive()
    assert not (tmp_path / "choices.json").exists()


OPENVINO_STREAMS_TOGETHER = """
import sys, threading
import numpy as np
from fewshot_gui.core.engines import OpenVinoEngine
engine = OpenVinoEngine(sys.argv[1], threads=4, bfloat16=False)
shape = (2, int(sys.argv[2]), int(sys.argv[2]), int(sys.argv[3]))
start = threading.Barrier(4)
def first_batch():
    start.wait()  # every stream's first tensor read at the same moment
    engine._run(np.zeros(shape, np.uint8))
threads = [threading.Thread(target=first_batch) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print("ok")
"""


@pytest.mark.skipif(not engine_choice._has("openvino"), reason="OpenVINO is an optional extra")
def test_openvino_streams_started_at_the_same_moment_never_deadlock(
    glyph_loaded: LoadedModel, tmp_path: Path
) -> None:
    model = export_onnx(glyph_loaded, tmp_path)
    spec = glyph_loaded.spec
    for attempt in range(6):  # the first use happens once per process: a fresh one each time
        done = subprocess.run(
            [
                *(sys.executable, "-c", OPENVINO_STREAMS_TOGETHER, str(model)),
                *(str(spec.input_size), str(spec.channels)),
            ],
            capture_output=True,
            text=True,
            timeout=60,  # a deadlock fails here instead of hanging the suite
            cwd=Path(__file__).parents[2],
        )
        assert done.returncode == 0 and done.stdout.strip() == "ok", (attempt, done.stderr)
