"""The labeling engine on real files: accuracy, unknown, bad input, caching and re-labeling."""

import dataclasses
import os
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fewshot_gui.core.checkpoint import load_model, save_model
from fewshot_gui.core.embedding_pipeline import Embedded
from fewshot_gui.core.errors import ConfigError
from fewshot_gui.core.images import iter_image_files
from fewshot_gui.core.jobs import CancelToken, drive
from fewshot_gui.core.labeling import UNKNOWN, Labeler, LabelProgress, SupportSet
from tests.conftest import LabelingTask


def labeled(labeler: Labeler, paths: list[Path]) -> dict[Path, str]:
    drive(labeler.label(paths))
    return {p.path: p.label for p in labeler.relabel()}


def test_labels_unseen_classes_from_three_examples(
    glyph_model: Path, labeling_task: LabelingTask, tmp_path: Path
) -> None:
    labeler = Labeler(load_model(glyph_model), cache_dir=tmp_path / "cache")
    report = drive(labeler.set_support(SupportSet.from_mapping(labeling_task.support)))
    assert [c.name for c in report.classes] == sorted(labeling_task.support)
    assert all(c.examples == 3 and c.loo_accuracy is not None for c in report.classes)
    labels = labeled(labeler, sorted(labeling_task.truth))
    correct = sum(labels[p] == truth for p, truth in labeling_task.truth.items())
    assert correct / len(labeling_task.truth) >= 0.9
    for prediction in labeler.relabel():
        assert 0.0 <= prediction.runner_up_confidence <= prediction.confidence <= 1.0
        assert prediction.runner_up not in ("", prediction.label)


def test_an_image_far_from_every_class_is_unknown(
    glyph_model: Path, labeling_task: LabelingTask, tmp_path: Path
) -> None:
    odd = tmp_path / "odd.png"
    rng = np.random.default_rng(0)
    Image.fromarray(np.where(rng.random((28, 28)) < 0.5, 0, 255).astype(np.uint8)).save(odd)
    labeler = Labeler(load_model(glyph_model))
    report = drive(labeler.set_support(SupportSet.from_mapping(labeling_task.support)))
    assert report.threshold is not None
    labels = labeled(labeler, [odd, *sorted(labeling_task.truth)])
    assert labels[odd] == UNKNOWN
    known = [labels[p] for p in labeling_task.truth]
    assert known.count(UNKNOWN) <= len(known) // 6
    labeler.set_unknown("off")
    assert {p.path: p.label for p in labeler.relabel()}[odd] != UNKNOWN
    labeler.set_unknown(0.0)
    assert {p.label for p in labeler.relabel()} == {UNKNOWN}
    for nonsense in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ConfigError, match="finite"):
            labeler.set_unknown(nonsense)


def test_a_support_change_relabels_without_embedding_again(
    glyph_model: Path, labeling_task: LabelingTask
) -> None:
    labeler = Labeler(load_model(glyph_model))
    labeler.set_unknown("off")
    names = sorted(labeling_task.support)
    drive(labeler.set_support(SupportSet.from_mapping(labeling_task.support)))
    paths = sorted(labeling_task.truth)
    before = labeled(labeler, paths)
    embedded = labeler.images_embedded
    assert embedded == len(paths) + sum(map(len, labeling_task.support.values()))

    # Merge the first two classes: their images must now carry the merged name.
    merged = {
        "merged": labeling_task.support[names[0]] + labeling_task.support[names[1]],
        **{n: labeling_task.support[n] for n in names[2:]},
    }
    drive(labeler.set_support(SupportSet.from_mapping(merged)))
    after = {p.path: p.label for p in labeler.relabel()}
    assert labeler.images_embedded == embedded
    for path in paths:
        if before[path] in names[:2]:
            assert after[path] == "merged"
        else:
            assert after[path] == before[path]

    # A labeled image accepted as a new example is not read again either.
    drive(labeler.set_support(SupportSet.from_mapping({**merged, "new": [paths[0]]})))
    assert labeler.images_embedded == embedded
    assert {p.path: p.label for p in labeler.relabel()}[paths[0]] == "new"


