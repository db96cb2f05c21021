"""`fewshot train --method meta-lstm|metanet`: validates, checkpoints, resumes, evaluates."""

import json
from pathlib import Path

import pytest

from fewshot_gui.cli import main


@pytest.mark.parametrize(
    "method, extra",
    [
        ("meta-lstm", ["--inner-steps", "1", "--test-inner-steps", "1", "--inner-lr", "0.01"]),
        ("metanet", []),
    ],
)
def test_train_resumes_and_the_model_evaluates(
    method: str,
    extra: list[str],
    glyph_dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    args = ["train", "--method", method, *extra, "--data", str(glyph_dataset)]
    args += ["--val-holdout", "1", "--way", "5", "--shot", "1", "--query", "2"]
    args += ["--val-query", "2", "--val-every", "2", "--val-episodes", "4", "--out", str(run)]
    assert main([*args, "--episodes", "2"]) == 0
    assert main([*args, "--episodes", "3", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "resumed at episode 2" in err and "validation at 3:" in err
    card = json.loads((run / "best" / "card.json").read_text())
    assert card["model"]["method"] == method
    assert json.loads((run / "last" / "training_state.json").read_text())["run"]["episode"] == 3

    evaluate = ["eval", "--model", str(run / "last"), "--data", str(glyph_dataset)]
    evaluate += ["--holdout", "1", "--query", "2", "--episodes", "4", "--json"]
    assert main(evaluate) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 4 and 0 <= result["accuracy"] <= 100
