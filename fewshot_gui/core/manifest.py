"""The results manifest: one row per labeled file, written atomically as CSV, JSON or JSON lines.

A POSIX file name is bytes and need not be UTF-8; `os.fsdecode` keeps its stray bytes as the
lone surrogates U+DC80..U+DCFF. Such text is kept exactly, in a way each format allows: CSV
holds the name's own bytes (Python's "surrogateescape"), so that one cell is not UTF-8; JSON
and JSON lines stay UTF-8 and write each lone surrogate as its JSON escape (`"\\udcff"`).
Reading undoes both, so the path read back is the path written. Valid UTF-8 text is
written exactly as it always was.

A CSV file is often opened in a spreadsheet, which runs a cell starting with '=', '+', '-'
or '@' (or a tab or line break before one) as a formula. As OWASP advises against this CSV
injection, a text cell (path, label, runner_up, error) starting with any of them is written
with a single quote before it, which spreadsheets show as text. A cell starting with a quote
gets one more, so reading strips exactly one leading quote and every path reads back as the
path written: '-rf.png' is written "'-rf.png" and read as '-rf.png', "'a.png" is written
"''a.png". Numbers are written plain; JSON and JSON lines need no escape.
A line break or carriage return inside a file name is kept: CSV quotes such a cell, and
JSON escapes it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fewshot_gui.core.atomic import atomic_write
from fewshot_gui.core.errors import ExportError

MANIFEST_FIELDS: tuple[str, ...] = (
    "path",
    "label",
    "confidence",
    "runner_up",
    "runner_up_confidence",
    "error",
)
MANIFEST_SUFFIXES: tuple[str, ...] = (".csv", ".json", ".jsonl")
CONFIDENCE_DIGITS = 6
_NUMBER_FIELDS = ("confidence", "runner_up_confidence")
# What a spreadsheet may take for the start of a formula (OWASP, CSV injection), and the quote
# that escapes it, itself escaped so that reading strips exactly one.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "'")
# Lone surrogates occur only inside JSON strings, where a \u escape is their valid spelling.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class ManifestRow:
    """One labeled file; `label` is '' and `error` says why when the file could not be labeled."""

    path: str
    label: str
    confidence: float | None
    runner_up: str
    runner_up_confidence: float | None
    error: str


def write_manifest(
    rows: Iterable[ManifestRow], out: Path, *, meta: dict[str, Any] | None = None
) -> None:
    """Write `rows` to `out` in the format its suffix names, replacing `out` atomically.

    `.csv` has a header of MANIFEST_FIELDS and empty cells for missing numbers; `.json` is
    `{"meta": meta, "results": [...]}`; `.jsonl` is one row object per line. `meta` goes only
    into `.json`, the one format with a place for it. Confidences are rounded to 6 digits.
    Until the new file is complete the old `out`, if any, stays intact; if writing fails,
    whatever `rows` raised (or an ExportError for a disk error) propagates and no temp file stays.
    """
    out = Path(out)
    suffix = _checked_suffix(out)
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ExportError(f"The manifest metadata is not plain JSON: {exc}") from exc
    records = (_record(row, csv_cells=suffix == ".csv") for row in rows)
    try:
        with atomic_write(out, newline="", errors="surrogateescape") as stream:
            if suffix == ".csv":
                writer = csv.DictWriter(stream, fieldnames=MANIFEST_FIELDS)
                writer.writeheader()
                writer.writerows(records)
            elif suffix == ".json":
                document = {"meta": meta or {}, "results": list(records)}
                stream.write(_json_text(document, indent=2) + "\n")
            else:
                for record in records:
                    stream.write(_json_text(record) + "\n")
    except UnicodeEncodeError as exc:
        text = exc.object[exc.start : exc.end]
        raise ExportError(
            f"The manifest {out} cannot hold {text!r}, which is not a POSIX file name's byte; "
            "name it .json or .jsonl instead."
        ) from exc
    except OSError as exc:
        raise ExportError(f"Could not write the manifest {out}: {exc.strerror or exc}") from exc


def read_manifest(path: Path) -> list[ManifestRow]:
    """Read a manifest written by write_manifest (or edited by hand) back into rows."""
    path = Path(path)
    suffix = _checked_suffix(path)
    try:
        # utf-8-sig: a spreadsheet that re-saves the CSV may prepend a byte-order mark.
        # CSV cells may hold a file name's own non-UTF-8 bytes; JSON is always UTF-8.
        errors = "surrogateescape" if suffix == ".csv" else "strict"
        # newline="": a carriage return inside a file name stays one, not a line break.
        with open(path, encoding="utf-8-sig", errors=errors, newline="") as stream:
            text = stream.read()
    except OSError as exc:
        raise ExportError(f"Could not read the manifest {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ExportError(f"The manifest {path} is not UTF-8 text: {exc}") from exc
    rows: list[ManifestRow] = []
    try:
        for record in _records(text, suffix):
            rows.append(_row(record))
    except (ValueError, TypeError) as exc:
        raise ExportError(
            f"The manifest {path} is malformed at row {len(rows) + 1}: {exc}"
        ) from exc
    return rows


def _checked_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise ExportError(
            f"Cannot tell the manifest format of {path.name!r}: "
            f"name it with one of {', '.join(MANIFEST_SUFFIXES)}."
        )
    return suffix


def _json_text(document: Any, indent: int | None = None) -> str:
    text = json.dumps(document, ensure_ascii=False, indent=indent, allow_nan=False)
    return _LONE_SURROGATE.sub(lambda match: f"\\u{ord(match[0]):04x}", text)


def _record(row: ManifestRow, *, csv_cells: bool = False) -> dict[str, Any]:
    record = asdict(row)
    for field in MANIFEST_FIELDS:
        value = record[field]
        if field not in _NUMBER_FIELDS:
            if csv_cells and value.startswith(_FORMULA_STARTS):
                record[field] = "'" + value
        elif value is not None:
            if not math.isfinite(value):
                raise ExportError(f"{field} of {row.path!r} is {value}; it must be finite.")
            record[field] = round(float(value), CONFIDENCE_DIGITS)
    return record


def _records(text: str, suffix: str) -> Iterator[dict[str, Any]]:
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = set(MANIFEST_FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"the CSV header lacks {', '.join(sorted(missing))}")
        for record in reader:
            if any(record[field] is None for field in MANIFEST_FIELDS):
                raise ValueError("the CSV line has fewer cells than the header")
            yield {
                field: _csv_number(record[field])
                if field in _NUMBER_FIELDS
                else record[field].removeprefix("'")
                for field in MANIFEST_FIELDS
            }
    elif suffix == ".json":
        document = json.loads(text)
        if not isinstance(document, dict) or not isinstance(document.get("results"), list):
            raise ValueError('expected an object with a "results" list')
        yield from document["results"]
    else:
        # Only "\n" ends a line: splitlines() would also split at U+2028 or U+0085, which
        # JSON writes raw inside a file name.
        for number, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"line {number} is not JSON: {exc}") from exc
                yield record


def _csv_number(cell: str) -> float | None:
    return float(cell) if cell.strip() else None


def _row(record: dict[str, Any]) -> ManifestRow:
    if not isinstance(record, dict):
        raise TypeError(f"expected an object per row, got {record!r}")
    missing = [field for field in MANIFEST_FIELDS if field not in record]
    if missing:
        raise ValueError(f"the row lacks {', '.join(missing)}")
    values: dict[str, Any] = {}
    for field in MANIFEST_FIELDS:
        value = record[field]
        if field in _NUMBER_FIELDS:
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not is_number:
                raise TypeError(f"{field} must be a number or null, got {value!r}")
            values[field] = None if value is None else float(value)
        elif not isinstance(value, str):
            raise TypeError(f"{field} must be a string, got {value!r}")
        else:
            values[field] = value
    return ManifestRow(**values)
