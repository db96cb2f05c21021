"""Every model we ship loads, carries a complete card, and labels the shipped demo photos."""

from pathlib import Path

import pytest

from fewshot_gui.core.checkpoint import list_models, load_model, read_card
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import Labeler, SupportSet
from fewshot_gui.core.paths import builtin_models_dir, resources_dir

SHIPPED = sorted(p.name for p in builtin_models_dir().iterdir() if (p / "card.json").is_file())
SETTINGS = ("5-way 1-shot", "5-way 5-shot", "20-way 1-shot")
# Evaluated on fewer episodes than 1,000, each saying why on its card: to be re-run and removed.
FEWER_EPISODES = {"omniglot-conv4-meta-lstm": 200}  # 5 LSTM updates per episode, shared CPU
# Known failures on the demo, each explained on its card: strict, so a fix shows.
DEMO_FAILURES = {"omniglot-conv4-metanet": "labels the zigzag symbol_12 as trident"}


def test_the_default_model_is_shipped() -> None:
    assert "photo-lite0-protonet" in SHIPPED
    assert set(SHIPPED) <= {name for name, _ in list_models()}


@pytest.mark.parametrize("name", SHIPPED)
def test_card_is_complete(name: str) -> None:
    card = read_card(builtin_models_dir() / name)
    for key in ("name", "command", "seed", "machine", "seconds", "split", "data", "licenses"):
        assert card.get(key) not in (None, "", {}), key
    assert card["name"] == name and card["command"].startswith("fewshot train ")
    for setting in SETTINGS:
        figure = card["evaluation"][setting]
        assert figure["episodes"] >= FEWER_EPISODES.get(name, 1000) and figure["query"] == 15
        assert 0 < figure["ci95"] < 5 and 20 < figure["accuracy"] <= 100
        assert figure["command"].startswith("fewshot eval ")
        for baseline in card["baselines"].values():
            assert baseline[setting]["episodes"] >= 1000


def demo_truth() -> dict[str, str]:
    """unlabeled file name -> class, from the demo's SOURCES.txt (crabs have no class)."""
    names = {"dalmatian": "dalmatian", "Motorbikes": "motorbike", "cup": "cup", "ferry": "ferry"}
    truth = {}
    for line in (resources_dir() / "demo" / "SOURCES.txt").read_text().splitlines():
        ours, source = line.split(" <- ")
        if ours.startswith("unlabeled/"):
            truth[Path(ours).name] = names.get(source.split("/")[0], "unknown")
    return truth


@pytest.mark.parametrize("name", [n for n in SHIPPED if n.startswith("photo-")])
def test_photo_models_label_the_demo_photos(name: str) -> None:
    demo = resources_dir() / "demo"
    labeler = Labeler(load_model(name))
    drive(labeler.set_support(SupportSet.from_folder(demo / "examples")))
    drive(labeler.label(sorted((demo / "unlabeled").iterdir())))
    truth = demo_truth()
    predictions = {p.path.name: p for p in labeler.relabel()}
    known = [n for n, label in truth.items() if label != "unknown"]
    right = sum(predictions[n].nearest == truth[n] for n in known)
    assert right == len(known)
    labeled_right = sum(predictions[n].label == truth[n] for n in known)
    assert labeled_right >= len(known) - 2  # at most two are held back as unknown


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=DEMO_FAILURES[n]))
        if n in DEMO_FAILURES
        else n
        for n in SHIPPED
        if n.startswith("omniglot-")
    ],
)
def test_handwriting_models_label_the_demo_symbols(name: str) -> None:
    symbols = resources_dir() / "symbols"
    truth = dict(
        line.removeprefix("unlabeled/").split(" <- ")
        for line in (symbols / "TRUTH.txt").read_text().splitlines()
    )
    labeler = Labeler(load_model(name))
    drive(labeler.set_support(SupportSet.from_folder(symbols / "examples")))
    drive(labeler.label(sorted((symbols / "unlabeled").iterdir())))
    labels = {p.path.name: p.label for p in labeler.relabel()}
    known = [n for n, label in truth.items() if label != "unknown"]
    assert len(known) == 20 and all(labels[n] in (truth[n], "unknown") for n in known)
    assert sum(labels[n] == truth[n] for n in known) >= 18  # at most two held back as unknown
    assert all(labels[n] == "unknown" for n, label in truth.items() if label == "unknown")
