"""Class-folder pools and the seeded episode sampler."""

from pathlib import Path

import numpy as np
import pytest
import torch

from fewshot_gui.core.backbones import get_backbone
from fewshot_gui.core.config import EpisodeConfig
from fewshot_gui.core.datasets import (
    EpisodeSampler,
    ImagePool,
    episode_tensors,
    load_pixels,
    with_rotated_classes,
)
from fewshot_gui.core.errors import DataError
from fewshot_gui.core.transforms import to_tensor


def test_pool_finds_nested_class_folders(glyph_dataset: Path) -> None:
    pool = ImagePool.from_folder(glyph_dataset)
    assert len(pool.class_names) == 20
    assert pool.class_names[0] == "group0/class00"
    assert len(pool.paths) == 160
    assert all(
        pool.class_names[label] == p.parent.relative_to(glyph_dataset).as_posix()
        for p, label in zip(pool.paths, pool.labels, strict=True)
    )


def test_holdout_takes_the_smallest_groups_whole(tmp_path: Path, glyph_dataset: Path) -> None:
    extra = glyph_dataset / "group0" / "class99"
    extra.mkdir()
    (glyph_dataset / "group0" / "class00" / "00.png").rename(extra / "00.png")
    train, val = ImagePool.from_folder(glyph_dataset).split_holdout_groups(2)
    held = {name.split("/")[0] for name in val.class_names}
    assert held == {"group1", "group2"}  # group0 now has six classes, group3 five but later
    assert not held & {name.split("/")[0] for name in train.class_names}


def test_a_folder_without_classes_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="at least two class folders"):
        ImagePool.from_folder(tmp_path)


@pytest.mark.parametrize("rotations", [False, True])
def test_sampler_respects_way_shot_query_and_never_shares_images(
    glyph_dataset: Path, rotations: bool
) -> None:
    pool = ImagePool.from_folder(glyph_dataset)
    sampler = EpisodeSampler(pool.labels, EpisodeConfig(way=5, shot=3, query=4), 7, rotations)
    for _ in range(50):
        episode = sampler.sample()
        assert len(episode.support) == 15 and len(episode.query) == 20
        assert not set(episode.support) & set(episode.query)
        assert len(set(episode.support)) == 15 and len(set(episode.query)) == 20
        for cls in range(5):
            support_classes = pool.labels[episode.support[episode.support_labels == cls]]
            query_classes = pool.labels[episode.query[episode.query_labels == cls]]
            assert len(set(support_classes) | set(query_classes)) == 1
        if not rotations:
            assert not episode.rotations.any()


def test_same_seed_same_episodes_and_state_round_trip(glyph_dataset: Path) -> None:
    labels = ImagePool.from_folder(glyph_dataset).labels
    first = EpisodeSampler(labels, EpisodeConfig(5, 1, 2), seed=3)
    second = EpisodeSampler(labels, EpisodeConfig(5, 1, 2), seed=3)
    first.sample()
    second.load_state_dict(first.state_dict())
    assert np.array_equal(first.sample().support, second.sample().support)


def test_too_few_classes_says_how_many_qualify(glyph_dataset: Path) -> None:
    labels = ImagePool.from_folder(glyph_dataset).labels
    with pytest.raises(DataError, match="only 0 qualify"):
        EpisodeSampler(labels, EpisodeConfig(5, 4, 5), seed=0)


def test_rotated_classes_are_turned_images(glyph_dataset: Path, tmp_path: Path) -> None:
    pool = ImagePool.from_folder(glyph_dataset)
    spec = get_backbone("conv4")
    data = load_pixels(pool, spec, cache_dir=tmp_path / "cache").permute(0, 3, 1, 2)
    sampler = EpisodeSampler(pool.labels, EpisodeConfig(5, 1, 1), seed=1, rotations=True)
    episode = next(e for e in iter(sampler.sample, None) if e.rotations.any())
    support, _, _, _ = episode_tensors(data, episode)
    for cls, turns in enumerate(episode.rotations):
        original = data[episode.support[cls]]
        assert torch.equal(support[cls], torch.rot90(original, int(turns), dims=(1, 2)))


def test_each_rotation_of_a_class_becomes_a_class_of_its_own(glyph_dataset: Path) -> None:
    pool = ImagePool.from_folder(glyph_dataset)
    images = to_tensor(load_pixels(pool, get_backbone("conv4")), get_backbone("conv4"))
    turned, labels = with_rotated_classes(images, pool.labels)
    classes, n = len(pool.class_names), len(images)
    assert turned.shape == (4 * n, *images.shape[1:]) and len(np.unique(labels)) == 4 * classes
    for k in range(4):
        block = slice(k * n, (k + 1) * n)
        assert torch.equal(turned[block], torch.rot90(images, k, dims=(2, 3)))
        assert np.array_equal(labels[block], pool.labels + k * classes)


def test_pixels_are_cached_and_reused(glyph_dataset: Path, tmp_path: Path) -> None:
    pool = ImagePool.from_folder(glyph_dataset)
    spec = get_backbone("conv4")
    first = load_pixels(pool, spec, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("pixels-*.npy"))) == 1
    for path in pool.paths:  # the cache must not need the files again
        path.unlink()
    assert torch.equal(load_pixels(pool, spec, cache_dir=tmp_path), first)
    assert first.shape == (160, 28, 28, 1) and first.dtype == torch.uint8
