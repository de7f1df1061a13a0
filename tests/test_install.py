"""The installed tool, as a user gets it: ``pip install`` of the wheel this checkout builds
into a fresh venv (no TensorFlow), run from a folder outside the checkout with a fresh
HOME: ``facelandmarks enroll`` then ``run`` name Lin-Manuel, ``import facelandmarks``
recognises him, ``models check`` catches a damaged file and a run names the fix."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, shared

pytestmark = pytest.mark.slow
LIN = "Lin-Manuel Miranda"


def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=600, **kwargs)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv with the wheel installed; its dependencies pinned by requirements.txt (as
    constraints: the versions `make setup` already put in pip's cache)."""
    root = tmp_path_factory.mktemp("install")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                  root / "wheel", REPO_ROOT])
    assert built.returncode == 0, built.stderr
    wheel = next((root / "wheel").glob("facelandmarks-*.whl"))
    venv = root / "venv"
    assert _run([sys.executable, "-m", "venv", venv]).returncode == 0
    pip = _run([venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check",
                wheel, "-c", REPO_ROOT / "requirements.txt"])
    assert pip.returncode == 0, pip.stderr
    return venv


@pytest.fixture
def outside(tmp_path) -> dict:
    """A working folder outside the checkout and a fresh HOME: nothing to lean on."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "XDG_"))}
    env["HOME"] = str(home)
    for name in ("lin-manuel-miranda.png", "short_hamilton_clip.mp4"):
        shutil.copy(shared("video", name), tmp_path / name)
    return {"cwd": tmp_path, "env": env}


def test_the_wheel_installs_no_tensorflow_and_no_top_level_app(installed):
    listed = _run([installed / "bin" / "pip", "list", "--format=json"])
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "facelandmarks" in names and "tensorflow" not in names
    site = next((installed / "lib").glob("python3*/site-packages"))
    assert not (site / "app").exists() and not (site / "models").exists()
    assert (site / "facelandmarks" / "data" / "manifest.json").is_file()


def test_enroll_then_run_outside_the_checkout_names_him(installed, outside):
    cli = installed / "bin" / "facelandmarks"
    enrolled = _run([cli, "enroll", "--gallery", "g.db", "--name", LIN,
                     "lin-manuel-miranda.png"], **outside)
    assert enrolled.returncode == 0, enrolled.stderr
    ran = _run([cli, "run", "--source", "short_hamilton_clip.mp4", "--headless",
                "--gallery", "g.db", "--events", "e.jsonl"], **outside)
    assert ran.returncode == 0, ran.stderr
    lines = (outside["cwd"] / "e.jsonl").read_text().splitlines()
    named = sum(any(f.get("name") == LIN for f in json.loads(line).get("faces", []))
                for line in lines)
    assert named >= 140

    script = ("import cv2, facelandmarks\n"
              "faces = facelandmarks.Recognizer(gallery='g.db').faces("
              "cv2.imread('lin-manuel-miranda.png'))\n"
              "print(len(faces), faces[0].name, faces[0].landmarks.shape, len(faces[0].box))")
    api = _run([installed / "bin" / "python", "-c", script], **outside)
    assert api.returncode == 0, api.stderr
    assert api.stdout.split("\n")[0] == f"1 {LIN} (68, 2) 4"


def test_a_damaged_model_file_is_found_and_its_fix_named(installed, outside, tmp_path):
    cli = installed / "bin" / "facelandmarks"
    assert _run([cli, "models", "check"], **outside).returncode == 0
    site = next((installed / "lib").glob("python3*/site-packages"))
    model = site / "facelandmarks/data/models/landmarks/cnn68/cnn68_fp32.tflite"
    saved = tmp_path / "saved.tflite"
    shutil.copy(model, saved)
    try:
        model.write_bytes(model.read_bytes()[:1000])
        check = _run([cli, "models", "check"], **outside)
        assert check.returncode == 1
        assert f"damaged  {model}" in check.stdout and "pip install --force-reinstall" in check.stdout
        ran = _run([cli, "run", "--source", "lin-manuel-miranda.png", "--headless"], **outside)
        assert ran.returncode != 0 and "models check" in ran.stderr
        assert "Traceback" not in ran.stderr
    finally:
        shutil.copy(saved, model)