def test_the_disk_cache_serves_a_new_labeler_and_notices_changed_files(
    glyph_model: Path, labeling_task: LabelingTask, tmp_path: Path
) -> None:
    support = SupportSet.from_mapping(labeling_task.support)
    paths = sorted(labeling_task.truth)
    first = Labeler(load_model(glyph_model), cache_dir=tmp_path)
    drive(first.set_support(support))
    drive(first.label(paths))
    second = Labeler(load_model(glyph_model), cache_dir=tmp_path)
    drive(second.set_support(support))
    drive(second.label(paths))
    assert second.images_embedded == 0
    os.utime(paths[0], ns=(1, 1))
    third = Labeler(load_model(glyph_model), cache_dir=tmp_path)
    drive(third.set_support(support))
    drive(third.label(paths))
    assert third.images_embedded == 1


def bad_files(folder: Path, good: Path) -> dict[str, Path]:
    folder.mkdir()
    data = good.read_bytes()
    files = {
        "zero-byte": folder / "empty.png",
        "truncated": folder / "half.png",
        "not an image": folder / "text.png",
        "broken link": folder / "gone.png",
        "folder": folder / "dir.png",
    }
    files["zero-byte"].write_bytes(b"")
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["not an image"].write_text("hello")
    files["broken link"].symlink_to(folder / "missing.png")
    files["folder"].mkdir()
    return files


def test_bad_files_get_a_per_file_error_and_the_run_goes_on(
    glyph_model: Path, labeling_task: LabelingTask, tmp_path: Path
) -> None:
    good = sorted(labeling_task.truth)
    bad = bad_files(tmp_path / "bad", good[0])
    vanished = tmp_path / "vanished.png"
    vanished.write_bytes(good[1].read_bytes())
    paths = [*bad.values(), vanished, *good]
    vanished.unlink()  # listed, then gone before it is read
    labeler = Labeler(load_model(glyph_model))
    drive(labeler.set_support(SupportSet.from_mapping(labeling_task.support)))
    summary = drive(labeler.label(paths))
    assert summary.errors == len(bad) + 1 and summary.total == len(paths)
    results = {p.path: p for p in labeler.relabel()}
    for path in [*bad.values(), vanished]:
        assert results[path].label == "" and results[path].error
    assert "not found" in results[vanished].error
    assert all(results[p].label and not results[p].error for p in good)


def test_unreadable_examples_are_reported_and_their_class_left_out(
    glyph_model: Path, labeling_task: LabelingTask, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG nonsense")
    support = {**labeling_task.support, "ghost": [broken]}
    labeler = Labeler(load_model(glyph_model))
    report = drive(labeler.set_support(SupportSet.from_mapping(support)))
    assert report.errors[0][0] == broken
    assert "ghost" not in labeler.class_names
    assert (
        "no readable examples" in next(c for c in report.classes if c.name == "ghost").warnings[0]
    )


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])  # in the caller; on 2 streams
def test_cancel_stops_between_batches(
    glyph_model: Path, labeling_task: LabelingTask, engine: str
) -> None:
    labeler = Labeler(load_model(glyph_model), batch_size=4, engine=engine)
    drive(labeler.set_support(SupportSet.from_mapping(labeling_task.support)))
    submitted: list[int] = []
    submit = labeler.engine.submit

    def counted(pixels: np.ndarray) -> Future[np.ndarray]:
        submitted.append(len(pixels))
        return submit(pixels)

    labeler.engine.submit = counted  # type: ignore[method-assign]
    examples = labeler.images_embedded
    token = CancelToken()
    seen: list[int] = []

    def stop_after_first(event: LabelProgress) -> None:
        seen.append(event.done)
        token.cancel()

    paths = sorted(labeling_task.truth)
    assert len(paths) >= 6 * 4  # more batches than the engine can have in flight
    summary = drive(labeler.label(paths, token), stop_after_first)
    assert summary.cancelled and seen == [4] and len(labeler.relabel()) == 4
    # Nothing is submitted after the cancel: at most the batches already in flight.
    assert labeler.images_embedded == examples + 4
    assert len(submitted) <= labeler.engine.streams + 1
    submitted.clear()
    summary = drive(labeler.label(paths, token))  # cancelled before it starts
    assert summary.cancelled and submitted == [] and labeler.images_embedded == examples + 4


