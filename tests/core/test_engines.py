"""Engines: ONNX Runtime and OpenVINO match torch, streams keep order, exports are cached."""

from pathlib import Path

import numpy as np
import pytest
import torch

from fewshot_gui.core import engine_choice, engines
from fewshot_gui.core.checkpoint import LoadedModel, load_model
from fewshot_gui.core.engine_choice import choose_engine
from fewshot_gui.core.engines import (
    Engine,
    OnnxRuntimeEngine,
    OpenVinoEngine,
    TorchEngine,
    embed_stream,
    export_onnx,
)
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import Labeler, SupportSet
from tests.conftest import LabelingTask


@pytest.fixture(scope="session")
def engine_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export folder for the session: exporting even a tiny model takes seconds."""
    return tmp_path_factory.mktemp("engines")


@pytest.fixture
def glyph_loaded(glyph_model: Path) -> LoadedModel:
    return load_model(glyph_model)


def random_pixels(loaded: LoadedModel, n: int = 7) -> np.ndarray:
    spec = loaded.spec
    shape = (n, spec.input_size, spec.input_size, spec.channels)
    return np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)


def test_onnxruntime_equals_torch_float32(glyph_loaded: LoadedModel, engine_cache: Path) -> None:
    pixels = random_pixels(glyph_loaded)
    expected = TorchEngine(
        glyph_loaded.model.encoder, glyph_loaded.spec, torch.device("cpu"), torch.float32
    ).embed(pixels)
    engine = OnnxRuntimeEngine(export_onnx(glyph_loaded, engine_cache), threads=2)
    for batch in (pixels, pixels[:1]):  # any batch size, even one
        found = engine.embed(batch)
        assert found.dtype == np.float32 and found.shape == (len(batch), expected.shape[1])
        np.testing.assert_allclose(found, expected[: len(batch)], rtol=1e-5, atol=1e-5)


def float32_engines(loaded: LoadedModel, engine_cache: Path) -> list[Engine]:
    found: list[Engine] = [
        TorchEngine(loaded.model.encoder, loaded.spec, torch.device("cpu"), torch.float32),
        OnnxRuntimeEngine(export_onnx(loaded, engine_cache), threads=2),
    ]
    if engine_choice._has("openvino"):
        found.append(OpenVinoEngine(export_onnx(loaded, engine_cache), 2, bfloat16=False))
    return found


def test_streamed_batches_come_back_in_order_each_as_embedded_alone(
    glyph_loaded: LoadedModel, engine_cache: Path
) -> None:
    pixels = random_pixels(glyph_loaded, 40)
    batches: list[np.ndarray | None] = [pixels[:8], None, pixels[8:9], pixels[9:30], pixels[30:]]
    for engine in float32_engines(glyph_loaded, engine_cache):
        alone = [None if batch is None else engine.embed(batch) for batch in batches]
        streamed = list(embed_stream(engine, batches, lambda batch: batch))
        assert [batch for batch, _ in streamed] == batches  # the same objects, in order
        for (_, features), expected in zip(streamed, alone, strict=True):
            if expected is None:
                assert features is None  # nothing to embed: nothing submitted
            else:
                np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)
        # Several batches given to the streams at once, read back in any order.
        futures = [engine.submit(pixels[i : i + 10]) for i in range(0, 40, 10)]
        for future, i in reversed(list(zip(futures, range(0, 40, 10), strict=True))):
            np.testing.assert_allclose(
                future.result(), engine.embed(pixels[i : i + 10]), rtol=1e-4, atol=1e-4
            )


def test_a_stream_closed_early_leaves_the_engine_usable(
    glyph_loaded: LoadedModel, engine_cache: Path
) -> None:
    pixels = random_pixels(glyph_loaded, 64)
    for engine in float32_engines(glyph_loaded, engine_cache):
        stream = embed_stream(engine, [pixels] * 6, lambda batch: batch)
        next(stream)
        stream.close()  # as a cancelled labeling run does, with batches still submitted
        np.testing.assert_allclose(
            engine.embed(pixels[:3]), engine.embed(pixels)[:3], rtol=1e-4, atol=1e-4
        )


def test_the_export_is_cached_and_reused(
    glyph_loaded: LoadedModel, engine_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = export_onnx(glyph_loaded, engine_cache)
    stamp = first.stat().st_mtime_ns

    def no_second_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(torch.onnx, "export", no_second_export)
    assert export_onnx(glyph_loaded, engine_cache) == first
    assert first.stat().st_mtime_ns == stamp
    choice = choose_engine(glyph_loaded, "cpu", "onnxruntime", cache_dir=engine_cache)
    assert choice.engine.name == "onnxruntime float32"


def test_a_changed_model_gets_its_own_export(glyph_loaded: LoadedModel, engine_cache: Path) -> None:
    before = export_onnx(glyph_loaded, engine_cache)
    with torch.no_grad():
        next(glyph_loaded.model.encoder.parameters()).add_(1.0)
    assert engines.encoder_digest(glyph_loaded) not in before.name


def test_labels_through_onnxruntime_equal_labels_through_torch(
    glyph_model: Path, labeling_task: LabelingTask, engine_cache: Path, tmp_path: Path
) -> None:
    (tmp_path / "engines").symlink_to(engine_cache)
    support = SupportSet.from_mapping(labeling_task.support)
    paths = sorted(labeling_task.truth)
    found = {}
    for engine in ("torch", "onnxruntime"):
        labeler = Labeler(load_model(glyph_model), cache_dir=tmp_path, engine=engine)
        assert labeler.engine_name.startswith(engine)
        drive(labeler.set_support(support))
        drive(labeler.label(paths))
        found[engine] = [(p.label, round(p.confidence, 4)) for p in labeler.relabel()]
        # float32 engines share one embedding cache: the second one reads, not embeds.
        assert labeler.images_embedded == (len(paths) + 12 if engine == "torch" else 0)
    assert found["onnxruntime"] == found["torch"]


def test_a_failing_batch_raises_from_its_future_and_the_streams_go_on(
    glyph_loaded: LoadedModel, engine_cache: Path
) -> None:
    pixels = random_pixels(glyph_loaded, 4)
    wrong = np.zeros((2, 5, 5, glyph_loaded.spec.channels + 2), np.uint8)  # not the model's
    for engine in float32_engines(glyph_loaded, engine_cache):
        failing = engine.submit(wrong)
        with pytest.raises(Exception):  # noqa: B017 - each engine has its own error type
            failing.result(timeout=60)
        np.testing.assert_allclose(
            engine.submit(pixels).result(timeout=60), engine.embed(pixels), rtol=1e-4, atol=1e-4
        )
