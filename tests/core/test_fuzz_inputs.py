"""Fuzzing what the tool reads from strangers: images and model cards. Whatever the bytes,
the image reader raises only ImageLoadError and the card parser only its own errors, fast.

Derandomized and without an example database, so that every run tries the same inputs."""

import contextlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fewshot_gui.core.checkpoint import CARD_FILE, CARD_FORMAT, load_model, read_card
from fewshot_gui.core.errors import CheckpointError, ConfigError, ImageLoadError
from fewshot_gui.core.images import load_image, load_rgb_array, thumbnail_array

FUZZ = settings(
    max_examples=300,  # each test takes about 1 to 4 s on one core
    deadline=2000,  # ms per example: a decode that runs long is a failure too
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FUZZ_CARDS = settings(FUZZ, max_examples=100)  # each example builds a model


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def seed_images() -> dict[str, bytes]:
    """Small valid files of each kind, the starting points of the mutations."""
    pixels = np.random.default_rng(0).integers(0, 256, (12, 16, 4), dtype=np.uint8)
    rgba = Image.fromarray(pixels, "RGBA")
    frames = [rgba.convert("P"), rgba.rotate(90).convert("P")]
    return {
        "png": encoded(rgba, "PNG"),
        "png16": encoded(Image.fromarray(pixels[..., 0].astype(np.uint16) * 257), "PNG"),
        "jpeg": encoded(rgba.convert("RGB"), "JPEG", quality=80),
        "jpeg-progressive": encoded(rgba.convert("L"), "JPEG", progressive=True),
        "gif": encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0),
    }


SEEDS = seed_images()


def size_fields(data: bytes) -> list[tuple[int, str]]:
    """(offset, struct format) of the width and height a header claims, by format."""
    if data.startswith(b"\x89PNG"):
        return [(16, ">I"), (20, ">I")]
    if data.startswith(b"GIF"):
        return [(6, "<H"), (8, "<H")]
    frame = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
    return [(frame + 5, ">H"), (frame + 7, ">H")]


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A seed file whose header claims another size, with a few bytes overwritten, runs cut
    out or inserted, or cut short."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    if draw(st.booleans()):
        for offset, layout in size_fields(data):
            most = 2 ** (8 * struct.calcsize(layout)) - 1
            claimed = st.sampled_from([0, 1, 4099, 30000, 65500, most]) | st.integers(0, most)
            struct.pack_into(layout, data, offset, draw(claimed))
        if data.startswith(b"\x89PNG"):  # the header chunk's CRC, or Pillow stops there
            struct.pack_into(">I", data, 29, zlib.crc32(data[12:29]))
    for _ in range(draw(st.integers(0, 3))):
        # Past the signature mostly: a wrong signature only tests the format check.
        at = draw(st.integers(min(8, len(data) - 1), len(data) - 1))
        edit = draw(st.sampled_from(["overwrite", "large", "cut", "insert", "truncate"]))
        if edit == "overwrite":
            data[at : at + 4] = draw(st.binary(min_size=1, max_size=4))
        elif edit == "large":  # sizes, lengths and counts are where parsers break
            data[at : at + 2] = draw(st.sampled_from([b"\xff\xff", b"\x00\x00", b"\x7f\xff"]))
        elif edit == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        else:
            del data[max(at, 8) :]
        if not data:
            data = bytearray(b"\x00")
    return bytes(data)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def read_every_way(path: Path) -> None:
    """Each entry point of the reader: an image, a model input, a thumbnail."""
    for read in (
        lambda: load_image(path, min_side=28),
        lambda: load_rgb_array(path, 28),
        lambda: thumbnail_array(path, 64),
    ):
        try:
            result = read()
        except ImageLoadError:
            continue
        if isinstance(result, np.ndarray):
            assert result.dtype == np.uint8 and result.ndim == 3 and result.shape[2] == 3
        else:
            assert result.mode == "RGB"


@FUZZ
@given(data=mutated_images())
def test_mutated_images_raise_only_image_load_error(scratch: Path, data: bytes) -> None:
    path = scratch / "mutated.png"
    path.write_bytes(data)
    read_every_way(path)


@FUZZ
@given(
    signature=st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b""]),
    rest=st.binary(max_size=600),
)
def test_random_bytes_raise_only_image_load_error(
    scratch: Path, signature: bytes, rest: bytes
) -> None:
    path = scratch / "random.jpg"
    path.write_bytes(signature + rest)
    read_every_way(path)


def padded_jpeg(path: Path, width: int, height: int) -> Path:
    """A whole small JPEG whose frame header is then patched to claim width x height."""
    pixels = np.random.default_rng(1).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    data = bytearray(encoded(Image.fromarray(pixels), "JPEG", quality=95))
    frame = data.index(b"\xff\xc0")  # SOF0: marker, length, precision, then height, width
    struct.pack_into(">HH", data, frame + 5, height, width)
    path.write_bytes(bytes(data))
    return path


