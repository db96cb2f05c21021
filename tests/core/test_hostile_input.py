"""Labeling folders that hold hostile names and links: each file gets a row, no path escapes."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from fewshot_gui.core.checkpoint import CARD_FILE, load_model
from fewshot_gui.core.images import iter_image_files
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import Labeler, SupportSet
from fewshot_gui.core.manifest import read_manifest, write_manifest

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX names and symbolic links")


def support_for(root: Path, pattern_class: Callable[..., list[Path]]) -> SupportSet:
    return SupportSet.from_mapping(
        {name: pattern_class(root / name, seed, 3) for name, seed in (("ring", 1), ("bar", 2))}
    )


def test_odd_names_and_link_loops_are_labeled_kept_and_read_back(
    tiny_model: Path, tmp_path: Path, pattern_class: Callable[..., list[Path]]
) -> None:
    support = support_for(tmp_path / "support", pattern_class)
    images = tmp_path / "images"
    (plain,) = pattern_class(images, 1, 1)
    with open(os.path.join(os.fsencode(images), b"\xff\xfe.png"), "wb") as stream:
        stream.write(plain.read_bytes())
    (images / "loop-a.png").symlink_to(images / "loop-b.png")
    (images / "loop-b.png").symlink_to(images / "loop-a.png")
    (images / "dangling.png").symlink_to(images / "nowhere.png")
    paths = list(iter_image_files(images))
    odd = next(p for p in paths if "\udcff" in str(p))

    labeler = Labeler(load_model(tiny_model), cache_dir=tmp_path / "cache", engine="torch")
    drive(labeler.set_support(support))
    drive(labeler.label(paths))
    rows = [prediction.manifest_row() for prediction in labeler.relabel()]

    by_name = {Path(row.path).name: row for row in rows}
    assert len(rows) == len(paths) == 5
    assert by_name[odd.name].label in ("ring", "bar") and not by_name[odd.name].error
    assert "symbolic link loop" in by_name["loop-a.png"].error
    assert "symbolic link loop" in by_name["loop-b.png"].error
    assert "broken symbolic link" in by_name["dangling.png"].error
    for suffix in (".csv", ".json", ".jsonl"):
        write_manifest(rows, tmp_path / f"labels{suffix}")
        read_back = read_manifest(tmp_path / f"labels{suffix}")
        assert [(r.path, r.label, r.error) for r in read_back] == [
            (r.path, r.label, r.error) for r in rows
        ]
        assert str(odd) in {row.path for row in read_back}  # what a continued run looks up

    again = Labeler(load_model(tiny_model), cache_dir=tmp_path / "cache", engine="torch")
    drive(again.set_support(support))
    drive(again.label(paths))
    assert again.images_embedded == 0  # every readable file, the odd name too, from the cache


@pytest.mark.parametrize("name", ["../../outside/evil", "{tmp}/outside/evil"])
def test_a_card_name_cannot_lead_out_of_the_cache(
    tiny_model: Path, tmp_path: Path, pattern_class: Callable[..., list[Path]], name: str
) -> None:
    model = shutil.copytree(tiny_model, tmp_path / "model")
    card = json.loads((model / CARD_FILE).read_text(encoding="utf-8"))
    card["name"] = name.format(tmp=tmp_path)
    (model / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")
    cache = tmp_path / "cache"

    labeler = Labeler(load_model(model), cache_dir=cache, engine="torch")
    drive(labeler.set_support(support_for(tmp_path / "support", pattern_class)))

    assert not (tmp_path / "outside").exists()
    stored = list((cache / "embeddings").rglob("*"))
    (database,) = (p for p in stored if p.suffix == ".sqlite")
    assert all(p.parent == database.parent and p.is_file() for p in stored)  # SQLite's -wal too
    assert database.name.startswith("_")
