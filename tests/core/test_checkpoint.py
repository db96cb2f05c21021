"""Checkpoints: safetensors + card round trips, and nothing pickled ever loads."""

import json
import pickle
from pathlib import Path

import pytest
import torch

from fewshot_gui.core.checkpoint import (
    CARD_FILE,
    WEIGHTS_FILE,
    list_models,
    load_model,
    load_tensors,
    save_model,
)
from fewshot_gui.core.config import ModelConfig
from fewshot_gui.core.errors import CheckpointError
from fewshot_gui.core.methods import build_model


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(method="protonet"),
        ModelConfig(method="protonet", metric="cosine", backbone="conv4-rgb84"),
        ModelConfig(method="maml", inner_steps=2, test_inner_steps=3, first_order=True),
    ],
)
def test_round_trip_gives_identical_outputs(tmp_path: Path, config: ModelConfig) -> None:
    torch.manual_seed(0)
    model = build_model(config)
    model.train()
    size, channels = (84, 3) if config.backbone == "conv4-rgb84" else (28, 1)
    # A few training-mode passes move the batch-norm statistics away from their defaults.
    for _ in range(3):
        model.embed(torch.randn(8, channels, size, size))
    model.eval()
    save_model(tmp_path / "m", model, config, {"name": "tiny"})
    loaded = load_model(tmp_path / "m")
    support = torch.randn(6, channels, size, size)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    query = torch.randn(4, channels, size, size)
    model.fit_support(support, labels)
    loaded.model.fit_support(support, labels)
    torch.testing.assert_close(loaded.model(query), model(query), rtol=0, atol=0)
    assert loaded.config == config
    card = json.loads((tmp_path / "m" / CARD_FILE).read_text())
    assert card["name"] == "tiny" and card["input"]["size"] == size


def test_a_pickle_dressed_as_a_checkpoint_is_refused(tmp_path: Path) -> None:
    config = ModelConfig()
    save_model(tmp_path / "m", build_model(config), config, {"name": "evil"})

    class Payload:
        def __reduce__(self) -> tuple:
            return (Path.touch, (tmp_path / "pwned",))

    (tmp_path / "m" / WEIGHTS_FILE).write_bytes(pickle.dumps({"w": Payload()}))
    with pytest.raises(CheckpointError, match="never unpickled"):
        load_model(tmp_path / "m")
    assert not (tmp_path / "pwned").exists()


def test_a_pt_file_loads_only_plain_tensors(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pt")
    assert torch.equal(load_tensors(tmp_path / "ok.pt")["w"], torch.ones(2))

    class Payload:
        def __reduce__(self) -> tuple:
            return (Path.touch, (tmp_path / "pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match="only weights load"):
        load_tensors(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_weights_that_do_not_match_the_card_are_refused(tmp_path: Path) -> None:
    config = ModelConfig(method="protonet")
    save_model(tmp_path / "m", build_model(config), config, {})
    card_path = tmp_path / "m" / CARD_FILE
    card = json.loads(card_path.read_text())
    card["model"]["backbone"] = "conv4-rgb84"
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="shape"):
        load_model(tmp_path / "m")


def test_unknown_card_keys_and_names_are_clear_errors(tmp_path: Path) -> None:
    config = ModelConfig()
    save_model(tmp_path / "m", build_model(config), config, {})
    card_path = tmp_path / "m" / CARD_FILE
    card = json.loads(card_path.read_text())
    card["model"]["layers"] = 5
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="unknown ModelConfig key"):
        load_model(tmp_path / "m")
    with pytest.raises(CheckpointError, match="no model 'nope'"):
        load_model("nope")


def test_user_models_are_listed_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    config = ModelConfig()
    save_model(
        tmp_path / "data" / "fewshot-gui" / "models" / "mine", build_model(config), config, {}
    )
    assert "mine" in dict(list_models())
    assert load_model("mine").path.name == "mine"
