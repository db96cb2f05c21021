"""`fewshot label` and `fewshot models` on bad values and damaged files: one clear line and
exit code 2 before anything is read, and caches that repair themselves with a notice."""

from __future__ import annotations

import contextlib
import csv
import gc
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from fewshot_gui.cli import main
from fewshot_gui.core.checkpoint import CARD_FILE, WEIGHTS_FILE
from tests.cli.test_cli import label_args
from tests.conftest import LabelingTask

MISSING_MODEL = "/nonexistent/model"  # reached only if a check came too late


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `fewshot ARGV`, expect exit code 2, and give its one error line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("fewshot: error: ")
    return err


def with_model(argv: list[str], model: Path | str) -> list[str]:
    argv = list(argv)
    argv[argv.index("--model") + 1] = str(model)
    return argv


@pytest.fixture
def args(labeling_task: LabelingTask, tmp_path: Path) -> list[str]:
    """`fewshot label` on the task, with a model that does not exist: every refusal below
    must come before the model is loaded, and so before the first image is read."""
    return label_args(labeling_task, Path(MISSING_MODEL), tmp_path / "labels.csv")


def test_a_dest_under_a_file_is_one_line(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    err = refused(
        [*args, "--export", "copy", "--dest", str(tmp_path / "a-file" / "sorted")], capsys
    )
    assert "a-file is a file, not a folder" in err
    err = refused([*args, "--export", "copy", "--dest", str(tmp_path / "a-file")], capsys)
    assert "a-file is a file, not a folder" in err
    assert not (tmp_path / "labels.csv").exists()


@contextlib.contextmanager
def read_only_folder(folder: Path) -> Iterator[Path]:
    """A folder nothing can be written in: by its mode, or for root (whom modes do not
    stop) as a read-only tmpfs mounted on it."""
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"root here may not mount a read-only tmpfs: {mounted.stderr!r}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_dest_on_a_read_only_folder_is_one_line(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with read_only_folder(tmp_path / "locked") as locked:
        err = refused([*args, "--export", "move", "--dest", str(locked / "sorted")], capsys)
    assert "cannot write in" in err and "read-only" in err


@pytest.mark.parametrize("where", ["same", "above"])
def test_a_dest_that_is_or_holds_the_images_is_refused(
    args: list[str], labeling_task: LabelingTask, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    dest = labeling_task.images if where == "same" else labeling_task.images.parent
    err = refused([*args, "--export", "copy", "--dest", str(dest)], capsys)
    assert "nothing would be labeled; choose a --dest outside --images" in err
    # Without --export too: --dest alone still hides every file under it.
    refused([*args, "--dest", str(dest)], capsys)


@pytest.mark.parametrize("size", ["-3", "0", "100000"])
def test_a_batch_size_out_of_range_is_refused(
    args: list[str], capsys: pytest.CaptureFixture[str], size: str
) -> None:
    err = refused([*args, "--batch-size", size], capsys)
    assert f"--batch-size must be 1 to 4096, not {size}" in err


@pytest.mark.parametrize("flag", [["--unknown", "nan"], ["--unknown=-inf"], ["--unknown", "inf"]])
def test_an_unknown_threshold_that_is_not_finite_is_refused(
    args: list[str], capsys: pytest.CaptureFixture[str], flag: list[str]
) -> None:
    err = refused([*args, *flag], capsys)
    assert "must be auto, off or a finite number" in err


def test_a_session_whose_threshold_is_not_finite_is_refused(
    labeling_task: LabelingTask, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fewshot_gui.core.session import Session

    session = Session(
        classes=[(name, list(paths)) for name, paths in labeling_task.support.items()],
        folder=labeling_task.images,
        threshold=float("nan"),
        model=MISSING_MODEL,
    )
    # By hand: the app writes no NaN (its JSON writer refuses them), an editor may.
    (tmp_path / "s.fewshot.json").write_text(json.dumps(session.to_dict()))
    out = str(tmp_path / "labels.csv")
    err = refused(["label", "--session", str(tmp_path / "s.fewshot.json"), "--out", out], capsys)
    assert "session's threshold) must be auto, off or a finite number, not nan" in err


def test_a_manifest_name_without_a_known_format_is_refused(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = with_model(args, MISSING_MODEL)
    out = args.index("--out") + 1
    args[out] = str(tmp_path / "x.txt")
    assert "name the manifest with one of .csv, .json, .jsonl" in refused(args, capsys)
    args[out] = str(tmp_path / "missing" / "x.csv")
    assert "does not exist" in refused(args, capsys)


def hostile_copy(model: Path, target: Path, damage: str) -> Path:
    shutil.copytree(model, target)
    card = json.loads((target / CARD_FILE).read_text())
    if damage == "huge neck":
        card["model"]["neck"] = "linear:1000000000000"
    elif damage == "endless maml":
        card["model"].update(method="maml", test_inner_steps=10**30)
    elif damage == "deep card":
        depth = 100_000
        (target / CARD_FILE).write_text('{"a": ' + "[" * depth + "]" * depth + "}")
        return target
    elif damage == "nan weights":
        state = load_file(str(target / WEIGHTS_FILE))
        name = next(k for k, v in state.items() if v.is_floating_point())
        state[name] = state[name].clone().fill_(float("nan"))
        save_file(state, str(target / WEIGHTS_FILE))
    (target / CARD_FILE).write_text(json.dumps(card))
    return target


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("huge neck", "neck 'linear:1000000000000': each size must be a whole number"),
        ("endless maml", "test_inner_steps must be 0 to 1000"),
        ("deep card", "nested too deeply"),
        ("nan weights", "holds NaN or infinite weights"),
    ],
)
def test_a_hostile_model_is_one_line(
    args: list[str],
    glyph_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: str,
    words: str,
) -> None:
    model = hostile_copy(glyph_model, tmp_path / "hostile", damage)
    assert words in refused(with_model(args, model), capsys)
    assert not (tmp_path / "labels.csv").exists()


def test_models_lists_the_others_and_names_a_damaged_card(
    glyph_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    models = tmp_path / "fewshot-gui" / "models"
    models.mkdir(parents=True)
    shutil.copytree(glyph_model, models / "glyphs")
    hostile_copy(glyph_model, models / "deep", "deep card")
    odd = hostile_copy(glyph_model, models / "odd", "none")
    card = json.loads((odd / CARD_FILE).read_text())
    (odd / CARD_FILE).write_text(json.dumps({**card, "validation": {"best": [1]}}))
    assert main(["models"]) == 0
    listed = capsys.readouterr()
    assert "glyphs" in listed.out and "odd" in listed.out and "deep" not in listed.out
    assert "damaged model deep, not listed:" in listed.err
    assert "nested too deeply" in listed.err
    assert main(["models", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) >= {"glyphs", "odd"}


def test_a_fifo_in_place_of_the_weights_does_not_hang(
    labeling_task: LabelingTask, glyph_model: Path, tmp_path: Path
) -> None:
    model = shutil.copytree(glyph_model, tmp_path / "fifo")
    (model / WEIGHTS_FILE).unlink()
    os.mkfifo(model / WEIGHTS_FILE)
    command = [sys.executable, "-m", "fewshot_gui.cli"]
    command += label_args(labeling_task, model, tmp_path / "labels.csv")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("fewshot label blocked on a FIFO model.safetensors")
    assert done.returncode == 2
    assert done.stderr.strip() == f"fewshot: error: {model / WEIGHTS_FILE} is not a regular file"


def labels(manifest: Path) -> dict[str, tuple[str, str]]:
    with manifest.open(newline="") as handle:
        return {row["path"]: (row["label"], row["confidence"]) for row in csv.DictReader(handle)}


def notes(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("fewshot: note: ")]


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_damaged_caches_are_rebuilt_with_one_notice_and_the_same_labels(
    labeling_task: LabelingTask,
    glyph_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    engine: str,
) -> None:
    """torch: the embedding cache is overwritten; onnxruntime: so is the engine's export."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    assert main([*label_args(labeling_task, glyph_model, first), "--engine", engine]) == 0
    capsys.readouterr()
    gc.collect()  # closes the run's cache, folding its WAL into the file, as a process exit does
    damaged = sorted((tmp_path / "cache").rglob("*.sqlite"))
    if engine == "onnxruntime":
        damaged += sorted((tmp_path / "cache").rglob("*.onnx"))
    assert len(damaged) == (2 if engine == "onnxruntime" else 1)
    for path in damaged:
        path.write_bytes(b"\0garbage" * 4096)
    assert main([*label_args(labeling_task, glyph_model, second), "--engine", engine]) == 0
    found = notes(capsys.readouterr().err)
    assert len(found) == len(damaged), found
    assert all("was damaged" in note for note in found)
    assert labels(second) == labels(first)
    assert main([*label_args(labeling_task, glyph_model, second), "--engine", engine]) == 0
    assert notes(capsys.readouterr().err) == []  # repaired: the third run says nothing
