"""``index`` / ``who`` / ``relabel`` (issue 22) on real photos and the real Hamilton clip.

One index of a folder (a clip built from the 5-celebrity val photos on a known schedule,
a damaged ``.mp4``) plus the Hamilton clip, made once per module on the local pool of two
spawned workers, is checked against the schedule and the clip's labels, then made again
on Ray (started here with two CPUs and a small object store) and compared row for row.
Also: SIGTERM mid-run then ``--resume`` (no duplicates, done files not redone), a worker
killed mid-file (its file retried), ``relabel`` with video decoding made to fail, and a
variable-frame-rate clip timed by its PTS.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT, built_pipeline, cut_short_clip, shared

pytest.importorskip("pyarrow")

FPS = 15
SIZE = (640, 360)
# (person folders side by side, seconds): the made-up schedule of known faces
SCHEDULE = [(("ben_afflek",), 2.0), ((), 1.0), (("madonna",), 2.0), ((), 1.0),
            (("jerry_seinfeld",), 2.0), (("elton_john", "mindy_kaling"), 2.0), ((), 1.0),
            (("ben_afflek",), 1.0)]
TOLERANCE_S = 0.5


def person(folder: str) -> str:
    from app.lab.demo import person_name
    return person_name(folder)


def expected_segments() -> list[tuple[str, float, float]]:
    segments, start = [], 0.0
    for folders, seconds in SCHEDULE:
        segments += [(person(folder), start, start + seconds) for folder in folders]
        start += seconds
    return segments


def write_schedule_clip(path: Path) -> Path:
    from app.lab.demo import ken_burns

    val = shared("identities", "5-celebrity", "val")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    for folders, seconds in SCHEDULE:
        count = round(seconds * FPS)
        photos = [cv2.imread(str(sorted((val / f).glob("*.jpg"))[0])) for f in folders]
        width = SIZE[0] // max(len(photos), 1)
        for i in range(count):
            frame = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
            for k, photo in enumerate(photos):   # each in its own part of the frame
                frame[:, k * width:(k + 1) * width] = ken_burns(
                    photo, i / max(count - 1, 1), (width, SIZE[1]))
            writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> Path:
    """The five celebrities (3 train photos each), Lin-Manuel and Alex (their photos)."""
    from app.lab.demo import enrol_people
    from app.people.enroll import enroll_photos

    path = tmp_path_factory.mktemp("gallery") / "people.sqlite3"
    enrol_people(shared("identities", "5-celebrity", "train"), path, per_person=3)
    video = shared("video")
    with built_pipeline(path) as pipeline:
        enroll_photos(pipeline, "Lin-Manuel Miranda", [video / "lin-manuel-miranda.png"])
        enroll_photos(pipeline, "Alex Lacamoire", [video / "alex-lacamoire.png"])
    return path


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("archive")
    (folder / "sub").mkdir()
    write_schedule_clip(folder / "sub" / "schedule.mp4")
    (folder / "notes.mp4").write_text("a text file, not a video\n")
    cut_short_clip(shared("video", "short_hamilton_clip.mp4"), folder / "cut.mp4")
    return folder


def index_options(archive: Path, gallery: Path, out: Path, **more):
    from app.index.run import IndexOptions
    return IndexOptions(paths=(str(archive), str(shared("video", "short_hamilton_clip.mp4"))),
                        out=out, gallery=gallery, **{"workers": 2, "progress": False, **more})


def read_rows(out: Path) -> list[dict]:
    import pyarrow.parquet as pq
    rows = pq.read_table(out / "appearances.parquet").to_pylist()
    for row in rows:
        row.pop("thumbnail")
    return rows


@pytest.fixture(scope="module")
def local_index(archive, gallery, tmp_path_factory) -> tuple[Path, int]:
    from app.index.run import run_index
    out = tmp_path_factory.mktemp("index") / "I1"
    return out, run_index(index_options(archive, gallery, out))


def who(out: Path, name: str, capsys) -> list[dict]:
    from app.cli import main
    capsys.readouterr()
    assert main(["who", name, "--index", str(out), "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


# -- the local pool ------------------------------------------------------------------------
def test_the_damaged_file_fails_and_the_others_are_indexed(local_index, archive):
    out, code = local_index
    assert code == 1
    states = {Path(s["path"]).name: s for s in map(json.loads, (
        p.read_text() for p in (out / "files").glob("*.json")))}
    assert states["notes.mp4"]["state"] == "failed"
    assert "not a video" in states["notes.mp4"]["reason"]
    assert states["cut.mp4"]["state"] == "failed"
    assert "cut short" in states["cut.mp4"]["reason"]
    assert states["schedule.mp4"]["state"] == states["short_hamilton_clip.mp4"]["state"] == "done"
    assert states["short_hamilton_clip.mp4"]["frames"] == 275
    assert not list((out / "parts").glob(".*"))   # no temporary file left behind


def test_appearances_follow_the_schedule_with_no_wrong_name(local_index, capsys):
    out, _ = local_index
    rows = [r for r in read_rows(out) if r["file"].endswith("schedule.mp4")]
    for name, start, end in expected_segments():
        found = [a for a in who(out, name, capsys) if a["file"].endswith("schedule.mp4")]
        assert any(abs(a["start_s"] - start) <= TOLERANCE_S
                   and abs(a["end_s"] + 1 / FPS - end) <= TOLERANCE_S for a in found), \
            (name, start, end, found)
    for row in rows:
        if row["person"] is None:
            continue
        middle = (row["start_s"] + row["end_s"]) / 2
        assert any(row["person"] == name and start - TOLERANCE_S <= middle <= end + TOLERANCE_S
                   for name, start, end in expected_segments()), row


def test_who_finds_lin_manuel_in_the_hamilton_clip(local_index, capsys):
    out, _ = local_index
    found = who(out, "lin-manuel miranda", capsys)   # any case
    assert {Path(a["file"]).name for a in found} == {"short_hamilton_clip.mp4"}
    assert any(a["start_s"] <= 0.05 and a["end_s"] >= 0.6 for a in found), found
    assert any(2.6 <= a["start_s"] <= 2.9 and 6.8 <= a["end_s"] <= 7.1 for a in found), found
    assert all(0.5 < a["similarity"] <= 1 for a in found)


def test_rows_carry_thumbnails_and_unit_embeddings(local_index):
    import pyarrow.parquet as pq
    out, _ = local_index
    table = pq.read_table(out / "appearances.parquet")
    for row in table.to_pylist()[:5]:
        image = cv2.imdecode(np.frombuffer(row["thumbnail"], np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and max(image.shape[:2]) <= 96
        assert abs(np.linalg.norm(row["embedding"]) - 1) < 1e-4
        assert row["start_s"] <= row["best_s"] <= row["end_s"]
        assert row["model_id"]


# -- Ray -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_started():
    """A local Ray with two CPUs and a small object store, for this module's Ray tests."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, object_store_memory=200 * 2**20, include_dashboard=False,
             log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}})
    yield ray
    ray.shutdown()