def test_labeling_needs_a_support_set_and_support_sets_check_names(glyph_model: Path) -> None:
    with pytest.raises(ConfigError, match="support set"):
        drive(Labeler(load_model(glyph_model)).label([]))
    with pytest.raises(ConfigError, match="reserved"):
        SupportSet.from_mapping({UNKNOWN: [Path("a.png")]})


def test_support_from_folder_takes_one_class_per_subfolder(labeling_task: LabelingTask) -> None:
    root = next(iter(labeling_task.support.values()))[0].parent.parent
    support = SupportSet.from_folder(root)
    assert support.names == tuple(sorted(labeling_task.support))
    assert list(support.classes[0].examples) == list(iter_image_files(root / support.names[0]))


def cosine_copy(model_dir: Path, out: Path) -> Path:
    """The same trained Conv-4, scoring by cosine to its prototypes."""
    loaded = load_model(model_dir)
    loaded.model.metric = "cosine"
    config = dataclasses.replace(loaded.config, metric="cosine")
    return save_model(out, loaded.model, config, {"name": "glyph-cosine"})


def test_relabeling_through_half_copies_gives_the_float32_labels(
    glyph_model: Path, labeling_task: LabelingTask, tmp_path: Path
) -> None:
    model = cosine_copy(glyph_model, tmp_path / "cosine")
    support = SupportSet.from_mapping(labeling_task.support)
    paths = sorted(labeling_task.truth)
    fast, plain = (Labeler(load_model(model), half=flag) for flag in (True, False))
    for labeler in (fast, plain):
        drive(labeler.set_support(support))
        drive(labeler.label(paths))
    # Enough rows for two half-precision blocks and a tail, many near ties: halfway between
    # two classes.
    prototypes = fast.model.prototypes
    assert prototypes is not None
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, len(prototypes), (20_000, 2))
    halfway = prototypes[pairs[:, 0]] + prototypes[pairs[:, 1]]
    rows = (halfway + 1e-2 * torch.randn_like(halfway)).clamp_min(0).numpy()
    fake = [tmp_path / f"row{i}.png" for i in range(len(rows))]
    for labeler in (fast, plain):
        labeler._store(Embedded(fake, list(rows), [""] * len(fake)))

    for transductive in (True, False):
        fast.transductive = plain.transductive = transductive
        first, second = fast.relabel(), plain.relabel()
        # float16 points (11 significant bits) move a product by at most ~2^-11: only rows
        # whose top classes' products are that close may swap them.
        with torch.no_grad():
            scores, _ = plain.model.score_features(torch.from_numpy(rows))
        top3 = scores.topk(3, dim=1).values
        slack = 2 * float(plain.model.log_scale.detach().exp()) * 2**-11
        tie = np.concatenate(
            [np.zeros(len(paths), bool), (top3[:, 0] - top3[:, 1] < slack).numpy()]
        )
        second_tie = tie | np.concatenate(  # a swap of the top two changes the runner-up too
            [np.ones(len(paths), bool), (top3[:, 1] - top3[:, 2] < slack).numpy()]
        )
        assert np.array_equal(first.label[~tie], second.label[~tie])
        assert np.array_equal(first.runner_up[~second_tie], second.runner_up[~second_tie])
        assert tie.mean() < 0.6 and second_tie.mean() < 0.6  # the other rows are compared
        np.testing.assert_allclose(first.confidence, second.confidence, atol=slack)
        np.testing.assert_allclose(first.novelty, second.novelty, atol=2**-11)
        assert not np.array_equal(first.novelty, second.novelty)  # the half copies ran
    # A changed row re-packs its block: the new answer, not the old copy.
    fast._store(Embedded(fake[:1], [rows[1]], [""]))
    plain._store(Embedded(fake[:1], [rows[1]], [""]))
    assert fast.relabel()[len(paths)].nearest == plain.relabel()[len(paths)].nearest
    assert fast.relabel()[len(paths)].nearest == plain.relabel()[len(paths) + 1].nearest


