"""The LSTM meta-learner and MetaNet all the way through: trained from a ProtoNet, saved and
loaded, and labeling a folder with `unknown` and corrections as a ProtoNet does."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fewshot_gui.core.checkpoint import load_model, save_model
from fewshot_gui.core.config import EpisodeConfig, ModelConfig, TrainConfig
from fewshot_gui.core.datasets import ImagePool
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import UNKNOWN, Labeler, SupportSet
from fewshot_gui.core.methods import MetaLSTM, MetaNet, build_model
from fewshot_gui.core.training import meta_train
from tests.conftest import LabelingTask, make_glyph_dataset

CONFIGS = {
    "meta-lstm": ModelConfig(method="meta-lstm", inner_steps=1, test_inner_steps=1, inner_lr=0.01),
    "metanet": ModelConfig(method="metanet"),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def trained(
    request: pytest.FixtureRequest, glyph_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A few episodes of meta-training started from the session's glyph ProtoNet."""
    root = tmp_path_factory.mktemp(request.param)
    data = make_glyph_dataset(root / "data", groups=2, classes_per_group=5, seed=3)
    train, val = ImagePool.from_folder(data).split_holdout_groups(1)
    config = TrainConfig(
        model=CONFIGS[request.param],
        episode=EpisodeConfig(5, 1, 3),
        val_episode=EpisodeConfig(5, 1, 3),
        episodes=2,
        val_every=2,
        val_episodes=3,
        init=str(glyph_model),
    )
    drive(meta_train(config, train, val, root / "run", card={"name": request.param}))
    return root / "run" / "best"


def test_a_checkpoint_loads_back_to_the_same_scores(trained: Path, tmp_path: Path) -> None:
    loaded = load_model(trained)
    assert isinstance(loaded.model, MetaLSTM | MetaNet)
    assert loaded.config == CONFIGS[loaded.config.method]
    again = load_model(save_model(tmp_path / "copy", loaded.model, loaded.config, loaded.card))
    generator = torch.Generator().manual_seed(0)
    support, query = torch.rand(6, 1, 28, 28, generator=generator), torch.rand(4, 1, 28, 28)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    scores = []
    for model in (loaded.model, again.model):
        with torch.no_grad():
            model.fit_support(support, labels)
            scores.append(model(query))
    assert torch.equal(scores[0], scores[1])
    fresh = build_model(loaded.config).eval()  # and the weights are not a fresh model's
    with torch.no_grad():
        fresh.fit_support(support, labels)
        assert not torch.equal(fresh(query), scores[0])


def test_labels_with_unknown_and_corrections_as_a_protonet_does(
    trained: Path, labeling_task: LabelingTask, tmp_path: Path
) -> None:
    odd = tmp_path / "odd.png"
    rng = np.random.default_rng(0)
    Image.fromarray(np.where(rng.random((28, 28)) < 0.5, 0, 255).astype(np.uint8)).save(odd)
    labeler = Labeler(load_model(trained), cache_dir=tmp_path / "cache")
    report = drive(labeler.set_support(SupportSet.from_mapping(labeling_task.support)))
    assert report.threshold is not None
    assert all(c.examples == 3 and c.loo_accuracy is not None for c in report.classes)
    paths = sorted(labeling_task.truth)
    drive(labeler.label([odd, *paths]))
    labels = {p.path: p.label for p in labeler.relabel()}
    assert labels[odd] == UNKNOWN
    correct = sum(labels[p] == truth for p, truth in labeling_task.truth.items())
    assert correct / len(paths) >= 0.9

    wrong = next(n for n in sorted(labeling_task.support) if n != labels[paths[0]])
    labeler.set_corrections({paths[0]: wrong, paths[1]: UNKNOWN})
    corrected = {p.path: p for p in labeler.relabel()}
    assert corrected[paths[0]].label == wrong and corrected[paths[0]].pinned
    assert corrected[paths[1]].label == UNKNOWN and corrected[paths[1]].pinned
    labeler.set_corrections({})
    assert {p.path: p.label for p in labeler.relabel()} == labels
