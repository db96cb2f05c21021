"""Caches repair themselves: a damaged embedding cache or engine export is deleted and
rebuilt with a one-line notice, never a crash and never a wrong answer."""

import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fewshot_gui.core.checkpoint import LoadedModel, load_model
from fewshot_gui.core.embedding_cache import EmbeddingCache
from fewshot_gui.core.engine_choice import choose_engine
from fewshot_gui.core.engines import OnnxRuntimeEngine, export_onnx, export_path

KEYS = [(f"/photos/{i:04d}.jpg", 1000 + i, 7) for i in range(2000)]


def filled_cache(path: Path) -> None:
    cache = EmbeddingCache(path)
    cache.put_many((key, np.full(64, i, np.float32)) for i, key in enumerate(KEYS))
    cache.close()


def notices(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("fewshot_gui")]


def assert_works_again(path: Path) -> None:
    cache = EmbeddingCache(path)
    cache.put_many([(KEYS[0], np.arange(64, dtype=np.float32))])
    np.testing.assert_array_equal(cache.get_many(KEYS[:1])[KEYS[0]], np.arange(64))
    cache.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_cache_file_that_is_not_a_database_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "model.sqlite"
    path.write_bytes(b"this is not SQLite " * 500)
    caplog.set_level(logging.WARNING)
    cache = EmbeddingCache(path)
    assert len(cache) == 0
    cache.close()
    [notice] = notices(caplog)
    assert str(path) in notice and "damaged (file is not a database)" in notice
    assert_works_again(path)


def test_damage_found_while_reading_drops_the_cache_and_gives_misses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "model.sqlite"
    filled_cache(path)
    damaged = bytearray(path.read_bytes())
    noise = np.random.default_rng(0)
    for page in range(2 * 4096, len(damaged), 4096):  # the header page stays whole
        damaged[page + 100 : page + 300] = noise.bytes(200)
    path.write_bytes(bytes(damaged))
    caplog.set_level(logging.WARNING)
    cache = EmbeddingCache(path)  # the header is fine: the damage shows only on reading
    assert cache.get_many(KEYS) == {}
    cache.close()
    [notice] = notices(caplog)
    assert "damaged (database disk image is malformed)" in notice
    assert_works_again(path)


def test_a_row_that_does_not_decode_is_a_miss(tmp_path: Path) -> None:
    path = tmp_path / "model.sqlite"
    filled_cache(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE embeddings SET shape = 'x' WHERE path = ?", (os.fsencode(KEYS[0][0]),))
        db.execute("UPDATE embeddings SET data = x'00' WHERE path = ?", (os.fsencode(KEYS[1][0]),))
    cache = EmbeddingCache(path)
    found = cache.get_many(KEYS[:3])
    assert list(found) == [KEYS[2]]
    cache.close()


def test_a_fifo_in_place_of_the_cache_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "model.sqlite"
    os.mkfifo(path)
    opened = "from pathlib import Path; import sys\n"
    opened += "from fewshot_gui.core.embedding_cache import EmbeddingCache\n"
    opened += "print(len(EmbeddingCache(Path(sys.argv[1]))))"
    try:  # in a child: reading a FIFO blocks, and might hold the GIL while it does
        done = subprocess.run(
            [sys.executable, "-c", opened, str(path)], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("opening a FIFO as the cache blocked")
    assert done.stdout.strip() == "0", done.stderr
    assert "not a regular file" in done.stderr
    assert path.is_file()


@pytest.fixture
def glyph_loaded(glyph_model: Path) -> LoadedModel:
    return load_model(glyph_model)


def zero_a_block(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # zeros in the weights: still parses as ONNX
    path.write_bytes(bytes(data))


def cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def lose_checksum(path: Path) -> None:
    """As an export killed between writing its checksum and its file would leave it."""
    path.with_name(f"{path.name}.sha256").unlink()


@pytest.mark.parametrize("damage", [zero_a_block, cut_short, lose_checksum])
def test_a_damaged_export_is_deleted_and_exported_again(
    glyph_loaded: LoadedModel,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path], None],
) -> None:
    first = export_onnx(glyph_loaded, tmp_path)
    whole = first.read_bytes()
    damage(first)
    caplog.set_level(logging.WARNING)
    again = export_onnx(glyph_loaded, tmp_path)
    assert again == first
    assert again.read_bytes() == whole  # the export is deterministic: the same bytes again
    [notice] = notices(caplog)
    assert f"engine export {first} was damaged" in notice
    pixels = np.zeros((2, 28, 28, 1), np.uint8)
    assert OnnxRuntimeEngine(again, threads=1).embed(pixels).shape[0] == 2


def test_auto_starts_on_torch_when_the_export_is_damaged(
    glyph_loaded: LoadedModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The export is redone by the measuring child, not while the app or CLI waits."""
    zero_a_block(export_onnx(glyph_loaded, tmp_path))
    caplog.set_level(logging.WARNING)
    choice = choose_engine(glyph_loaded, "cpu", "auto", cache_dir=tmp_path)
    assert choice.engine.name == "torch float32"
    assert choice.measure_later
    assert not export_path(glyph_loaded, tmp_path).exists()
    assert len(notices(caplog)) == 1
