"""The collector pause: no cyclic collection while a pass builds long-lived objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from fewshot_gui.core.jobs import long_lived_objects


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generation of every cyclic collection that starts while the test runs."""
    started: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.callbacks.append(note)
    yield started
    gc.callbacks.remove(note)
    gc.unfreeze()


def build(count: int) -> list[list[int]]:
    return [[i] for i in range(count)]  # lists are tracked: each counts toward a collection


def test_building_many_objects_runs_collections_without_the_pause(
    collections: list[int],
) -> None:
    kept = build(200_000)
    assert len(kept) == 200_000
    assert collections  # the baseline the pause is measured against


def test_no_collection_runs_inside_and_what_was_built_is_left_out_of_later_ones(
    collections: list[int],
) -> None:
    frozen_before = gc.get_freeze_count()
    with long_lived_objects():
        kept = build(200_000)
        assert not gc.isenabled()
    assert collections == []
    assert gc.isenabled()
    assert gc.get_freeze_count() - frozen_before >= 200_000
    assert all(len(row) == 1 for row in kept)


def test_the_collector_stays_off_after_the_block_when_it_was_off_before(
    collections: list[int],
) -> None:
    gc.disable()
    try:
        with long_lived_objects():
            build(1_000)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_error_inside_still_turns_the_collector_back_on(collections: list[int]) -> None:
    with pytest.raises(RuntimeError), long_lived_objects():
        raise RuntimeError("the walk failed")
    assert gc.isenabled()
