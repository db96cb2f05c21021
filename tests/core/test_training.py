"""Meta-training: it learns, it is reproducible, and a resumed run equals an unbroken one."""

from pathlib import Path

import pytest
import torch

from fewshot_gui.core.backbones import get_backbone
from fewshot_gui.core.checkpoint import load_model, load_tensors
from fewshot_gui.core.config import EpisodeConfig, ModelConfig, TrainConfig
from fewshot_gui.core.datasets import EpisodeSampler, ImagePool, episode_tensors, load_pixels
from fewshot_gui.core.errors import ConfigError
from fewshot_gui.core.evaluation import evaluate
from fewshot_gui.core.jobs import CancelToken, drive
from fewshot_gui.core.methods import build_model
from fewshot_gui.core.training import Checkpointed, TrainProgress, Validated, meta_train
from fewshot_gui.core.transforms import to_tensor


def small_config(**changes: object) -> TrainConfig:
    values = {
        "model": ModelConfig(method="protonet"),
        "episode": EpisodeConfig(5, 1, 5),
        "val_episode": EpisodeConfig(5, 1, 5),
        "episodes": 6,
        "val_every": 3,
        "val_episodes": 20,
        "seed": 0,
        **changes,
    }
    return TrainConfig(**values)  # type: ignore[arg-type]


def pools(root: Path) -> tuple[ImagePool, ImagePool]:
    return ImagePool.from_folder(root).split_holdout_groups(1)


def test_training_lifts_validation_accuracy_far_above_chance(
    distractor_dataset: Path, tmp_path: Path
) -> None:
    train, val = pools(distractor_dataset)
    config = small_config(episodes=30, val_every=10, val_episodes=40)
    torch.manual_seed(0)
    untrained = drive(
        evaluate(build_model(config.model), get_backbone("conv4"), val, config.val_episode, 40)
    )
    events: list[object] = []
    result = drive(meta_train(config, train, val, tmp_path / "run"), events.append)
    assert untrained.accuracy < 60  # chance is 20%; the noise half fools an untrained net
    assert result.best is not None and result.best.accuracy > 85
    assert result.best.accuracy > untrained.accuracy + 25
    assert [e.episode for e in events if isinstance(e, Validated)] == [10, 20, 30]
    assert any(isinstance(e, TrainProgress) for e in events)
    best = load_model(tmp_path / "run" / "best")
    assert best.card["validation"]["best"]["accuracy"] == pytest.approx(result.best.accuracy)
    assert best.card["training"]["episodes"] == 30


def test_maml_trains_and_saves_a_loadable_model(distractor_dataset: Path, tmp_path: Path) -> None:
    train, val = pools(distractor_dataset)
    config = small_config(
        model=ModelConfig(method="maml", inner_steps=1, test_inner_steps=2, first_order=True),
        episodes=4,
        val_every=2,
        val_episodes=10,
    )
    result = drive(meta_train(config, train, val, tmp_path / "run"))
    assert result.episodes_done == 4 and result.best is not None
    assert load_model(tmp_path / "run" / "best").config.method == "maml"


def test_same_seed_gives_the_same_weights(glyph_dataset: Path, tmp_path: Path) -> None:
    train, val = pools(glyph_dataset)
    drive(meta_train(small_config(), train, val, tmp_path / "a"))
    drive(meta_train(small_config(), train, val, tmp_path / "b"))
    first = load_tensors(tmp_path / "a" / "last" / "model.safetensors")
    second = load_tensors(tmp_path / "b" / "last" / "model.safetensors")
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_a_resumed_run_equals_an_unbroken_one(glyph_dataset: Path, tmp_path: Path) -> None:
    train, val = pools(glyph_dataset)
    drive(meta_train(small_config(), train, val, tmp_path / "unbroken"))
    drive(meta_train(small_config(episodes=3), train, val, tmp_path / "broken"))
    result = drive(meta_train(small_config(), train, val, tmp_path / "broken", resume=True))
    assert result.episodes_done == 6
    unbroken = load_tensors(tmp_path / "unbroken" / "last" / "model.safetensors")
    resumed = load_tensors(tmp_path / "broken" / "last" / "model.safetensors")
    for key in unbroken:
        torch.testing.assert_close(resumed[key], unbroken[key], rtol=0, atol=0)


def test_cancel_checkpoints_and_resume_refuses_other_settings(
    glyph_dataset: Path, tmp_path: Path
) -> None:
    train, val = pools(glyph_dataset)
    token = CancelToken()

    def cancel_after_two(event: object) -> None:
        if isinstance(event, TrainProgress) and event.episode >= 2:
            token.cancel()

    job = meta_train(small_config(), train, val, tmp_path / "run", cancel=token, report_every=1)
    events: list[object] = []
    result = drive(job, lambda e: (events.append(e), cancel_after_two(e)))
    assert result.cancelled and result.episodes_done == 2
    assert isinstance(events[-1], Checkpointed) and (tmp_path / "run" / "last").is_dir()
    with pytest.raises(ConfigError, match="lr changed"):
        drive(meta_train(small_config(lr=0.5), train, val, tmp_path / "run", resume=True))


def test_maml_started_from_a_protonet_begins_with_its_predictions(
    glyph_dataset: Path, tmp_path: Path
) -> None:
    train, val = pools(glyph_dataset)
    drive(meta_train(small_config(), train, val, tmp_path / "proto"))
    init = str(tmp_path / "proto" / "last")
    maml = ModelConfig(method="maml", inner_steps=1, test_inner_steps=0, first_order=True)
    # Cancelled before its first step, the run saves exactly the weights it started from.
    config = small_config(model=maml, init=init)
    drive(meta_train(config, train, val, tmp_path / "maml", cancel=lambda: True))
    started, protonet = load_model(tmp_path / "maml" / "last"), load_model(init)
    assert started.card["training"]["init"] == init

    sampler = EpisodeSampler(val.labels, EpisodeConfig(5, 2, 3), seed=3)
    inputs = to_tensor(load_pixels(val, get_backbone("conv4")), get_backbone("conv4"))
    support, support_labels, query, _ = episode_tensors(inputs, sampler.sample())
    with torch.no_grad():
        for loaded in (started, protonet):
            loaded.model.fit_support(support, support_labels)
        # Proto-MAML's head (w = 2c, b = -|c|^2) differs from -|x - c|^2 by |x|^2 per row.
        torch.testing.assert_close(
            started.model(query).log_softmax(1), protonet.model(query).log_softmax(1)
        )


def test_init_refuses_a_model_with_another_backbone(glyph_dataset: Path, tmp_path: Path) -> None:
    train, val = pools(glyph_dataset)
    drive(meta_train(small_config(), train, val, tmp_path / "proto"))
    other = small_config(
        model=ModelConfig(backbone="conv4-rgb84"), init=str(tmp_path / "proto" / "last")
    )
    with pytest.raises(ConfigError, match="backbone 'conv4'"):
        drive(meta_train(other, train, val, tmp_path / "other"))
