"""The `fewshot` command end to end on real folders: train, eval, models, label, undo."""

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fewshot_gui.cli import main
from tests.conftest import LabelingTask, make_labeling_task


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def label_args(task: LabelingTask, model: Path, out: Path) -> list[str]:
    """`fewshot label` with the task's classes and images, the model and the manifest."""
    return [
        "label",
        *support_args(task),
        "--images",
        str(task.images),
        "--model",
        str(model),
        "--out",
        str(out),
    ]


def support_args(task: LabelingTask) -> list[str]:
    return [
        arg
        for name, paths in task.support.items()
        for arg in ("--class", f"{name}={','.join(map(str, paths))}")
    ]


def test_train_validates_checkpoints_and_resumes(
    glyph_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "train",
        "--data",
        str(glyph_dataset),
        "--val-holdout",
        "1",
        "--way",
        "5",
        "--shot",
        "1",
        "--query",
        "3",
        "--val-query",
        "3",
        "--val-every",
        "2",
        "--val-episodes",
        "10",
        "--out",
        str(tmp_path / "run"),
    ]
    assert main([*args, "--episodes", "2"]) == 0
    assert main([*args, "--episodes", "4", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "resumed at episode 2" in err
    assert "validation at 4:" in err
    card = json.loads((tmp_path / "run" / "best" / "card.json").read_text())
    assert card["command"].startswith("fewshot train --data")
    state = json.loads((tmp_path / "run" / "last" / "training_state.json").read_text())
    assert state["run"]["episode"] == 4


def test_eval_prints_json_with_accuracy_and_interval(
    glyph_model: Path, glyph_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "eval",
            "--model",
            str(glyph_model),
            "--data",
            str(glyph_dataset),
            "--way",
            "5",
            "--shot",
            "1",
            "--query",
            "3",
            "--episodes",
            "30",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert 20 < result["accuracy"] <= 100 and 0 < result["ci95"] < 20
    assert result["episodes"] == 30 and result["way"] == 5


def test_eval_with_rotated_classes_records_them_on_the_card(
    glyph_model: Path, glyph_dataset: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(glyph_model, model)
    args = ["eval", "--model", str(model), "--data", str(glyph_dataset), "--query", "3"]
    assert main([*args, "--episodes", "30", "--rotations", "--record", str(model)]) == 0
    entry = json.loads((model / "card.json").read_text())["evaluation"][
        "5-way 1-shot rotated classes"
    ]
    assert entry["rotated_classes"] is True and entry["episodes"] == 30
    assert entry["command"].endswith(f"--rotations --record {model}")


def test_an_untrained_baseline_gives_the_same_figure_every_time(
    glyph_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", "--baseline", "conv4:euclidean", "--data", str(glyph_dataset)]
    figures = []
    for _ in range(2):
        assert main([*args, "--query", "3", "--episodes", "20", "--json"]) == 0
        figures.append(json.loads(capsys.readouterr().out)["accuracy"])
    assert figures[0] == figures[1]


def test_models_lists_installed_models(
    glyph_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    (tmp_path / "fewshot-gui" / "models").mkdir(parents=True)
    (tmp_path / "fewshot-gui" / "models" / "glyphs").symlink_to(glyph_model)
    assert main(["models", "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert cards["glyphs"]["model"]["method"] == "protonet"


def test_label_writes_the_manifest_contract(
    glyph_model: Path,
    labeling_task: LabelingTask,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (labeling_task.images / ".hidden.png").write_bytes(b"junk")
    (labeling_task.images / "notes.txt").write_text("not an image")
    (labeling_task.images / "broken.png").write_bytes(b"junk")
    out = tmp_path / "labels.csv"
    code = main(
        [
            *label_args(labeling_task, glyph_model, out),
            "--no-cache",
        ]
    )
    assert code == 0
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "path",
        "label",
        "confidence",
        "runner_up",
        "runner_up_confidence",
        "error",
    ]
    by_name = {Path(r["path"]).name: r for r in rows}
    assert ".hidden.png" not in by_name and "notes.txt" not in by_name
    assert by_name["broken.png"]["label"] == "" and by_name["broken.png"]["error"]
    good = [r for r in rows if not r["error"]]
    assert len(good) == len(labeling_task.truth)
    correct = sum(r["label"] == labeling_task.truth[Path(r["path"])] for r in good)
    assert correct >= 0.9 * len(good)
    unknown = sum(r["label"] == "unknown" for r in good)
    summary = f"{len(good) - unknown} labeled, {unknown} unknown, 1 unreadable"
    assert summary in capsys.readouterr().err  # the summary tells what the manifest holds


def test_label_then_export_move_and_undo_restores_every_byte(
    glyph_model: Path,
    labeling_task: LabelingTask,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = tree_digest(labeling_task.images)
    dest = tmp_path / "sorted"
    code = main(
        [
            *label_args(labeling_task, glyph_model, tmp_path / "l.json"),
            "--no-cache",
            "--export",
            "move",
            "--dest",
            str(dest),
            "--unknown",
            "off",
        ]
    )
    assert code == 0
    assert not list(labeling_task.images.iterdir())
    moved = sorted(p.parent.name for p in dest.rglob("*.png"))
    assert len(moved) == len(before) and set(moved) <= set(labeling_task.support)
    journal = next(dest.glob(".fewshot-export-*.journal.jsonl"))
    assert f"fewshot undo {journal}" in capsys.readouterr().err
    assert main(["undo", str(journal)]) == 0
    assert tree_digest(labeling_task.images) == before
    assert not list(dest.rglob("*.png"))


def test_dry_run_changes_nothing(
    glyph_model: Path,
    labeling_task: LabelingTask,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = tree_digest(labeling_task.images)
    code = main(
        [
            *label_args(labeling_task, glyph_model, tmp_path / "l.csv"),
            "--no-cache",
            "--export",
            "copy",
            "--dest",
            str(tmp_path / "d"),
            "--dry-run",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.count("copy ") == len(before)
    assert not (tmp_path / "d").exists() and tree_digest(labeling_task.images) == before


def test_ctrl_c_leaves_a_valid_manifest_and_a_rerun_continues(
    glyph_model: Path, tmp_path: Path
) -> None:
    task = make_labeling_task(tmp_path / "task", classes=3, queries=150)
    out = tmp_path / "labels.jsonl"
    command = [
        sys.executable,
        "-m",
        "fewshot_gui.cli",
        *label_args(task, glyph_model, out),
        "--batch-size",
        "1",
        "--no-cache",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env=env, cwd=Path(__file__).parents[2]
    )
    assert process.stderr is not None
    for line in process.stderr:  # wait until labeling is under way
        if line.startswith("label ["):
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "run the same command again to continue" in err
    first = [json.loads(line) for line in out.read_text().splitlines()]
    assert 0 < len(first) < len(task.truth)

    rerun = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, cwd=Path(__file__).parents[2]
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(first)} files already labeled" in rerun.stderr
    final = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["path"] for r in final) == sorted(map(str, task.truth))


def test_errors_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["label", "--support", str(tmp_path / "missing"), "--images", str(tmp_path)])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"fewshot: error: support folder {tmp_path / 'missing'} does not exist"
    )


def test_a_continued_run_ends_with_the_manifest_of_an_uninterrupted_one(
    glyph_model: Path, tmp_path: Path
) -> None:
    task = make_labeling_task(tmp_path / "task", classes=3, queries=40)
    whole, stopped = tmp_path / "whole.jsonl", tmp_path / "stopped.jsonl"
    assert main([*label_args(task, glyph_model, whole), "--no-cache"]) == 0
    # A run stopped part-way: its manifest holds the first files with the labels it gave.
    files = sorted(map(str, task.truth))
    (tmp_path / "partial").mkdir()
    for name in files[:30]:
        shutil.copy(name, tmp_path / "partial")
    partial = [*label_args(task, glyph_model, stopped), "--no-cache"]
    partial[partial.index("--images") + 1] = str(tmp_path / "partial")
    assert main(partial) == 0
    rows = [json.loads(line) for line in stopped.read_text().splitlines()]
    for row in rows:
        row["path"] = str(task.images / Path(row["path"]).name)
    stopped.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert stopped.read_text() != whole.read_text()[: len(stopped.read_text())]

    assert main([*label_args(task, glyph_model, stopped), "--no-cache"]) == 0
    assert stopped.read_text() == whole.read_text()


def labels_in_process(
    model: Path,
    images: Path,
    support: dict[str, list[Path]],
    corrections: dict[Path, str],
    out: Path,
) -> str:
    """The manifest the core gives for the same calls, as the app makes them."""
    from fewshot_gui.core.checkpoint import load_model
    from fewshot_gui.core.corrections import apply_corrections
    from fewshot_gui.core.images import iter_image_files
    from fewshot_gui.core.jobs import drive
    from fewshot_gui.core.labeling import Labeler, SupportSet
    from fewshot_gui.core.manifest import write_manifest

    labeler = Labeler(load_model(model), engine="torch")
    drive(labeler.set_support(apply_corrections(SupportSet.from_mapping(support), corrections)))
    labeler.set_corrections(corrections)
    drive(labeler.label(list(iter_image_files(images))))
    write_manifest((p.manifest_row() for p in labeler.relabel()), out)
    return out.read_text()


def test_session_and_corrections_label_as_the_core_does(
    glyph_model: Path, labeling_task: LabelingTask, tmp_path: Path
) -> None:
    from fewshot_gui.core.session import Session, save_session

    files = sorted(labeling_task.truth)
    names = sorted(labeling_task.support)
    corrections = {files[0]: names[-1], files[1]: "unknown", files[5]: names[0]}
    expected = labels_in_process(
        glyph_model, labeling_task.images, labeling_task.support, corrections, tmp_path / "c.jsonl"
    )
    session_file = tmp_path / "work.fewshot.json"
    save_session(
        session_file,
        Session(
            classes=[  # the app keeps a class correction among its class's examples
                (name, [*examples, *(p for p, c in corrections.items() if c == name)])
                for name, examples in labeling_task.support.items()
            ],
            folder=labeling_task.images,
            corrections=corrections,
            threshold="auto",
            model=str(glyph_model),
        ),
    )
    out = tmp_path / "session.jsonl"
    flags = ["--no-cache", "--engine", "torch"]
    assert main(["label", "--session", str(session_file), "--out", str(out), *flags]) == 0
    assert out.read_text() == expected

    table = tmp_path / "corrections.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows((str(p), c) for p, c in corrections.items())
    out = tmp_path / "flags.jsonl"
    args = label_args(labeling_task, glyph_model, out)
    assert main([*args, "--corrections", str(table), *flags]) == 0
    assert out.read_text() == expected
    by_path = {r["path"]: r for r in map(json.loads, expected.splitlines())}
    assert by_path[str(files[1])]["label"] == "unknown"
    assert by_path[str(files[1])]["confidence"] == 1.0
    assert by_path[str(files[0])]["label"] == names[-1]

    table.write_text("path,label\nx.png,no-such-class\n")
    assert main([*args, "--corrections", str(table), *flags]) == 2
