"""The labeler's per-file points: rows written in any order, failures as zeros, growth."""

import pytest
import torch

from fewshot_gui.core.point_store import BLOCK, PointStore


@pytest.mark.parametrize("half", [False, True])
def test_rows_keep_their_points_through_failures_and_growth(half: bool) -> None:
    store = PointStore(half=half)
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
    matrix = torch.rand(3, 5)
    torch.testing.assert_close(store.times(matrix), exact @ matrix.T)
    store.clear()
    assert len(store) == 0 and store.exact().shape[0] == 0


def test_half_products_follow_every_change_across_blocks() -> None:
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        pytest.skip("this torch has no FBGEMM; PointStore then multiplies in float32")
    store, matrix = PointStore(half=True), torch.rand(4, 32)
    store.put(list(range(BLOCK + 10)), torch.rand(BLOCK + 10, 32))
    # float16 keeps 11 significant bits: products of sums of 32 terms agree to ~1e-3.
    close = {"rtol": 1e-3, "atol": 1e-3}
    torch.testing.assert_close(store.times(matrix), store.exact() @ matrix.T, **close)
    assert not torch.equal(store.times(matrix), store.exact() @ matrix.T)  # the half copy ran
    store.put([3, 2 * BLOCK + 12], torch.rand(2, 32))  # a row of the first block, a new one
    torch.testing.assert_close(store.times(matrix), store.exact() @ matrix.T, **close)
    assert store.times(matrix).shape == (2 * BLOCK + 13, 4)


def test_rows_failed_before_any_points_stay_zeros_through_blocks_and_out_of_order_writes() -> None:
    store = PointStore(half=True)
    store.reserve(3 * BLOCK)
    store.put(list(range(BLOCK)), None)  # a whole first block failed: nothing to pack yet
    assert store.times(torch.rand(2, 6)).shape == (BLOCK, 2)
    points = torch.rand(10, 6)
    store.put(list(range(2 * BLOCK + 10, 2 * BLOCK + 20)), points)  # skips rows
    exact = store.exact()
    assert len(store) == 2 * BLOCK + 20 and exact.shape == (2 * BLOCK + 20, 6)
    assert torch.equal(exact[: 2 * BLOCK + 10], torch.zeros(2 * BLOCK + 10, 6))
    assert torch.equal(exact[2 * BLOCK + 10 :], points)
    matrix = torch.rand(3, 6)
    close = {"rtol": 1e-3, "atol": 1e-3}
    torch.testing.assert_close(store.times(matrix), exact @ matrix.T, **close)
    store.put([5, BLOCK + 5], torch.rand(2, 6))  # rows of two packed blocks change
    torch.testing.assert_close(store.times(matrix), store.exact() @ matrix.T, **close)


def test_points_arriving_after_failures_keep_every_row() -> None:
    store = PointStore()
    store.put(list(range(1, 100)), None)
    store.put([0], torch.ones(1, 4))
    assert len(store) == 100 and store.exact().shape == (100, 4)
    assert torch.equal(store.exact()[1:], torch.zeros(99, 4))
    assert store.times(torch.ones(1, 4)).shape == (100, 1)
