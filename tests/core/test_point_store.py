"""The labeler's per-file points: rows written in any order, failures as zeros, growth."""

import torch

from fewshot_gui.core.point_store import PointStore


def test_rows_keep_their_points_through_failures_and_growth() -> None:
    store = PointStore(compact=True)
    store.put([0, 1], None)  # the first files failed: their shape is not known yet
    first = torch.rand(3, 5)
    store.put([2, 3, 4], first)
    many = torch.rand(100, 5)
    store.put(list(range(5, 105)), many)
    store.put([1], torch.full((1, 5), 0.5))  # a failed file read again
    assert len(store) == 105
    exact = store.exact()
    assert torch.equal(exact[0], torch.zeros(5)) and torch.equal(exact[1], torch.full((5,), 0.5))
    assert torch.equal(exact[2:5], first) and torch.equal(exact[5:], many)
    small = store.small()
    assert small is not None and small.dtype == torch.bfloat16
    assert torch.equal(small, exact.bfloat16())
    store.clear()
    assert len(store) == 0 and store.exact().shape[0] == 0


def test_without_compact_there_is_no_bfloat16_copy() -> None:
    store = PointStore()
    store.put([0], torch.rand(1, 3))
    assert store.small() is None and store.exact().shape == (1, 3)
