"""`fewshot train --method matching|meta-sgd`: validation, checkpoints and an exact resume."""

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from fewshot_gui.cli import main

METHOD_FLAGS = {
    "matching": ["--method", "matching", "--fce-steps", "1"],
    "meta-sgd": ["--method", "meta-sgd", "--inner-steps", "1", "--test-inner-steps", "1"],
}


@pytest.mark.parametrize("method", sorted(METHOD_FLAGS))
def test_train_resumes_to_the_weights_of_an_unbroken_run(
    method: str, glyph_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def train(out: Path, episodes: int, *extra: str) -> None:
        args = ["train", *METHOD_FLAGS[method], "--data", str(glyph_dataset), "--val-holdout"]
        args += ["1", "--way", "5", "--shot", "2", "--query", "2", "--val-query", "2"]
        args += ["--val-every", "2", "--val-episodes", "4", "--lr", "0.01"]
        assert main([*args, "--episodes", str(episodes), "--out", str(out), *extra]) == 0

    train(tmp_path / "unbroken", 4)
    train(tmp_path / "broken", 2)
    halfway = load_file(str(tmp_path / "broken" / "last" / "model.safetensors"))
    train(tmp_path / "broken", 4, "--resume")
    err = capsys.readouterr().err
    assert "resumed at episode 2" in err and "validation at 4:" in err
    card = json.loads((tmp_path / "broken" / "last" / "card.json").read_text())
    assert card["model"]["method"] == method and card["episodes_done"] == 4
    unbroken = load_file(str(tmp_path / "unbroken" / "last" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "broken" / "last" / "model.safetensors"))
    learned = "query_lstm.weight_ih" if method == "matching" else "inner_lrs.0-blocks-0-0-weight"
    assert not (halfway[learned] == resumed[learned]).all()  # the method's own part trains
    assert unbroken.keys() == resumed.keys()
    for key, tensor in unbroken.items():
        assert (tensor == resumed[key]).all(), key
