"""models/README.md must describe the files that are really there.

Checks the packaged and committed model files (not the built .tflite files, whose
bytes may legitimately change with the converter's CPU) against the table's size
and sha256 columns.
"""
import hashlib
import re

import pytest

from app.paths import MODELS_DIR, REPO_ROOT, package_dir

ROW = re.compile(r"^\| `(?P<file>[^`]+)` \|.*\| (?P<size>\d+)(?: \(all files\))? \| "
                 r"(?:`saved_model.pb` )?`(?P<sha>[0-9a-f]{64})` \| (?P<built>[^|]+) \|$")


def _rows():
    text = (MODELS_DIR / "README.md").read_text()
    return [m.groupdict() for m in map(ROW.match, text.splitlines()) if m]


def _resolve(name: str):
    if name.startswith("models/"):
        return REPO_ROOT / name
    package, rest = name.split("/", 1)
    return package_dir(package) / rest


def _checked_rows():
    return [r for r in _rows() if "python -m models build" not in r["built"]]


def test_table_lists_every_kind_of_model():
    files = [r["file"] for r in _rows()]
    assert len(files) >= 15, files
    for needle in ("graph_final.pb", "facenet/facenet_int8.tflite", "facenet_keras.h5",
                   "facenet_keras/frozen.pb", "facenet_keras/facenet_int8.tflite", "cnn68/frozen.pb",
                   "face_detection_full_range.tflite", "shape_predictor_68"):
        assert any(needle in f for f in files), needle


@pytest.mark.parametrize("row", _checked_rows(), ids=lambda r: r["file"])
def test_size_and_sha256_match(row):
    path = _resolve(row["file"])
    if path.is_dir():
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        path = path / "saved_model.pb"
    else:
        size = path.stat().st_size
    assert size == int(row["size"])
    assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha"]
