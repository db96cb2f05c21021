"""Files replaced atomically: written beside their target, synced, then renamed over it."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO


@contextmanager
def atomic_write(
    path: Path, *, newline: str | None = None, errors: str = "strict"
) -> Iterator[TextIO]:
    """A text stream whose content replaces `path` only once the block ends without error.

    Until then the old file, if any, stays intact; on error the temporary file is removed.
    The temporary file sits in the same folder, so the final rename is atomic, and it is
    created with mode 0o666 so that the umask, not this function, sets its permissions.
    `errors` is the UTF-8 encoder's error handler, as for `open`.
    """
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with open(fd, "w", encoding="utf-8", errors=errors, newline=newline) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as indented UTF-8 JSON, replacing `path` atomically."""
    with atomic_write(path) as stream:
        json.dump(data, stream, indent=2, ensure_ascii=False, allow_nan=False)
        stream.write("\n")
