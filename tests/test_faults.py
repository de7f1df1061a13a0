"""Faults a user can cause, run as the user would (issue 12): a subprocess of
``python -m app`` / ``run_video.py`` on real files under tmp_path, checking the message,
the exit code, and that nothing was lost or overwritten (file digests before and after).

Full disk: a 200 kB tmpfs (root only) and ``/dev/full``; read-only folder: a read-only
bind mount (root only). Those tests skip with the reason where they cannot run.
``FAULT_KILL_TRIES=20`` runs the kill -9 test 20 times (the closing-note measurement).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import REPO_ROOT, shared

LIN = "Lin-Manuel Miranda"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def app(*args, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *map(str, args)], cwd=REPO_ROOT,
                          env=ENV, capture_output=True, text=True, timeout=timeout)


def run_video(*args, timeout: float = 180) -> subprocess.CompletedProcess:
    return app("run", "--headless", "--no-progress", *args, timeout=timeout)


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def frames_in(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    return count


def clip() -> Path:
    return shared("video", "short_hamilton_clip.mp4")


def lin_photo() -> Path:
    return shared("video", "lin-manuel-miranda.png")


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory) -> Path:
    """A gallery with Lin-Manuel Miranda, enrolled through the CLI (copy it to modify it)."""
    path = tmp_path_factory.mktemp("gallery") / "new" / "people.sqlite3"
    done = app("enroll", "--gallery", path, "--name", LIN, lin_photo())
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture
def gallery_copy(enrolled, tmp_path) -> Path:
    path = tmp_path / "copy.sqlite3"
    shutil.copy(enrolled, path)
    return path


@contextlib.contextmanager
def mounted(target: Path, *options: str, source: str = "tmpfs"):
    """``mount`` (root only) for the duration; skips the test where it is not allowed."""
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8) to make a small or read-only file system")
    for command in options:
        done = subprocess.run(["mount", *command.split()], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount here: {done.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


# -- 1, 2: outputs that would clobber inputs -------------------------------------------------
def test_events_naming_the_gallery_is_refused_and_the_gallery_kept(gallery_copy, tmp_path):
    before = digest(gallery_copy)
    done = run_video("--source", clip(), "--gallery", gallery_copy, "--events", gallery_copy,
                     "--max-frames", 2)
    assert done.returncode == 2
    assert "same file as --gallery" in done.stderr and "Nothing was written" in done.stderr
    assert digest(gallery_copy) == before
    assert not list(tmp_path.glob("*partial*"))


def test_output_naming_the_source_or_a_link_to_it_is_refused(tmp_path, enrolled):
    source = tmp_path / "s.mp4"
    shutil.copy(clip(), source)
    link = tmp_path / "link.mp4"
    link.symlink_to(source)
    hard = tmp_path / "hard.mp4"
    os.link(source, hard)
    before = digest(source)
    for output in (source, link, hard):
        done = run_video("--source", source, "--gallery", enrolled, "--output", output)
        assert done.returncode == 2, done.stderr
        assert "same file as --source" in done.stderr
    same = run_video("--source", source, "--gallery", enrolled, "--output", tmp_path / "o.mp4",
                     "--events", tmp_path / "o.mp4")
    assert same.returncode == 2 and "both name" in same.stderr
    assert digest(source) == before and frames_in(source) == 275
    assert not (tmp_path / "o.mp4").exists()


# -- 3, 5: write errors ------------------------------------------------------------------------
def test_full_disk_while_writing_video_fails_clearly_and_keeps_the_old_file(tmp_path, enrolled):
    small = tmp_path / "small"
    with mounted(small, f"-t tmpfs -o size=200k tmpfs {small}"):
        old = small / "out.mp4"
        old.write_bytes(b"previous video")
        events = tmp_path / "events.jsonl"
        events.write_text("previous events\n")
        done = run_video("--source", clip(), "--gallery", enrolled, "--output", old,
                         "--events", events)
        assert done.returncode == 1, done.stderr
        assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
        assert "annotated video:" not in done.stdout and "frames:" in done.stdout
        assert old.read_bytes() == b"previous video"
        assert events.read_text() == "previous events\n"
        partial = next(tmp_path.glob("events.partial-*.jsonl"))
        lines = [json.loads(line) for line in partial.read_text().splitlines()]  # whole lines
        assert "No space left on device" in lines[-1]["summary"]["stopped"]
        # the partial video plays up to where the disk filled
        video = next(small.glob("out.partial-*.mp4"))
        assert frames_in(video) > 0


def test_events_to_dev_full_fails_with_a_message_not_a_traceback(enrolled):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    done = run_video("--source", clip(), "--gallery", enrolled, "--events", "/dev/full",
                     "--max-frames", 3)
    assert done.returncode == 1
    assert "cannot write --events /dev/full: No space left on device" in done.stderr
    assert "Traceback" not in done.stderr and "frames:" in done.stdout


# -- 6: a private gallery ----------------------------------------------------------------------
def test_new_gallery_is_private_and_an_exposed_one_is_warned_about(enrolled, gallery_copy):
    assert stat.S_IMODE(enrolled.stat().st_mode) == 0o600
    assert stat.S_IMODE(enrolled.parent.stat().st_mode) == 0o700
    gallery_copy.chmod(0o644)
    done = app("people", "list", "--gallery", gallery_copy)
    assert done.returncode == 0 and LIN in done.stdout
    assert "can be read by other users" in done.stderr and "chmod 600" in done.stderr


# -- 7, 8: photos that are truncated or huge ---------------------------------------------------
def test_truncated_and_huge_photos_are_refused_before_anything_is_stored(tmp_path,
                                                                       gallery_copy):
    ok, jpeg = cv2.imencode(".jpg", cv2.imread(str(lin_photo())))
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(jpeg.tobytes()[: len(jpeg) * 2 // 3])
    huge = tmp_path / "huge.png"
    from PIL import Image
    Image.new("L", (30000, 30000)).save(huge)          # 0.9 GP in under 1 MB
    before = digest(gallery_copy)
    cut = app("enroll", "--gallery", gallery_copy, "--name", "Someone", truncated)
    assert cut.returncode == 2 and "truncated" in cut.stderr
    big = app("enroll", "--gallery", gallery_copy, "--name", "Someone", huge)
    assert big.returncode == 2 and "over the limit of 50 megapixels" in big.stderr
    run = run_video("--source", huge, "--gallery", gallery_copy)
    assert run.returncode == 2 and "over the limit of 50 megapixels" in run.stderr
    assert digest(gallery_copy) == before


# -- 9: a damaged gallery ----------------------------------------------------------------------
def test_enrol_refuses_a_gallery_that_fails_the_integrity_check(gallery_copy):
    with open(gallery_copy, "r+b") as f:   # page 5 (samples table root): invalid page type
        f.seek(4 * 4096)
        f.write(b"\xff")
    before = digest(gallery_copy)
    done = app("enroll", "--gallery", gallery_copy, "--name", "Alex Lacamoire",
               shared("video", "alex-lacamoire.png"))
    assert done.returncode == 2
    assert "is damaged" in done.stderr and ".recover" in done.stderr
    assert digest(gallery_copy) == before


# -- 10: read-only folders, and reading never creates --------------------------------------------
def test_reading_commands_work_from_a_read_only_folder(tmp_path, enrolled):
    folder, view = tmp_path / "folder", tmp_path / "readonly"
    folder.mkdir()
    shutil.copy(enrolled, folder / "people.sqlite3")
    with mounted(view, f"--bind {folder} {view}", f"-o remount,bind,ro {view}"):
        gallery = view / "people.sqlite3"
        listed = app("people", "list", "--gallery", gallery)
        assert listed.returncode == 0, listed.stderr
        assert LIN in listed.stdout
        done = run_video("--source", lin_photo(), "--gallery", gallery, "--events",
                         tmp_path / "ev.jsonl")
        assert done.returncode == 0, done.stderr
        names = json.loads((tmp_path / "ev.jsonl").read_text().splitlines()[0])["faces"]
        assert [f["name"] for f in names] == [LIN]


def test_a_gallery_of_another_embedder_in_a_read_only_folder_is_re_embedded_in_memory(
        tmp_path):
    folder, view = tmp_path / "folder", tmp_path / "readonly"
    folder.mkdir()
    made = app("enroll", "--gallery", folder / "people.sqlite3", "--embedder", "casia-int8",
               "--name", LIN, lin_photo())
    assert made.returncode == 0, made.stderr
    before = digest(folder / "people.sqlite3")
    with mounted(view, f"--bind {folder} {view}", f"-o remount,bind,ro {view}"):
        done = run_video("--source", lin_photo(), "--gallery", view / "people.sqlite3",
                         "--events", tmp_path / "ev.jsonl")   # Keras, the default
        assert done.returncode == 0, done.stderr
        assert "read-only here" in done.stderr and "for this run only" in done.stderr
        names = json.loads((tmp_path / "ev.jsonl").read_text().splitlines()[0])["faces"]
        assert [f["name"] for f in names] == [LIN]
    assert digest(folder / "people.sqlite3") == before


def test_reading_commands_never_create_a_gallery(tmp_path):
    typo = tmp_path / "typo" / "x.db"
    listed = app("people", "list", "--gallery", typo)
    assert listed.returncode == 0 and "nobody enrolled" in listed.stdout
    removed = app("people", "remove", "Anyone", "--gallery", typo)
    assert removed.returncode == 2 and "no gallery at" in removed.stderr
    assert not (tmp_path / "typo").exists()


# -- 11: look-alike names and one face under two names -------------------------------------------
def test_invisible_characters_in_names_are_refused(gallery_copy):
    for name in ("Alex Lacamoire\u200b", "\u202eeriomacaL xelA"):
        done = app("enroll", "--gallery", gallery_copy, "--name", name,
                   shared("video", "alex-lacamoire.png"))
        assert done.returncode == 2 and "invisible or control character" in done.stderr


def test_the_same_face_is_found_among_people_enrolled_with_another_embedder(tmp_path):
    gallery = tmp_path / "g.sqlite3"
    made = app("enroll", "--gallery", gallery, "--embedder", "casia-int8", "--name", LIN,
               lin_photo())
    assert made.returncode == 0, made.stderr
    again = app("enroll", "--gallery", gallery, "--name", "Someone Else", lin_photo())
    assert again.returncode == 2 and f"already matches {LIN!r}" in again.stderr


def test_the_same_face_under_another_name_needs_force(gallery_copy):
    before = digest(gallery_copy)
    done = app("enroll", "--gallery", gallery_copy, "--name", "Someone Else", lin_photo())
    assert done.returncode == 2
    assert f"already matches {LIN!r}" in done.stderr and "--force" in done.stderr
    assert digest(gallery_copy) == before
    forced = app("enroll", "--gallery", gallery_copy, "--name", "Someone Else", "--force",
                 lin_photo())
    assert forced.returncode == 0 and "enrolled anyway" in forced.stderr


# -- 12: messages naming the real remedy ------------------------------------------------------
def test_model_file_messages_name_the_real_remedy(tmp_path):
    from app.paths import CNN68_DIR
    from app.stages.embed import TfliteEmbedder
    from app.stages.landmarks.cnn import CnnLandmarks

    copy = tmp_path / "cnn68"
    shutil.copytree(CNN68_DIR, copy)
    (copy / "frozen.pb").unlink()
    with pytest.raises(FileNotFoundError, match="git checkout -- models/landmarks/cnn68"):
        CnnLandmarks(copy, backend="pb")
    (copy / "cnn68_fp32.tflite").unlink()   # the default backend's file: committed, or built
    with pytest.raises(FileNotFoundError, match="git checkout -- models/landmarks/cnn68.*"
                                                "models build"):
        CnnLandmarks(copy)
    garbage = tmp_path / "facenet_int8.tflite"
    garbage.write_bytes(b"not a model" * 100)
    with pytest.raises(ValueError, match="models build --force"):
        TfliteEmbedder(garbage)


def test_source_folder_and_odd_sized_photo_to_mp4(tmp_path, enrolled):
    folder = tmp_path / "x.mp4"
    folder.mkdir()
    done = run_video("--source", folder, "--gallery", enrolled)
    assert done.returncode == 2 and "is a folder" in done.stderr
    odd = tmp_path / "odd.png"
    cv2.imwrite(str(odd), cv2.imread(str(lin_photo()))[:361, :641])
    out = tmp_path / "o.mp4"
    made = run_video("--source", odd, "--gallery", enrolled, "--output", out)
    assert made.returncode == 0, made.stderr
    assert frames_in(out) == 1


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_run_finalises_and_exits_like_a_shell(tmp_path, enrolled, signum, code):
    out, events = tmp_path / "o.mp4", tmp_path / "e.jsonl"
    with _running(enrolled, out, events) as proc:
        _wait_for_frames(proc, tmp_path, "e.partial-*.jsonl")
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == code
    last = json.loads(events.read_text().splitlines()[-1])
    assert last["summary"]["stopped"].startswith(("interrupted", "terminated"))
    assert frames_in(out) == last["summary"]["frames"] > 0


# -- 13: kill -9 leaves a playable, browser-friendly video ---------------------------------------
def test_kill_9_leaves_a_playable_h264_video(tmp_path, enrolled):
    import av
    tries = int(os.environ.get("FAULT_KILL_TRIES", "2"))
    rng = random.Random(12)
    played = []
    for i in range(tries):
        out = tmp_path / f"o{i}.mp4"
        with _running(enrolled, out, None) as proc:
            _wait_for_frames(proc, tmp_path, f"o{i}.partial-*.mp4")
            time.sleep(rng.uniform(0.0, 2.0))
            proc.kill()
            proc.wait(timeout=30)
        partial = next(tmp_path.glob(f"o{i}.partial-*.mp4"))
        with av.open(str(partial)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
        played.append(frames_in(partial))
    assert all(n > 0 for n in played), played
    print(f"kill -9: {sum(n > 0 for n in played)} of {tries} files play; frames {played}")


@contextlib.contextmanager
def _running(gallery: Path, out: Path, events: Path | None):
    """A run that goes on until it is stopped (--loop: at 180 FPS the clip alone can end
    before the signal arrives); killed on the way out, should a test fail first."""
    args = [sys.executable, "-m", "app", "run", "--headless", "--no-progress", "--loop",
            "--source", str(clip()), "--gallery", str(gallery), "--output", str(out)]
    if events is not None:
        args += ["--events", str(events)]
    # Ctrl-C as a terminal gives it: a shell's background job (CI started with `&`) has
    # SIGINT ignored, which the child would inherit, and the app rightly leaves it so.
    proc = subprocess.Popen(args, cwd=REPO_ROOT, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def _wait_for_frames(proc, folder: Path, pattern: str, min_bytes: int = 20_000) -> None:
    """Until the run's partial file holds some frames (models load first, seconds)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list(folder.glob(pattern))
        if found and found[0].stat().st_size >= min_bytes:
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before writing frames")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no frames written within 120 s")


