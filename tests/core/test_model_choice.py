"""The model chooser's words and the default model, from cards and this computer's speeds."""

from typing import Any

from fewshot_gui.core.checkpoint import read_card
from fewshot_gui.core.model_choice import (
    MIN_IMAGES_PER_SECOND,
    SAFE_DEFAULT,
    chooser_text,
    default_model,
)
from fewshot_gui.core.paths import builtin_models_dir

ENSEMBLE, LITE2 = "photo-ensemble-protonet", "photo-lite2-protonet"


def card(accuracy: float, cost: float, words: str) -> dict[str, Any]:
    return {
        "evaluation": {"20-way 1-shot": {"accuracy": accuracy}},
        "trade": {"words": words, "cost_vs_lite0": cost},
    }


MODELS = [
    (ENSEMBLE, card(90.0, 2.5, "most accurate, slowest")),
    ("omniglot-conv4-protonet", card(99.0, 0.1, "handwriting")),
    (SAFE_DEFAULT, card(88.0, 1.0, "fast")),
    (LITE2, card(89.0, 1.25, "more accurate, slower")),
    ("photo-lite0-maml", card(95.0, 1.0, "MAML")),
]


def test_a_gpu_starts_on_the_most_accurate_photo_protonet() -> None:
    assert default_model(MODELS, "cuda", {}) == ENSEMBLE
    assert default_model(MODELS, "mps", {SAFE_DEFAULT: 10.0}) == ENSEMBLE


def test_a_cpu_starts_safe_until_it_has_measured_a_speed() -> None:
    assert default_model(MODELS, "cpu", {}) == SAFE_DEFAULT


def test_a_cpu_takes_the_most_accurate_model_fast_enough_here() -> None:
    # Estimated from Lite0's speed here and each card's measured cost relative to Lite0.
    assert default_model(MODELS, "cpu", {SAFE_DEFAULT: 2.5 * MIN_IMAGES_PER_SECOND}) == ENSEMBLE
    assert default_model(MODELS, "cpu", {SAFE_DEFAULT: 2.0 * MIN_IMAGES_PER_SECOND}) == LITE2
    assert default_model(MODELS, "cpu", {SAFE_DEFAULT: 1.2 * MIN_IMAGES_PER_SECOND}) == SAFE_DEFAULT
    # A model's own measurement wins over the estimate, either way.
    slow_lite2 = {SAFE_DEFAULT: 2.0 * MIN_IMAGES_PER_SECOND, LITE2: MIN_IMAGES_PER_SECOND - 1}
    assert default_model(MODELS, "cpu", slow_lite2) == SAFE_DEFAULT
    fast_ensemble = {SAFE_DEFAULT: 100.0, ENSEMBLE: MIN_IMAGES_PER_SECOND}
    assert default_model(MODELS, "cpu", fast_ensemble) == ENSEMBLE


def test_the_chooser_says_what_each_model_trades_and_its_speed_once_known() -> None:
    lite2 = card(89.0, 1.25, "more accurate, slower")

    assert chooser_text(LITE2, lite2, None) == f"{LITE2}: more accurate, slower"
    assert (
        chooser_text(LITE2, lite2, 161.4) == f"{LITE2}: more accurate, slower (161 images/s here)"
    )
    assert chooser_text("mine", {}, None) == "mine"


def test_every_shipped_photo_protonet_says_what_it_trades() -> None:
    shipped = [p for p in builtin_models_dir().iterdir() if p.name.startswith("photo-")]
    protonets = [p for p in shipped if p.name.endswith("-protonet")]

    assert {p.name for p in protonets} >= {SAFE_DEFAULT, LITE2, ENSEMBLE}
    costs = {}
    for directory in protonets:
        trade = read_card(directory)["trade"]
        assert trade["words"]
        costs[directory.name] = trade["cost_vs_lite0"]
    assert costs[SAFE_DEFAULT] == 1.0 < costs[LITE2] < costs[ENSEMBLE]
