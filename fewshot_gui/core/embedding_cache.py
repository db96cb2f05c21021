"""Embeddings on disk, keyed by file identity (path, size, mtime) in one SQLite file per model.

Paths are stored as the bytes `os.fsencode` gives (a BLOB), not as text: a POSIX file name
need not be UTF-8, and `os.fsdecode` turns its stray bytes into lone surrogates that SQLite's
text columns refuse. `os.fsdecode` of the stored bytes is the path again, exactly.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

FileKey = tuple[str, int, int]  # resolved path, size in bytes, mtime in nanoseconds

# 1: paths as os.fsencode bytes; before it (0) they were text, which surrogates broke.
SCHEMA_VERSION = 1


class EmbeddingCache:
    """A persistent map from file identity to a float32 embedding vector.

    A file that changes gets a new size or mtime and so misses the cache; a stale row is
    replaced on the next write. Safe to use from one thread at a time, any thread.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._create_table()

    def _create_table(self) -> None:
        """Make the table; one of an older schema is dropped, as its rows are only a cache."""
        # IMMEDIATE: runs sharing the file must not both see the old schema and both rebuild.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self._db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                self._db.execute("DROP TABLE IF EXISTS embeddings")
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings ("
                " path BLOB PRIMARY KEY, size INTEGER, mtime_ns INTEGER, shape TEXT, data BLOB)"
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def get_many(self, keys: Sequence[FileKey]) -> dict[FileKey, np.ndarray]:
        """The cached embeddings among `keys`; files changed since caching are misses."""
        wanted = {os.fsencode(key[0]): key for key in keys}
        found: dict[FileKey, np.ndarray] = {}
        paths = list(wanted)
        with self._lock:
            for start in range(0, len(paths), 500):
                chunk = paths[start : start + 500]
                rows = self._db.execute(
                    "SELECT path, size, mtime_ns, shape, data FROM embeddings WHERE path IN "
                    f"({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for path, size, mtime_ns, shape, data in rows:
                    key = wanted[path]
                    if key[1:] == (size, mtime_ns):
                        dims = tuple(int(d) for d in shape.split(","))
                        found[key] = np.frombuffer(data, dtype=np.float32).reshape(dims)
        return found

    def put_many(self, items: Iterable[tuple[FileKey, np.ndarray]]) -> None:
        rows = [
            (
                os.fsencode(key[0]),
                key[1],
                key[2],
                ",".join(str(d) for d in vector.shape),
                np.ascontiguousarray(vector, dtype=np.float32).tobytes(),
            )
            for key, vector in items
        ]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
