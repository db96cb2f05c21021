"""The on-disk embedding cache: any file name as a key, misses on change, an old schema rebuilt."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from fewshot_gui.core.embedding_cache import EmbeddingCache
from fewshot_gui.core.images import image_identity


@pytest.mark.skipif(os.name != "posix", reason="only POSIX file names are arbitrary bytes")
def test_a_non_utf8_file_name_is_stored_and_found_again(tmp_path: Path) -> None:
    with open(os.path.join(os.fsencode(tmp_path), b"\xff\xfe.png"), "wb") as stream:
        stream.write(b"pixels")
    with open(tmp_path / "plain.png", "wb") as stream:
        stream.write(b"other pixels")
    plain, odd = (image_identity(tmp_path / name) for name in sorted(os.listdir(tmp_path)))
    assert "\udcff\udcfe" in odd[0]
    vectors = {odd: np.arange(4, dtype=np.float32), plain: np.ones((2, 3), np.float32)}

    cache = EmbeddingCache(tmp_path / "cache" / "model.sqlite")
    cache.put_many(vectors.items())
    cache.close()
    reopened = EmbeddingCache(tmp_path / "cache" / "model.sqlite")
    found = reopened.get_many([odd, plain])

    assert found.keys() == vectors.keys()
    for key, vector in vectors.items():
        np.testing.assert_array_equal(found[key], vector)
    changed = (odd[0], odd[1] + 1, odd[2])
    assert reopened.get_many([changed]) == {}  # another size: a miss
    reopened.close()


def test_a_cache_of_the_old_text_schema_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "model.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE embeddings ("
        " path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, shape TEXT, data BLOB)"
    )
    old.execute("INSERT INTO embeddings VALUES ('/a.png', 1, 2, '1', x'0000803f')")
    old.commit()
    old.close()

    cache = EmbeddingCache(path)
    assert len(cache) == 0
    cache.put_many([(("/a.png", 1, 2), np.ones(1, np.float32))])
    assert cache.get_many([("/a.png", 1, 2)])[("/a.png", 1, 2)].tolist() == [1.0]
    cache.close()
    assert len(EmbeddingCache(path)) == 1  # the new schema is kept, not rebuilt again
