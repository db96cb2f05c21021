"""`fewshot label --cluster`: on a two-node Ray cluster made on this machine, the manifest and
the embedding cache equal a local run's, and a worker that dies mid-run costs only a retry."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fewshot_gui.cli import main
from fewshot_gui.core.images import image_identity, iter_image_files
from tests.cli.test_cli import label_args
from tests.conftest import make_labeling_task

ray = pytest.importorskip("ray", reason="the cluster extra: pip install 'fewshot-gui[cluster]'")
from ray.cluster_utils import Cluster  # noqa: E402

from fewshot_gui.core.cluster import EmbedActor, ray_session  # noqa: E402

OPTIONS = ["--engine", "torch", "--device", "cpu", "--batch-size", "4"]
NODE = {"num_cpus": 1, "object_store_memory": 100 * 2**20}


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[Cluster]:
    """A head and one worker node, one CPU and 100 MB of object store each."""
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def cache_vectors(cache_home: Path, files: list[Path]) -> dict[str, np.ndarray]:
    from fewshot_gui.core.embedding_cache import EmbeddingCache

    [database] = (cache_home / "fewshot-gui" / "embeddings").glob("*.sqlite")
    found = EmbeddingCache(database).get_many([image_identity(p) for p in files])
    return {key[0]: vector for key, vector in found.items()}


def test_cluster_run_writes_the_local_manifest_and_fills_the_cache(
    two_nodes: Cluster,
    glyph_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    task = make_labeling_task(tmp_path / "task", classes=3, queries=6)
    (task.images / "broken.png").write_bytes(b"not a png")  # unreadable on the workers too
    files = [*iter_image_files(task.images)]
    monkeypatch.chdir(tmp_path)  # --images relative: workers get absolute paths, errors not

    def args(out: Path) -> list[str]:
        given = label_args(task, glyph_model, out)
        given[given.index("--images") + 1] = "task/images"
        return [*given, *OPTIONS]

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "local-cache"))
    local = tmp_path / "local.csv"
    assert main(args(local)) == 0

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cluster-cache"))
    remote = tmp_path / "cluster.csv"
    address = f"ray={two_nodes.address}"
    assert main([*args(remote), "--cluster", address]) == 0
    assert not ray.is_initialized()  # joined for the run, left after it

    assert "task/images/broken.png" in local.read_text()  # relative, with its error
    assert remote.read_text() == local.read_text()
    err = capsys.readouterr().err
    assert "ray cluster" in err and "2 nodes" in err
    assert "embedded" in err and "1 unreadable" in err  # the per-node lines
    readable = [p for p in files if p.name != "broken.png"]
    local_vectors = cache_vectors(tmp_path / "local-cache", readable)
    cluster_vectors = cache_vectors(tmp_path / "cluster-cache", readable)
    assert len(cluster_vectors) == len(readable)
    for path, vector in local_vectors.items():
        np.testing.assert_array_equal(cluster_vectors[path], vector)

    # Run again, continuing the manifest: every vector comes from the driver's cache, so only
    # the unreadable file goes to a worker again (as a local run reads it again).
    assert main([*args(remote), "--cluster", address]) == 0
    err = capsys.readouterr().err
    assert "continuing" in err
    assert [line.split(": ", 1)[1] for line in err.splitlines() if "embedded" in line] == [
        "0 embedded, 1 unreadable"
    ]
    assert remote.read_text() == local.read_text()


class DiesOnce(EmbedActor):
    """A worker whose process exits at its first batch while the marker file exists."""

    marker = ""

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if os.path.exists(self.marker):
            os.unlink(self.marker)
            os._exit(1)
        return super().__call__(rows)


def test_a_worker_that_dies_costs_only_a_retry(
    two_nodes: Cluster, glyph_model: Path, tmp_path: Path
) -> None:
    from fewshot_gui.core.checkpoint import load_model
    from fewshot_gui.core.jobs import drive
    from fewshot_gui.core.labeling import Labeler
    from fewshot_gui.core.support import SupportSet

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    task = make_labeling_task(tmp_path / "task", classes=2, queries=8)
    files = [*iter_image_files(task.images)]
    marker = tmp_path / "die-once"
    marker.touch()
    DiesOnce.marker = str(marker)
    loaded = load_model(glyph_model)

    def labels(cluster: object | None) -> tuple[list[str], Labeler]:
        labeler = Labeler(loaded, device="cpu", engine="torch", batch_size=4)
        drive(labeler.set_support(SupportSet.from_mapping(task.support)))
        if cluster is not None:
            engine = labeler.engine
            labeler.embed_through(
                lambda base: cluster.pipeline(base, loaded, engine, "torch", actor=DiesOnce)
            )
        drive(labeler.label(files))
        final = labeler.relabel()
        return [str(row) for row in map(lambda p: p.manifest_row(), final)], labeler

    expected, _ = labels(None)
    with ray_session(two_nodes.address, lambda line: None) as cluster:
        got, labeler = labels(cluster)
    assert not marker.exists()  # a worker did die
    assert got == expected
    assert labeler.images_embedded == len(files) + sum(map(len, task.support.values()))


def test_cluster_without_ray_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    task = make_labeling_task(tmp_path / "task", classes=2, queries=1)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as when not installed
    args = [*label_args(task, Path("unused"), tmp_path / "out.csv"), "--cluster", "ray"]
    assert main(args) == 2
    assert capsys.readouterr().err.splitlines() == [
        "fewshot: error: --cluster needs Ray: pip install 'fewshot-gui[cluster]'"
    ]
