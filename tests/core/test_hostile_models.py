"""Hostile model folders: every number on a card is bounded, weights are finite, nothing
that is not a regular file is opened, and a damaged card hides no other model."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from fewshot_gui.core.checkpoint import (
    CARD_FILE,
    MAX_CARD_BYTES,
    WEIGHTS_FILE,
    find_models,
    load_model,
    read_card,
)
from fewshot_gui.core.config import MAX_INNER_STEPS, MAX_NECK_DIM, ModelConfig
from fewshot_gui.core.errors import CheckpointError, ConfigError
from fewshot_gui.core.methods import MAML
from fewshot_gui.core.methods.base import FewShotClassifier


def copy_model(tiny_model: Path, target: Path) -> Path:
    shutil.copytree(tiny_model, target)
    return target


def edit_card(directory: Path, **model: Any) -> None:
    card = json.loads((directory / CARD_FILE).read_text())
    card["model"].update(model)
    (directory / CARD_FILE).write_text(json.dumps(card))


def test_a_card_nested_100000_deep_is_a_checkpoint_error(tiny_model: Path, tmp_path: Path) -> None:
    model = copy_model(tiny_model, tmp_path / "deep")
    depth = 100_000
    (model / CARD_FILE).write_text(
        '{"format": "fewshot-gui-model/1", "x": ' + "[" * depth + "]" * depth + "}"
    )
    with pytest.raises(CheckpointError, match="nested too deeply"):
        read_card(model)
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_model(model)


def test_a_card_deeper_than_any_card_needs_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    """Deep enough to pass the JSON parser, too deep for code that walks it recursively."""
    model = copy_model(tiny_model, tmp_path / "deep")
    card = json.loads((model / CARD_FILE).read_text())
    card["notes"] = json.loads("[" * 200 + "]" * 200)
    (model / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="nested too deeply"):
        read_card(model)


def test_a_card_of_the_wrong_size_or_shape_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    model = copy_model(tiny_model, tmp_path / "m")
    card = json.loads((model / CARD_FILE).read_text())
    (model / CARD_FILE).write_text(json.dumps({**card, "notes": "x" * MAX_CARD_BYTES}))
    with pytest.raises(CheckpointError, match="over 1 MB"):
        read_card(model)
    (model / CARD_FILE).write_text(json.dumps({**card, "input": [1, 2]}))
    with pytest.raises(CheckpointError, match="'input' must be a dict"):
        read_card(model)
    # An integer past Python's 4300-digit conversion limit raises a bare ValueError.
    (model / CARD_FILE).write_text(json.dumps(card)[:-1] + ', "n": ' + "9" * 5000 + "}")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_card(model)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("neck", "linear:1000000000000", "neck"),
        ("neck", f"mlp:64,{MAX_NECK_DIM + 1}", "neck"),
        ("neck", "linear:1_0", "neck"),
        ("test_inner_steps", 10**30, "test_inner_steps"),
        ("inner_steps", MAX_INNER_STEPS + 1, "inner_steps"),
        ("inner_lr", float("nan"), "inner_lr"),
        ("inner_lr", 1e308, "inner_lr"),
    ],
)
def test_every_number_a_card_holds_is_bounded_before_anything_is_built(
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    field: str,
    value: object,
    words: str,
) -> None:
    model = copy_model(tiny_model, tmp_path / "m")
    edit_card(model, method="maml", **{field: value})

    def never_built(*args: object, **kwargs: object) -> FewShotClassifier:
        raise AssertionError("the model was built from an unchecked card")

    monkeypatch.setattr("fewshot_gui.core.checkpoint.build_model", never_built)
    with pytest.raises(CheckpointError, match=words):
        load_model(model)


def test_maml_itself_refuses_unbounded_steps() -> None:
    with pytest.raises(ConfigError, match="0 to 1000"):
        MAML(torch.nn.Identity(), torch.nn.Linear(2, 2), test_inner_steps=10**30)
    with pytest.raises(ConfigError):
        MAML(torch.nn.Identity(), torch.nn.Linear(2, 2), inner_lr=float("nan"))


def test_the_bounds_themselves_are_allowed() -> None:
    ModelConfig(method="maml", neck=f"mlp:{MAX_NECK_DIM},{MAX_NECK_DIM}")
    ModelConfig(method="maml", inner_steps=MAX_INNER_STEPS, test_inner_steps=MAX_INNER_STEPS)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_weights_that_are_not_finite_are_refused_at_load(
    tiny_model: Path, tmp_path: Path, bad: float
) -> None:
    model = copy_model(tiny_model, tmp_path / "m")
    state = load_file(str(model / WEIGHTS_FILE))
    name = next(key for key, tensor in state.items() if tensor.is_floating_point())
    state[name] = state[name].clone()
    state[name].view(-1)[3] = bad
    save_file(state, str(model / WEIGHTS_FILE))
    with pytest.raises(CheckpointError, match=f"{name} holds NaN or infinite weights"):
        load_model(model)


# In a child process: safetensors blocks in open() holding the GIL, so no thread could time it.
LOAD_IN_CHILD = """
import sys
from fewshot_gui.core.checkpoint import load_model
from fewshot_gui.core.errors import CheckpointError
try:
    load_model(sys.argv[1])
except CheckpointError as error:
    print("CheckpointError:", error)
"""


@pytest.mark.parametrize("name", [WEIGHTS_FILE, CARD_FILE])
def test_a_fifo_in_place_of_a_model_file_does_not_hang(
    tiny_model: Path, tmp_path: Path, name: str
) -> None:
    model = copy_model(tiny_model, tmp_path / "m")
    (model / name).unlink()
    os.mkfifo(model / name)
    try:
        done = subprocess.run(
            [sys.executable, "-c", LOAD_IN_CHILD, str(model)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"load_model blocked on a FIFO {name}")
    assert done.stdout.startswith("CheckpointError:"), done.stderr
    assert "is not a regular file" in done.stdout


def test_a_damaged_card_hides_no_other_model_and_is_named(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    models = tmp_path / "data" / "fewshot-gui" / "models"
    models.mkdir(parents=True)
    copy_model(tiny_model, models / "fine")
    deep = copy_model(tiny_model, models / "deep")
    (deep / CARD_FILE).write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    found, damaged = find_models()
    assert "fine" in dict(found)
    assert "deep" not in dict(found)
    assert [(path.name, "nested too deeply" in why) for path, why in damaged] == [("deep", True)]