def test_ray_gives_the_same_appearances(ray_started, local_index, archive, gallery, tmp_path):
    from app.index.run import run_index

    code = run_index(index_options(archive, gallery, tmp_path / "I2", cluster="ray"))
    assert code == 1   # the damaged files again
    local, remote = read_rows(local_index[0]), read_rows(tmp_path / "I2")
    key = ("file", "track", "start_s", "end_s", "best_s", "person")
    assert [tuple(r[k] for k in key) for r in remote] == [tuple(r[k] for k in key)
                                                          for r in local]
    np.testing.assert_allclose([r["embedding"] for r in remote],
                               [r["embedding"] for r in local], atol=1e-6)


def test_a_ray_worker_killed_mid_file_has_its_file_retried(ray_started, archive, local_index):
    """Ray restarts the actor (max_restarts) and runs the file again (max_task_retries)."""
    import threading

    from app.index.ray_backend import RayPool
    from app.index.run import tasks_for
    from app.index.worker import IndexSettings

    killed = []

    def kill_a_busy_actor():
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            busy = subprocess.run(["pgrep", "-f", "ray::IndexWorker.index_file"],
                                  capture_output=True, text=True).stdout.split()
            if busy:
                os.kill(int(busy[0]), signal.SIGKILL)
                killed.append(int(busy[0]))
            time.sleep(0.02)

    clip = (archive / "sub" / "schedule.mp4").resolve()
    thread = threading.Thread(target=kill_a_busy_actor, daemon=True)
    thread.start()
    results = []
    RayPool(IndexSettings(), workers=1).run(tasks_for([clip]), results.append)
    thread.join()
    assert killed and [r.state for r in results] == ["done"]
    assert int(results[0].worker.split(":")[1]) != killed[0]
    indexed = [r for r in read_rows(local_index[0]) if r["file"] == str(clip)]
    assert [(r["track"], r["start_s"], r["end_s"]) for r in results[0].rows] == \
        [(r["track"], r["start_s"], r["end_s"]) for r in indexed]