# -- 4: re-embedding a big gallery streams, resumes, never duplicates ----------------------------
def test_embedder_switch_streams_in_batches_and_resumes(tmp_path):
    from app.factory import build_embedder
    from app.people.gallery import Gallery

    rng = np.random.default_rng(4)
    crops = rng.integers(0, 255, (3, 160, 160, 3), np.uint8)
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        embedder = build_embedder("keras-int8", threads=1)
        for i in range(150):   # thumbnails of the embedder's own crop rule: used as stored
            gallery.add_samples(f"person {i}", rng.normal(size=(1, 8)), "old-model",
                                [crops[i % 3]], crop=embedder.crop)
        pipe = _bare_pipeline(embedder, gallery)
        batches = []

        def stop_after_two(n):
            batches.append(n)
            if len(batches) == 2:
                raise KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):
            pipe.sync_gallery(batch_size=64, on_batch=stop_after_two)
        assert gallery.models()[embedder.model_id] == 128      # two whole batches kept
        assert pipe.sync_gallery(batch_size=64) == (22, 0)     # resumes with the rest
        assert gallery.models() == {"old-model": 150, embedder.model_id: 150}


def _bare_pipeline(embedder, gallery):
    """A Pipeline holding only what sync_gallery uses (no detector or landmark models)."""
    from app.pipeline import Pipeline
    pipe = Pipeline.__new__(Pipeline)
    pipe.embedder, pipe.gallery = embedder, gallery
    return pipe