def final_labels(labeler: Labeler, batches: list[list[Path]]) -> tuple[list, np.ndarray]:
    """Label `batches` one after the other (as a stopped and continued run does), then
    re-label twice; the (path, label) pairs by path, and the confidences in that order."""
    for batch in batches:
        drive(labeler.label(batch))
    labeler.relabel()
    labels = labeler.relabel()
    order = sorted(range(len(labels)), key=lambda i: str(labels.paths[i]))
    return (
        [(labels.paths[i], labels[i].label) for i in order],
        labels.confidence[order],
    )


def test_final_labels_depend_on_the_folder_not_on_the_labeling_order(
    glyph_model: Path, labeling_task: LabelingTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fewshot_gui.core.labeling as labeling

    monkeypatch.setattr(labeling, "REFINE_SAMPLE", 9)  # the refinement takes a sample
    support = SupportSet.from_mapping(labeling_task.support)
    paths = sorted(labeling_task.truth)
    runs = []
    for batches in (
        [paths],
        [paths[::-1]],
        [paths[:7], paths],  # stopped after 7 files, then the whole folder
        [paths[10:], paths[:10]],
    ):
        labeler = Labeler(load_model(glyph_model))
        drive(labeler.set_support(support))
        runs.append(final_labels(labeler, batches))
    for labels, confidence in runs[1:]:
        assert labels == runs[0][0]
        np.testing.assert_allclose(confidence, runs[0][1], rtol=1e-5)


def test_corrections_pin_labels_and_unknown_is_a_correction(
    glyph_model: Path, labeling_task: LabelingTask
) -> None:
    from fewshot_gui.core.corrections import apply_corrections

    paths = sorted(labeling_task.truth)
    names = sorted(labeling_task.support)
    labeler = Labeler(load_model(glyph_model))
    drive(labeler.set_support(SupportSet.from_mapping(labeling_task.support)))
    before = labeled(labeler, paths)
    wrong = next(n for n in names if n != before[paths[0]])  # a label the model did not give
    corrections = {paths[0]: wrong, paths[1]: UNKNOWN}
    with pytest.raises(ConfigError, match="nothing-like-it"):
        labeler.set_corrections({paths[2]: "nothing-like-it"})

    results = []
    for support in (  # as the app sends it (a class correction is an example), or not
        apply_corrections(SupportSet.from_mapping(labeling_task.support), corrections),
        SupportSet.from_mapping(labeling_task.support),
    ):
        drive(labeler.set_support(support))
        labeler.set_corrections(corrections)
        results.append(labeler.relabel())
    first, second = results
    assert [p.label for p in first] == [p.label for p in second]
    by_path = {p.path: p for p in first}
    assert by_path[paths[0]].label == wrong and by_path[paths[1]].label == UNKNOWN
    for path in paths[:2]:
        assert by_path[path].pinned and by_path[path].confidence == 1.0
    assert not any(by_path[p].pinned for p in paths[2:])
    assert first.pinned is not None and int(first.pinned.sum()) == 2

    labeler.set_corrections({})  # undone: the model's own labels again
    assert {p.path: p.label for p in labeler.relabel()} == before


def test_adapting_and_relabeling_run_torch_on_one_thread(
    glyph_model: Path, labeling_task: LabelingTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A correction's small steps on torch's pool of threads waited seconds for each other's
    cores on a busy machine; the caller's own setting comes back afterwards."""
    labeler = Labeler(load_model(glyph_model))
    drive(labeler.set_support(SupportSet.from_mapping(labeling_task.support)))
    paths = sorted(labeling_task.truth)
    labeled(labeler, paths)
    seen: list[int] = []
    scoring = labeler.model.score_points

    def score_points(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(torch.get_num_threads())
        return scoring(points)

    monkeypatch.setattr(labeler.model, "score_points", score_points)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        labeler.set_corrections({paths[0]: sorted(labeling_task.support)[0]})
        labeler.relabel()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}