# -- interruptions -------------------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL],
                         ids=["SIGTERM", "Ctrl-C", "kill-9"])
def test_stopped_mid_run_then_resume_has_no_duplicates(signum, archive, gallery, tmp_path):
    """SIGTERM or Ctrl-C (SIGINT to the whole process group, as a terminal sends it): the
    driver stops its workers and says how to go on; kill -9: its workers die with it.
    --resume does the rest, once each."""
    clips = tmp_path / "clips"
    clips.mkdir()
    names = ("one", "two", "three", "four")
    for name in names:
        shutil.copy(archive / "sub" / "schedule.mp4", clips / f"{name}.mp4")
    out = tmp_path / "index"
    command = [sys.executable, "-m", "app", "index", str(clips), "--out", str(out),
               "--gallery", str(gallery), "--workers", "1", "--no-progress"]
    run = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not _done_files(out) and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.05)
        if signum == signal.SIGINT:
            os.killpg(run.pid, signum)
        else:
            run.send_signal(signum)
        output, _ = run.communicate(timeout=60)
    finally:
        run.kill()
    if signum != signal.SIGKILL:
        assert run.returncode == {signal.SIGTERM: 143, signal.SIGINT: 130}[signum], output
        assert "--resume" in output and "Traceback" not in output, output
    else:
        assert run.returncode == -signal.SIGKILL, output
    assert _group_ends(run.pid), "a worker outlived the driver"
    first = _done_files(out)
    assert 1 <= len(first) < len(names), output
    again = subprocess.run(command + ["--resume"], cwd=REPO_ROOT, capture_output=True,
                           text=True, timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(names) - len(first)} done, 0 failed, {len(first)} settled before" \
        in again.stdout, again.stdout
    rows = read_rows(out)
    keys = [(r["file"], r["track"]) for r in rows]
    assert len(keys) == len(set(keys))
    per_file = {}
    for r in rows:
        per_file.setdefault(Path(r["file"]).name, []).append((r["start_s"], r["end_s"],
                                                              r["person"]))
    assert set(per_file) == {f"{name}.mp4" for name in names}
    assert all(per_file[f"{name}.mp4"] == per_file["one.mp4"] for name in names)


