"""The duplicate finder on real files: exact copies by bytes, near copies through the default
photo model and the thumbnail check, the pair search against brute force."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from fewshot_gui.core.checkpoint import DEFAULT_MODEL, load_model
from fewshot_gui.core.duplicates import (
    HASH_CHUNK,
    MIN_BLOCKED,
    MIN_COSINE,
    DuplicateProgress,
    file_digest,
    find_duplicates,
    pipeline_embed,
    similar_pairs,
)
from fewshot_gui.core.jobs import CancelToken, drive
from fewshot_gui.core.labeling import Labeler
from fewshot_gui.core.picture_match import picture_match, read_thumbnail
from tests.duplicate_images import DuplicateSet, write_duplicate_set


@pytest.fixture(scope="module")
def photo_labeler() -> Labeler:
    return Labeler(load_model(DEFAULT_MODEL), device="cpu", engine="torch")


@pytest.fixture(scope="module")
def duplicate_set(tmp_path_factory: pytest.TempPathFactory) -> DuplicateSet:
    return write_duplicate_set(tmp_path_factory.mktemp("dups") / "photos")


def all_files(found: DuplicateSet) -> list[Path]:
    return [
        found.photo,
        *found.near_copies,
        found.same_object,
        found.exact_source,
        found.exact_copy,
        *found.others,
    ]


def test_exact_and_near_copies_group_and_another_photo_of_the_object_does_not(
    photo_labeler: Labeler, duplicate_set: DuplicateSet
) -> None:
    paths = all_files(duplicate_set)
    events: list[DuplicateProgress] = []
    result = drive(find_duplicates(paths, pipeline_embed(photo_labeler)), events.append)

    assert result.groups() == [
        [duplicate_set.photo, *duplicate_set.near_copies],
        [duplicate_set.exact_source, duplicate_set.exact_copy],
    ]
    assert result.exact_pairs == 1 and not result.errors and not result.cancelled
    assert result.group[paths.index(duplicate_set.same_object)] == 0
    # The largest file of each group is kept: the PNG original, one of two equal copies.
    assert [paths[i] for i in np.flatnonzero(result.keep)] == [
        duplicate_set.photo,
        duplicate_set.exact_source,
    ]
    assert {event.stage for event in events} >= {"hashing", "embedding", "comparing", "checking"}


def test_the_thumbnail_check_is_what_separates_the_other_photo(
    photo_labeler: Labeler, duplicate_set: DuplicateSet
) -> None:
    """The second photo of the mug is as close as a copy by the model's features; only
    the aligned thumbnails tell it apart."""
    photo, other = duplicate_set.photo, duplicate_set.same_object
    vectors = np.stack(
        [v for batch in pipeline_embed(photo_labeler)([photo, other], None) for v in batch.vectors]
    )
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert float(unit[0] @ unit[1]) >= MIN_COSINE
    thumbnail = read_thumbnail(photo)
    assert picture_match(thumbnail, read_thumbnail(other)) < 0.6
    for copy in duplicate_set.near_copies:
        assert picture_match(thumbnail, read_thumbnail(copy)) > 0.95, copy.name


@pytest.mark.parametrize("rows", [3000, 5000])  # all with all; blocked into cells
def test_similar_pairs_finds_what_brute_force_finds(rows: int) -> None:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((40, 64)).astype(np.float32)
    vectors = centres[rng.integers(0, 40, rows)] + 0.6 * rng.standard_normal((rows, 64))
    planted = np.arange(rows - 500, rows)
    vectors[planted] = vectors[:500] + 0.1 * rng.standard_normal((500, 64))  # near copies
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit.T
    brute = set(zip(*np.nonzero(np.triu(cosine >= 0.9, k=1)), strict=True))

    pairs = drive(similar_pairs(vectors.astype(np.float32), 0.9))

    found = set(map(tuple, pairs.tolist()))
    assert list(map(tuple, pairs.tolist())) == sorted(found)  # sorted, each pair once
    assert found <= brute and {(i, i + rows - 500) for i in range(500)} <= found
    if rows <= MIN_BLOCKED:
        assert found == brute


def test_streamed_digest_equals_the_whole_file_digest(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = np.random.default_rng(0).bytes(2 * HASH_CHUNK + 17)
    path.write_bytes(data)
    assert file_digest(path) == hashlib.blake2b(data, digest_size=20).hexdigest()


def test_unreadable_files_say_why_and_join_no_group(
    photo_labeler: Labeler, duplicate_set: DuplicateSet, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    gone = tmp_path / "gone.png"
    paths = [duplicate_set.exact_source, broken, gone, duplicate_set.exact_copy]

    result = drive(find_duplicates(paths, pipeline_embed(photo_labeler)))

    assert [path for path, _reason in result.errors] == [broken, gone]
    assert all(reason for _path, reason in result.errors)
    assert result.group.tolist() == [1, 0, 0, 1]


def test_cancel_stops_between_steps(photo_labeler: Labeler, duplicate_set: DuplicateSet) -> None:
    token = CancelToken()
    job = find_duplicates(all_files(duplicate_set), pipeline_embed(photo_labeler), token)
    next(job)
    token.cancel()
    result = drive(job)
    assert result.cancelled and not result.near_pairs
