"""Matching Networks and Meta-SGD through the shared machinery: the registry, checkpoints,
meta-training and labeling with `unknown` and corrections, as ProtoNet goes through them."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fewshot_gui.core.checkpoint import load_model, save_model
from fewshot_gui.core.config import METHOD_NAMES, ModelConfig
from fewshot_gui.core.errors import CheckpointError
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import UNKNOWN, Labeler, SupportSet
from fewshot_gui.core.methods import (
    METHODS,
    MatchingNetwork,
    MetaSGD,
    build_model,
    embedding_layers,
)
from tests.conftest import LabelingTask

CONFIGS = {
    "matching": ModelConfig(method="matching"),
    "matching-fce": ModelConfig(method="matching", fce_steps=2),
    "meta-sgd": ModelConfig(method="meta-sgd", inner_steps=1, test_inner_steps=1, inner_lr=0.05),
}


def test_every_method_name_has_a_builder() -> None:
    assert set(METHODS) == set(METHOD_NAMES)
    for name in METHOD_NAMES:
        assert build_model(ModelConfig(method=name)).fit_support is not None


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_a_saved_model_loads_back_and_scores_the_same(kind: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = CONFIGS[kind]
    model = build_model(config).eval()
    with torch.no_grad():  # weights no fresh model has, so the load is what restores them
        for param in model.parameters():
            param.add_(0.01 * torch.randn_like(param))
    save_model(tmp_path / kind, model, config, {"name": kind})
    loaded = load_model(tmp_path / kind)
    assert loaded.config == config and type(loaded.model) is type(model)
    generator = torch.Generator().manual_seed(1)
    support, query = torch.rand(6, 1, 28, 28, generator=generator), torch.rand(4, 1, 28, 28)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    scores = []
    for candidate in (model, loaded.model):
        candidate.fit_support(support, labels)
        scores.append(candidate(query).detach())
    assert torch.equal(scores[0], scores[1])
    state, saved = model.state_dict(), loaded.model.state_dict()
    assert all(torch.equal(state[k], saved[k]) for k in state)


def test_a_card_for_another_method_shape_is_refused(tmp_path: Path) -> None:
    model = build_model(CONFIGS["matching-fce"])
    save_model(tmp_path / "m", model, CONFIGS["matching"], {"name": "m"})  # LSTMs it lacks
    with pytest.raises(CheckpointError, match="unexpected"):
        load_model(tmp_path / "m")


@pytest.fixture(scope="module")
def trained(glyph_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each method on the glyph ProtoNet's backbone, as `fewshot train --init` starts it."""
    root = tmp_path_factory.mktemp("methods")
    protonet = load_model(glyph_model).model
    models = {}
    for kind in ("matching", "meta-sgd"):
        model = build_model(CONFIGS[kind])
        for mine, theirs in zip(embedding_layers(model), embedding_layers(protonet), strict=True):
            mine.load_state_dict(theirs.state_dict())
        models[kind] = save_model(root / kind, model, CONFIGS[kind], {"name": kind})
    return models


@pytest.mark.parametrize("kind", ["matching", "meta-sgd"])
def test_labeling_calibrates_unknown_and_takes_corrections(
    kind: str, trained: dict[str, Path], labeling_task: LabelingTask, tmp_path: Path
) -> None:
    loaded = load_model(trained[kind])
    assert isinstance(loaded.model, MatchingNetwork if kind == "matching" else MetaSGD)
    odd = tmp_path / "odd.png"
    noise = np.random.default_rng(0).random((28, 28)) < 0.5
    Image.fromarray(np.where(noise, 0, 255).astype(np.uint8)).save(odd)
    labeler = Labeler(loaded)
    report = drive(labeler.set_support(SupportSet.from_mapping(labeling_task.support)))
    assert report.threshold is not None
    assert all(c.loo_accuracy is not None for c in report.classes)
    paths = sorted(labeling_task.truth)
    drive(labeler.label([odd, *paths]))
    before = {p.path: p.label for p in labeler.relabel()}
    assert before[odd] == UNKNOWN
    correct = sum(before[p] == truth for p, truth in labeling_task.truth.items())
    assert correct / len(paths) >= 0.9

    wrong = next(n for n in sorted(labeling_task.support) if n != before[paths[0]])
    labeler.set_corrections({paths[0]: wrong, paths[1]: UNKNOWN})
    after = {p.path: p for p in labeler.relabel()}
    assert after[paths[0]].label == wrong and after[paths[0]].pinned
    assert after[paths[1]].label == UNKNOWN and after[paths[1]].pinned
    labeler.set_corrections({})
    assert {p.path: p.label for p in labeler.relabel()} == before