def _group_ends(group: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _done_files(out: Path) -> list[str]:
    done = []
    for path in (out / "files").glob("*.json") if (out / "files").exists() else ():
        try:
            if json.loads(path.read_text())["state"] == "done":
                done.append(path.stem)
        except (json.JSONDecodeError, FileNotFoundError):
            pass
    return done


def test_a_worker_killed_mid_file_has_its_file_retried(archive, local_index):
    from app.index.pool import LocalPool
    from app.index.run import tasks_for
    from app.index.worker import IndexSettings

    clip = (archive / "sub" / "schedule.mp4").resolve()
    pool = LocalPool(IndexSettings(), workers=1)
    killed = []

    def kill_first(task, pid):
        if not killed:
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    pool.on_started = kill_first
    results = []
    pool.run(tasks_for([clip]), results.append)
    assert killed and len(results) == 1
    result = results[0]
    assert result.state == "done" and result.attempts == 2
    assert int(result.worker.split(":")[1]) != killed[0]
    indexed = [r for r in read_rows(local_index[0]) if r["file"] == str(clip)]
    assert [(r["track"], r["start_s"], r["end_s"]) for r in result.rows] == \
        [(r["track"], r["start_s"], r["end_s"]) for r in indexed]


# -- relabel -------------------------------------------------------------------------------
def test_relabel_names_people_enrolled_after_indexing_without_decoding(
        local_index, gallery, tmp_path, monkeypatch, capsys):
    import av

    from app.cli import main
    from app.people.gallery import Gallery
    from app.sources import pts

    out = tmp_path / "index"
    shutil.copytree(local_index[0], out)
    fewer = tmp_path / "fewer.sqlite3"
    shutil.copy(gallery, fewer)
    with Gallery(fewer) as opened:
        opened.remove("Madonna")

    def no_decoding(*args, **kwargs):
        raise AssertionError("relabel decoded video")

    monkeypatch.setattr(av, "open", no_decoding)
    monkeypatch.setattr(pts.PtsVideo, "__init__", no_decoding)
    monkeypatch.setattr(cv2, "VideoCapture", no_decoding)
    before = who(out, "Madonna", capsys)
    assert main(["relabel", "--index", str(out), "--gallery", str(fewer)]) == 0
    assert who(out, "Madonna", capsys) == []
    assert main(["relabel", "--index", str(out), "--gallery", str(gallery)]) == 0
    assert who(out, "Madonna", capsys) == before and before


# -- PTS -----------------------------------------------------------------------------------
def write_vfr_clip(path: Path) -> list[int]:
    """Black at 5 fps for 2 s, a face at 30 fps from 2 to 4 s, black at 4 fps to 5 s
    (milliseconds); frame count / mean rate would put the face at 0.6 s."""
    import av

    face = cv2.imread(str(shared("video", "lin-manuel-miranda.png")))
    scale = 360 / face.shape[0]
    face = cv2.resize(face, (int(face.shape[1] * scale) // 2 * 2, 360))
    black = np.zeros_like(face)
    times = [*range(0, 2000, 200), *range(2000, 4000, 33), *range(4000, 5000, 250)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height = face.shape[1], face.shape[0]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for t in times:
            frame = av.VideoFrame.from_ndarray(face if 2000 <= t < 4000 else black,
                                               format="bgr24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return times


def test_a_variable_frame_rate_clip_is_timed_by_pts(tmp_path):
    from app.index.run import tasks_for
    from app.index.worker import IndexSettings, IndexWorker
    from app.sources.pts import PtsVideo

    clip = tmp_path / "vfr.mp4"
    times = write_vfr_clip(clip)
    with PtsVideo(clip) as video:
        assert [round(f.timestamp_ms) for f in video.frames()] == times
    results = []
    for settings in (IndexSettings(), IndexSettings(fps=5)):
        worker = IndexWorker(settings)
        try:
            results.append(worker.index_file(tasks_for([clip])[0]))
        finally:
            worker.close()
    result, sampled = results
    assert result.state == "done" and result.frames == len(times)
    rows = [r for r in result.rows if r["frames"] > 5]
    assert len(rows) == 1
    assert abs(rows[0]["start_s"] - 2.0) < 0.05 and abs(rows[0]["end_s"] - 3.993) < 0.05
    assert abs(result.duration_s - 4.75) < 0.1
    assert sampled.frames == len(times) and sampled.processed < 30   # --fps 5: 2 s at 5/s
    assert abs(sampled.rows[0]["start_s"] - 2.0) < 0.25


# -- small parts ---------------------------------------------------------------------------
def test_find_videos_searches_folders_and_refuses_other_files(tmp_path):
    from app.index.run import find_videos

    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.MP4", "a/b/y.mkv", "a/z.txt"):
        (tmp_path / name).write_bytes(b"")
    found = find_videos([tmp_path / "a", tmp_path / "a" / "x.MP4"])
    assert [p.name for p in found] == ["y.mkv", "x.MP4"]   # each once, by path
    with pytest.raises(ValueError, match="not a video"):
        find_videos([tmp_path / "a" / "z.txt"])
    with pytest.raises(FileNotFoundError):
        find_videos([tmp_path / "missing"])


def test_who_joins_rows_of_one_person_less_than_a_gap_apart():
    from app.index.appearances import appearances_of

    rows = [{"file": "f", "track": t, "start_s": s, "end_s": e, "best_s": s, "person": p,
             "similarity": sim} for t, s, e, p, sim in
            [(1, 0.0, 1.0, "Ada", 0.7), (2, 1.5, 3.0, "ada", 0.9), (3, 5.0, 6.0, "Ada", 0.6),
             (4, 0.0, 9.0, "Bob", 0.8), (5, 2.0, 2.5, None, None)]]
    found = appearances_of(rows, "ADA", gap_s=1.0)
    assert [(a.start_s, a.end_s, a.tracks, a.best_s) for a in found] == \
        [(0.0, 3.0, [1, 2], 1.5), (5.0, 6.0, [3], 5.0)]


def test_an_existing_index_needs_resume(local_index, archive, gallery):
    from app.index.folder import IndexFolderError
    from app.index.run import run_index

    with pytest.raises(IndexFolderError, match="--resume"):
        run_index(index_options(archive, gallery, local_index[0]))


def test_a_folder_being_written_and_bad_options_are_refused(archive, gallery, tmp_path):
    from app.index.folder import IndexFolder, IndexFolderError
    from app.index.run import run_index
    from app.index.worker import IndexSettings

    with IndexFolder(tmp_path / "busy").writing():
        with pytest.raises(IndexFolderError, match="another index"):
            run_index(index_options(archive, gallery, tmp_path / "busy"))
    for bad, match in ((dict(settings=IndexSettings(fps=0)), "--fps"),
                       (dict(cluster="spark"), "--cluster")):
        with pytest.raises(ValueError, match=match):
            run_index(index_options(archive, gallery, tmp_path / "new", **bad))
        assert not (tmp_path / "new").exists()


def test_workers_are_capped_by_memory(monkeypatch, capsys):
    from app.index import run

    monkeypatch.setattr(run, "available_memory_mb", lambda: 1000.0)
    assert run.cap_workers(4, per_worker_mb=300) == 2   # 80 % of 1000 MB
    assert "2 run" in capsys.readouterr().err
    assert run.cap_workers(1, per_worker_mb=5000) == 1   # never none
    monkeypatch.setattr(run, "available_memory_mb", lambda: None)
    assert run.cap_workers(3) == 3


def test_the_progress_bar_counts_frames_against_the_headers(archive, capsys):
    from app.index.run import _Progress, tasks_for
    from app.index.worker import FileResult

    task = tasks_for([archive / "sub" / "schedule.mp4"])[0]
    frames = round(sum(seconds for _, seconds in SCHEDULE) * FPS)
    with _Progress([task], enabled=True) as progress:
        assert progress._bar.total == frames
        progress.frames(task, 100)
        progress.file_done(FileResult(task, "done", frames=frames))
        assert progress._bar.n == progress._bar.total == frames
    assert "files 1/1" in capsys.readouterr().err


def test_who_writes_each_appearance_s_best_face(local_index, tmp_path, capsys):
    from app.cli import main

    capsys.readouterr()
    assert main(["who", "Lin-Manuel Miranda", "--index", str(local_index[0]), "--json",
                 "--thumbnails", str(tmp_path / "faces")]) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(found) == 2 and len(list((tmp_path / "faces").glob("*.jpg"))) == 2
    for appearance in found:
        image = cv2.imread(appearance["thumbnail"])
        assert image is not None and 20 <= max(image.shape[:2]) <= 96


def test_who_by_photo_finds_the_face_without_a_gallery(local_index, capsys):
    from app.cli import main

    out = str(local_index[0])
    by_name = who(local_index[0], "Lin-Manuel Miranda", capsys)
    assert main(["who", "--photo", str(shared("video", "lin-manuel-miranda.png")),
                 "--index", out, "--json"]) == 0
    by_photo = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(a["file"], a["start_s"], a["end_s"]) for a in by_photo] == \
        [(a["file"], a["start_s"], a["end_s"]) for a in by_name]
    assert main(["who", "--index", out]) == 2   # a name or a photo


def test_damaged_packets_are_skipped_with_a_warning(tmp_path):
    """50 kB of noise inside the Hamilton clip: the decoder goes on at the next packet it
    accepts; the file is indexed with a warning, Lin-Manuel's shots still found (the
    close-up broken where its frames were lost)."""
    from app.index.run import tasks_for
    from app.index.worker import IndexSettings, IndexWorker

    data = bytearray(shared("video", "short_hamilton_clip.mp4").read_bytes())
    data[200_000:250_000] = np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes()
    clip = tmp_path / "noisy.mp4"
    clip.write_bytes(bytes(data))
    worker = IndexWorker(IndexSettings())
    try:
        result = worker.index_file(tasks_for([clip])[0])
    finally:
        worker.close()
    assert result.state == "done" and "damaged data skipped" in result.warning
    assert 200 < result.frames < 275
    assert any(r["start_s"] < 0.1 and r["end_s"] > 0.6 for r in result.rows)
    assert any(abs(r["start_s"] - 2.74) < 0.1 for r in result.rows)
    assert any(abs(r["end_s"] - 7.01) < 0.1 and r["frames"] > 50 for r in result.rows)
