"""The shipped Lite0+Lite2 model: one exported graph that ONNX Runtime runs as torch does, and
embeddings and exports kept apart from its members'."""

from pathlib import Path

import numpy as np
import torch

from fewshot_gui.core.checkpoint import load_model
from fewshot_gui.core.embedding_pipeline import cache_name
from fewshot_gui.core.engines import OnnxRuntimeEngine, PixelEncoder, export_onnx, export_path
from fewshot_gui.core.paths import resources_dir
from fewshot_gui.core.transforms import pixels_for

MEMBERS_AND_ENSEMBLE = ("photo-lite0-protonet", "photo-lite2-protonet", "photo-ensemble-protonet")


def test_the_ensemble_is_cached_and_exported_apart_from_each_member() -> None:
    loaded = [load_model(name) for name in MEMBERS_AND_ENSEMBLE]

    assert [m.spec.feature_dim for m in loaded] == [1280, 1280, 2560]
    assert len({cache_name(m, "float32") for m in loaded}) == 3
    assert len({export_path(m, Path("engines")) for m in loaded}) == 3


def test_the_ensemble_exports_as_one_graph_that_onnxruntime_runs_as_torch_does(
    tmp_path: Path,
) -> None:
    loaded = load_model("photo-ensemble-protonet")
    photos = sorted((resources_dir() / "demo" / "unlabeled").iterdir())[:3]
    pixels = np.stack([pixels_for(path, loaded.spec) for path in photos])

    exported = export_onnx(loaded, tmp_path)
    features = OnnxRuntimeEngine(exported, threads=1).embed(pixels)
    with torch.no_grad():
        expected = PixelEncoder(loaded.model.encoder, loaded.spec)(torch.from_numpy(pixels))

    assert list(tmp_path.glob("*.onnx")) == [exported]
    assert features.shape == (3, 2560)
    np.testing.assert_allclose(features, expected.numpy(), atol=1e-4)
