"""Embeddings on disk, keyed by file identity (path, size, mtime) in one SQLite file per model.

Paths are stored as the bytes `os.fsencode` gives (a BLOB), not as text: a POSIX file name
need not be UTF-8, and `os.fsdecode` turns its stray bytes into lone surrogates that SQLite's
text columns refuse. `os.fsdecode` of the stored bytes is the path again, exactly.

The file is only a cache: when SQLite finds it damaged (or not a database at all), at open
or later, it is deleted and started afresh, with a one-line notice on the `fewshot_gui`
logger; a row that does not decode is a miss.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

FileKey = tuple[str, int, int]  # resolved path, size in bytes, mtime in nanoseconds

# 1: paths as os.fsencode bytes; before it (0) they were text, which surrogates broke.
SCHEMA_VERSION = 1
# SQLite's primary result codes for a damaged file, as opposed to a busy or locked one.
_DAMAGED_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
_SIDE_FILES = ("", "-wal", "-shm", "-journal")

_log = logging.getLogger(__name__)
Result = TypeVar("Result")


class _NotAFile(sqlite3.DatabaseError):
    """Something other than a regular file stands where the cache file should be."""


class EmbeddingCache:
    """A persistent map from file identity to a float32 embedding vector.

    A file that changes gets a new size or mtime and so misses the cache; a stale row is
    replaced on the next write. Safe to use from one thread at a time, any thread.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as error:
            if not _is_damage(error):
                raise
            self._db = self._rebuilt(error)

    def _connect(self) -> sqlite3.Connection:
        with contextlib.suppress(FileNotFoundError):
            # SQLite would open a FIFO and block reading it; anything but a file is damage.
            if not stat.S_ISREG(os.stat(self.path).st_mode):
                raise _NotAFile("not a regular file")
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._create_table(db)
        except BaseException:
            db.close()
            raise
        return db

    def _rebuilt(self, error: sqlite3.DatabaseError) -> sqlite3.Connection:
        """Delete the damaged file (and its WAL) and start an empty one, saying so."""
        _log.warning(
            "embedding cache %s was damaged (%s); deleted, rebuilding it", self.path, error
        )
        for suffix in _SIDE_FILES:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")
        return self._connect()

    def _guarded(self, query: Callable[[], Result], empty: Result) -> Result:
        """`query()` under the lock; damage found on the way rebuilds the file and gives
        `empty` (the rows it held are gone, and only cost their recomputation)."""
        with self._lock:
            try:
                return query()
            except sqlite3.DatabaseError as error:
                if not _is_damage(error):
                    raise
                self._db.close()
                self._db = self._rebuilt(error)
                return empty

    @staticmethod
    def _create_table(db: sqlite3.Connection) -> None:
        """Make the table; one of an older schema is dropped, as its rows are only a cache."""
        # IMMEDIATE: runs sharing the file must not both see the old schema and both rebuild.
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                db.execute("DROP TABLE IF EXISTS embeddings")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings ("
                " path BLOB PRIMARY KEY, size INTEGER, mtime_ns INTEGER, shape TEXT, data BLOB)"
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def get_many(self, keys: Sequence[FileKey]) -> dict[FileKey, np.ndarray]:
        """The cached embeddings among `keys`; files changed since caching are misses."""
        wanted = {os.fsencode(key[0]): key for key in keys}
        paths = list(wanted)

        def query() -> dict[FileKey, np.ndarray]:
            found: dict[FileKey, np.ndarray] = {}
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
                        # A row that does not decode is a miss; the next put replaces it.
                        with contextlib.suppress(ValueError, TypeError, AttributeError):
                            dims = tuple(int(d) for d in shape.split(","))
                            found[key] = np.frombuffer(data, dtype=np.float32).reshape(dims)
            return found

        return self._guarded(query, {})

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
        self._guarded(
            lambda: self._db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?)", rows
            ),
            None,
        )

    def __len__(self) -> int:
        return self._guarded(
            lambda: int(self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]), 0
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _is_damage(error: sqlite3.DatabaseError) -> bool:
    """Whether `error` says the file is damaged (not busy, locked or out of space)."""
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, _NotAFile) or (code is not None and code & 0xFF in _DAMAGED_CODES)