def test_a_jpeg_claiming_far_more_pixels_than_its_bytes_hold_is_corrupt(tmp_path: Path) -> None:
    """An 18 KB file claiming 65500 x 65500 used to decode, in seconds and gigabytes, to a
    gray image that was then labeled with confidence."""
    path = padded_jpeg(tmp_path / "claims-65500.jpg", 65500, 65500)
    assert path.stat().st_size < 20_000
    started = time.perf_counter()
    for read in (lambda: load_rgb_array(path, 224), lambda: thumbnail_array(path, 128)):
        with pytest.raises(ImageLoadError, match="65500 x 65500 pixels, more than its"):
            read()
    assert time.perf_counter() - started < 0.5


def test_the_same_jpeg_with_its_own_size_still_loads(tmp_path: Path) -> None:
    path = padded_jpeg(tmp_path / "whole.jpg", 96, 96)
    assert load_rgb_array(path, 28).shape == (28, 28, 3)


def test_a_large_blank_jpeg_compressed_as_far_as_jpeg_goes_still_loads(tmp_path: Path) -> None:
    """A blank 4000 x 3000 gray image, Huffman-optimized at quality 1: 255 pixels per byte,
    the most a whole JPEG reaches (benchmarks/image_size_bound.py)."""
    path = tmp_path / "blank.jpg"
    Image.new("L", (4000, 3000), 255).save(path, "JPEG", quality=1, optimize=True)
    assert 4000 * 3000 / path.stat().st_size > 200
    assert load_rgb_array(path, 28).shape == (28, 28, 3)


def test_a_gif_whose_screen_its_frames_could_never_fill_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "claims-9000.gif"
    data = bytearray(SEEDS["gif"])
    struct.pack_into("<HH", data, 6, 9000, 9000)  # the logical screen: 81 MP of background
    path.write_bytes(bytes(data))
    with pytest.raises(ImageLoadError, match="9000 x 9000 pixels, more than its"):
        thumbnail_array(path, 128)


def test_a_large_blank_gif_still_loads(tmp_path: Path) -> None:
    """LZW's best: 1238 pixels per byte at 4000 x 3000, under the GIF bound."""
    path = tmp_path / "blank.gif"
    Image.new("P", (4000, 3000), 0).save(path, "GIF")
    assert thumbnail_array(path, 64).shape == (48, 64, 3)


def test_a_fifo_named_like_an_image_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    os.mkfifo(path)
    opened = "import sys; from pathlib import Path\n"
    opened += "from fewshot_gui.core.images import load_image\n"
    opened += "load_image(Path(sys.argv[1]))"
    try:  # in a child: a reader blocked on a FIFO cannot be timed out from a thread
        done = subprocess.run(
            [sys.executable, "-c", opened, str(path)], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("load_image blocked on a FIFO")
    assert f"ImageLoadError: not a regular file: {path}" in done.stderr


# --- model cards ---------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
# Fields of the right type with values near the real ones, so that most examples reach the
# bounds and choices of ModelConfig, not just the parser's first check.
MODEL_FIELDS = {
    "method": st.sampled_from(["protonet", "maml", "MAML", ""]),
    "backbone": st.sampled_from(["conv4", "conv4-rgb84", "nope", "../conv4"]),
    "neck": st.sampled_from(["", "affine", "linear:8", "linear:0", "mlp:4,4", "linear:1e9"])
    | st.text(max_size=16),
    "metric": st.sampled_from(["euclidean", "cosine", "manhattan"]),
    "inner_steps": st.integers(-5, 10**40),
    "inner_lr": st.floats(allow_nan=True, allow_infinity=True),
    "test_inner_steps": st.integers(-5, 10**40),
    "first_order": st.booleans(),
}
CARDS = st.fixed_dictionaries(
    {
        "format": st.just(CARD_FORMAT),
        "model": st.fixed_dictionaries({}, optional=MODEL_FIELDS)
        | st.dictionaries(st.text(max_size=10), JSON, max_size=3)
        | JSON,
    },
    optional={
        "name": st.text(max_size=20),
        "input": st.dictionaries(st.text(max_size=6), JSON, max_size=3),
        "notes": JSON,
    },
)


@pytest.fixture(scope="module")
def card_folder(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Conv-4 model folder whose card each example replaces."""
    return Path(shutil.copytree(tiny_model, tmp_path_factory.mktemp("cards") / "model"))


@FUZZ_CARDS
@given(card=CARDS)
def test_random_cards_raise_only_checkpoint_or_config_errors(
    card_folder: Path, card: dict[str, Any]
) -> None:
    (card_folder / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")
    try:
        loaded = load_model(card_folder)
    except (CheckpointError, ConfigError):
        return
    assert loaded.card["format"] == CARD_FORMAT


@FUZZ
@given(text=st.binary(max_size=300) | JSON.map(lambda doc: json.dumps(doc).encode()))
def test_random_card_files_raise_only_checkpoint_errors(card_folder: Path, text: bytes) -> None:
    (card_folder / CARD_FILE).write_bytes(text)
    with contextlib.suppress(CheckpointError):
        read_card(card_folder)
