"""``python -m app bench`` end to end on the first frames of the real Hamilton clip (our side
only: the face_recognition peer is optional and slow). Frame accounting, not speed."""
from __future__ import annotations

import json

import pytest

from app.cli import main
from tests.conftest import shared
from tests.test_capture import clip_head

FRAMES = 40


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """The clip's first 40 frames with their part of its labels file next to them."""
    path = clip_head(tmp_path_factory.mktemp("bench"), FRAMES)
    labels = json.loads(shared("video", "short_hamilton_clip.labels.json").read_text())
    segments = [dict(s, last=min(s["last"], FRAMES - 1)) for s in labels["segments"]
                if s["first"] < FRAMES]
    path.with_suffix(".labels.json").write_text(json.dumps({**labels, "segments": segments}))
    return path


def bench(capsys, *args: str) -> dict:
    lin = shared("video", "lin-manuel-miranda.png")
    assert main(["bench", "--enroll", f"Lin-Manuel Miranda={lin}", "--repeat", "1",
                 *args]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_bench_processes_every_frame_of_the_file(head, capsys):
    out = bench(capsys, "--source", str(head))
    ours = out["ours"]
    assert out["realtime"] is False and ours["frames"] == FRAMES
    assert "latency_ms" not in ours and "dropped" not in ours
    assert ours["fps_median"] > 0 and set(ours["stage_ms"]) >= {"detect", "landmarks"}
    # a fresh process per run: start-up, memory, stages over the frames that ran them
    assert 0 < ours["first_frame_s"] < 60 and 50 < ours["peak_rss_mb"] < 4000
    assert 0 < ours["cpu_s"] == ours["cpu_s_runs"][0]
    # the detector on a schedule (issue 23): every frame at most, at frame 0 at least
    assert 1 <= ours["detector_frames"] == ours["stage_frames"]["detect"] <= FRAMES
    assert 0 < ours["stage_frames"]["embed"] < FRAMES
    assert ours["stage_mean_ms"]["embed"] > 0 == ours["stage_ms"]["embed"]
    wide_shot, profile = ours["named"]["segments"]  # frames 0-19 Lin-Manuel, 20-39 Alex
    assert wide_shot["expect"] == "Lin-Manuel Miranda" and wide_shot["named_expected"] >= 18
    assert wide_shot["named_wrong"] == profile["named_wrong"] == 0


def test_bench_realtime_goes_through_the_camera_path_and_accounts_for_every_frame(head, capsys):
    out = bench(capsys, "--source", str(head), "--realtime")
    ours = out["ours"]
    assert out["realtime"] is True
    assert ours["shown"] + ours["dropped"] == FRAMES
    assert [len(at) for at in ours["dropped_at_runs"]] == ours["dropped_runs"]
    assert ours["shown"] == ours["frames"]
    latency = ours["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"]
    # paced at the file's 29.97 FPS: never faster than the file plays
    assert ours["fps_median"] <= 29.97 * 1.1
    assert "fps_ratio" not in out


def test_bench_takes_any_clip_with_nobody_to_enrol(head, tmp_path, capsys):
    clip = tmp_path / "plain.mp4"
    clip.write_bytes(head.read_bytes())   # no labels file beside it
    assert main(["bench", "--source", str(clip), "--repeat", "1"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out.strip().splitlines()[-1])
    assert "gallery is empty" in captured.err
    assert out["ours"]["frames"] == FRAMES and out["ours"]["named"]["frames_naming"] == {}


def test_bench_refuses_bad_arguments_clearly(head, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:   # argparse's own refusal: exit 2
        main(["bench", "--source", str(head), "--repeat", "0"])
    assert stop.value.code == 2
    assert "--repeat: must be a whole number of 1 or more" in capsys.readouterr().err
    assert main(["bench", "--source", str(tmp_path / "none.mp4")]) == 2
    assert "none.mp4" in capsys.readouterr().err


@pytest.mark.parametrize("realtime", [False, True], ids=["every-frame", "realtime"])
def test_bench_vs_face_recognition_runs_the_peer_on_the_same_frames(head, capsys, realtime):
    pytest.importorskip("face_recognition", reason="the peer is optional: make bench-deps")
    out = bench(capsys, "--source", str(head), "--vs", "face_recognition",
                *(["--realtime"] if realtime else []))
    peer = out["face_recognition"]
    assert [s["last"] for s in peer["named"]["segments"]] == [19, 39]
    assert peer["fps_median"] > 0
    if realtime:
        assert peer["shown"] + peer["dropped"] == FRAMES and "fps_ratio" not in out
        assert 0 < peer["latency_ms"]["p50"] <= peer["latency_ms"]["p95"]
    else:
        assert out["fps_ratio"] == pytest.approx(
            out["ours"]["fps_median"] / peer["fps_median"], abs=0.1)
        assert peer["frames"] == out["ours"]["frames"] == FRAMES
        assert peer["named"]["segments"][0]["named_wrong"] == 0


# -- --reference / --baseline: first-found and first-named frames, on synthetic events -----
def face(track, box, name=None):
    return {"track": track, "box": list(box), "name": name}


def events(frames: int, *tracks_fn) -> list[dict]:
    """``frames`` frame events; each ``tracks_fn(i)`` gives that frame's face or None."""
    return [{"frame": i, "faces": [f for f in (fn(i) for fn in tracks_fn) if f]}
            for i in range(frames)]


LEFT, RIGHT = (10, 10, 60, 60), (200, 10, 250, 60)


def moving(box, i):
    return tuple(v + i for v in box)   # 1 px a frame: IoU stays high from frame to frame


def test_tracks_delays_follow_the_boxes_not_the_track_ids():
    from app.lab.tracks import compare

    reference = events(
        30,
        lambda i: face(1, moving(LEFT, i), "Ann" if i >= 2 else None),
        lambda i: face(2, RIGHT, "Bob" if i >= 12 else None) if i >= 10 else None)
    ours = events(
        30,
        # found 1 frame late, named 4 frames late, and its id changes at frame 20
        lambda i: (face(7 if i < 20 else 9, moving(LEFT, i), "Ann" if i >= 6 else None)
                   if i >= 1 else None),
        # found 3 late (schedule), named the same frame as the reference
        lambda i: face(8, (201, 11, 251, 61), "Bob" if i >= 12 else None) if i >= 13 else None)
    out = compare(reference, ours)
    rows = {r["track"]: r for r in out["rows"]}
    assert (rows[1]["found"], rows[1]["ours_found"], rows[1]["found_delay"]) == (0, 1, 1)
    assert (rows[2]["found"], rows[2]["last"], rows[2]["frames"]) == (10, 29, 20)
    assert (rows[1]["named"], rows[1]["ours_named"], rows[1]["named_delay"]) == (2, 6, 4)
    assert (rows[2]["found_delay"], rows[2]["named_delay"]) == (3, 1)
    assert out["found_delay"] == {"max": 3, "mean": 2.0, "count": 2}
    assert out["named_delay"] == {"max": 4, "mean": 2.5, "count": 2}
    assert out["never_found"] == out["never_named"] == [] and out["wrong_names"] == 0
    assert out["extra_tracks"] == 0


def test_tracks_never_found_never_named_wrong_names_and_extra_tracks():
    from app.lab.tracks import compare, pooled, table

    reference = events(
        20,
        lambda i: face(1, LEFT, "Ann"),
        lambda i: face(2, RIGHT, "Bob"),
        lambda i: face(3, (400, 10, 450, 60)) if i < 10 else None)   # never named
    ours = events(
        20,
        lambda i: face(5, LEFT),                                   # found, never named
        lambda i: face(6, (210, 10, 260, 60), "Ann" if i % 2 else "Bob"),  # IoU 0.67
        lambda i: face(9, (400, 10, 450, 60), "Ann") if 5 <= i < 10 else None,  # no name there
        lambda i: face(4, (600, 300, 650, 350)))                  # nobody in the reference
    out = compare(reference, ours)
    rows = {r["track"]: r for r in out["rows"]}
    assert out["never_found"] == [] and out["never_named"] == [1]
    assert rows[2]["wrong_names"] == ["Ann"] and rows[2]["wrong_name_frames"] == 10
    assert rows[3]["wrong_names"] == ["Ann"] and rows[3]["named_delay"] is None
    assert out["wrong_names"] == 2 and out["wrong_name_frames"] == 15
    assert out["extra_tracks"] == 1
    # track 4's 20 frames: nobody there in the reference
    assert out["extra_faces"] == {"frames": 20, "named": 0}
    stays = compare(events(6, lambda i: face(1, LEFT, "Ann") if i < 3 else None),
                    events(6, lambda i: face(1, LEFT, "Ann")))
    assert stays["extra_faces"] == {"frames": 3, "named": 3} and stays["extra_tracks"] == 0
    # a track ours never covers: never found (and never named)
    alone = compare(events(5, lambda i: face(1, LEFT, "Ann")), events(5))
    assert alone["never_found"] == [1] == alone["never_named"]
    assert alone["found_delay"]["max"] is None
    both = pooled([out, alone])
    assert both["never_found"] == [1] and both["wrong_names"] == 2
    assert len(both["runs"]) == 2 and "rows" not in both["runs"][0]
    assert "WRONG: Ann" in table("reference", out)


def test_tracks_iou_below_the_bar_is_not_the_same_face():
    from app.lab.tracks import IOU_MIN, compare, iou

    assert iou(LEFT, LEFT) == 1.0 and iou(LEFT, RIGHT) == 0.0
    shifted = (40, 10, 90, 60)   # 20x50 overlap over 2 * 2500 - 1000: 0.25
    assert iou(LEFT, shifted) < IOU_MIN
    out = compare(events(3, lambda i: face(1, LEFT)), events(3, lambda i: face(1, shifted)))
    assert out["never_found"] == [1] and out["extra_tracks"] == 1


def test_bench_compares_sides_run_by_run(monkeypatch, capsys):
    """measure() with a reference side, the runs faked: the delays come from each pair's
    events, the speed-up from the medians."""
    from app.lab import bench

    def fake_run(side, video, gallery, embedder, events_path, labels, realtime):
        late = 2 if side.name == "ours" else 0
        frames = events(10, lambda i: face(1, LEFT, "Ann") if i >= late else None)
        fps = 100.0 if side.name == "ours" else 50.0
        return {"fps": fps, "stage_ms": {"detect": 1.0}, "stage_mean_ms": {"detect": 1.0},
                "stage_frames": {"detect": 4 if side.name == "ours" else 10}, "frames": 10,
                "first_frame_s": 0.5, "peak_rss_mb": 100.0, "named": {}, "latency_ms": None,
                "dropped": 0, "events": frames}

    monkeypatch.setattr(bench, "_run_side", fake_run)
    monkeypatch.setattr(bench, "_other_sides", lambda *a: [bench.REFERENCE])
    monkeypatch.setattr(bench, "_enrol_ours", lambda *a: None)
    video = shared("video", "short_hamilton_clip.mp4")
    out = bench.measure(video, repeat=2, reference=True, enroll=[])
    assert out["speedup"] == {"reference": 2.0}
    assert out["ours"]["detector_frames"] == 4 and out["reference"]["detector_frames"] == 10
    tracks = out["reference"]["tracks"]
    assert tracks["found_delay"] == {"max": 2, "mean": 2.0, "count": 2}
    assert tracks["named_delay"]["max"] == 2 and len(tracks["runs"]) == 2
    assert "tracks vs reference" in capsys.readouterr().err


def test_bench_realtime_latency_takes_p99_and_max_where_a_run_has_them():
    from app.lab.bench import _realtime

    runs = [{"frames": 270, "dropped": 5,
             "latency_ms": {"median": 8.0, "p50": 8.0, "p95": 20.0, "p99": 40.0, "max": 90.0}},
            {"frames": 275, "dropped": 0,
             "latency_ms": {"median": 10.0, "p95": 30.0}},   # an older summary: no p99
            {"frames": 272, "dropped": 3,
             "latency_ms": {"median": 9.0, "p50": 9.0, "p95": 25.0, "p99": 60.0, "max": 70.0}}]
    out = _realtime(runs)
    assert out["latency_ms"] == {"p50": 9.0, "p95": 25.0, "p99": 50.0, "max": 80.0}
    assert out["dropped"] == 3 and out["dropped_runs"] == [5, 0, 3] and out["shown"] == 272


# -- the 1080p crowd clip (app.lab.crowd) -------------------------------------------------
def test_crowd_schedule_keeps_three_different_people_on_screen():
    from app.lab.crowd import FRAMES, GAP, SLOTS, load_people, schedule

    shared("identities", "5-celebrity", "val")
    plan = schedule(load_people()[0])
    assert plan == schedule(load_people()[0])   # the same every time
    for i in range(FRAMES):
        here = [a for a in plan if a.first <= i <= a.last]
        assert len({a.name for a in here}) == len(here) >= SLOTS - 1   # nobody twice
        assert len({a.slot for a in here}) == len(here)
    three = sum(1 for i in range(FRAMES)
                if sum(a.first <= i <= a.last for a in plan) == SLOTS)
    assert three >= FRAMES - SLOTS * GAP * (FRAMES // 90)   # 2 only in the gaps
    assert {a.first for a in plan if a.first} == {30, 60, 90, 120, 150, 180, 210, 240, 270}
    for slot in range(SLOTS):   # every change of a place brings someone else
        names = [a.name for a in plan if a.slot == slot]
        assert all(a != b for a, b in zip(names, names[1:]))


def test_crowd_clip_is_1080p_deterministic_and_labelled(tmp_path):
    from app.lab.crowd import main as crowd_main

    shared("identities", "5-celebrity", "val")
    a, b = tmp_path / "a" / "crowd.mp4", tmp_path / "b" / "crowd.mp4"
    assert crowd_main(["--out", str(a), "--frames", "8"]) == 0
    assert crowd_main(["--out", str(b), "--frames", "8"]) == 0
    assert a.read_bytes() == b.read_bytes()
    import cv2
    reader = cv2.VideoCapture(str(a))
    ok, image = reader.read()
    assert ok and image.shape == (1080, 1920, 3)
    assert int(reader.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    labels = json.loads(a.with_suffix(".labels.json").read_text())
    assert labels["frames"] == 8 and labels["size"] == [1920, 1080] and labels["segments"] == []
    assert len(labels["people"]) == 3 and all(p["last"] == 7 for p in labels["people"])
    enrolled = set(labels["enroll"])
    assert {p["expect"] for p in labels["people"]} <= enrolled and len(enrolled) == 5
    # enrolment photos are training photos, in place (never the validation photos shown)
    assert all("/train/" in path for path in labels["enroll"].values())
    assert crowd_main(["--out", str(a), "--frames", "0"]) == 2


def test_score_people_counts_each_appearance_and_names_of_people_not_on_screen():
    from app.lab.scoring import score_people

    labels = {"people": [{"first": 0, "last": 9, "expect": "Ann"},
                         {"first": 0, "last": 4, "expect": "Bob"},
                         {"first": 5, "last": 9, "expect": "Cy"}]}
    named = {i: {"Ann"} if i >= 2 else set() for i in range(10)}
    named[3] |= {"Bob"}
    named[6] |= {"Bob"}   # Bob has left: wrong
    out = score_people(named, labels)
    ann, bob, cy = out["appearances"]
    assert (ann["named_expected"], ann["first_named_after"]) == (8, 2)
    assert (bob["named_expected"], bob["first_named_after"]) == (1, 3)
    assert cy["first_named_after"] is None and out["never_named"] == 1
    assert out["wrong_frames"] == 1 and out["frames"] == 20


# -- --reference / --baseline end to end on the clip's head --------------------------------
def test_bench_baseline_runs_another_checkout_and_compares_its_tracks(head, capsys):
    """This checkout as its own baseline: the same tracks, found and named on the same
    frames (file runs keep every frame)."""
    from app.paths import REPO_ROOT

    out = bench(capsys, "--source", str(head), "--baseline", str(REPO_ROOT))
    base = out["baseline"]
    assert base["frames"] == out["ours"]["frames"] == FRAMES
    assert base["detector_frames"] == base["stage_frames"]["detect"] > 0
    tracks = base["tracks"]
    assert tracks["tracks"] >= 1 and tracks["never_found"] == [] and tracks["wrong_names"] == 0
    assert tracks["found_delay"]["max"] == 0
    assert out["speedup"]["baseline"] > 0


def test_bench_baseline_refuses_a_folder_that_is_no_checkout(head, tmp_path, capsys):
    assert main(["bench", "--source", str(head), "--baseline", str(tmp_path)]) == 2
    assert "not a checkout" in capsys.readouterr().err


def test_bench_reference_detects_every_frame_and_embeds_on_the_frame_path(head, capsys):
    from dataclasses import fields

    from app.config import RunConfig
    if not {"detect_every", "sync_embed"} <= {f.name for f in fields(RunConfig)}:
        pytest.skip("run has no --detect-every / --sync-embed yet")
    out = bench(capsys, "--source", str(head), "--reference")
    ref, ours = out["reference"], out["ours"]
    assert ref["detector_frames"] == FRAMES >= ours["detector_frames"] > 0
    tracks = ref["tracks"]
    assert tracks["never_found"] == [] and tracks["wrong_names"] == 0
    assert tracks["found_delay"]["max"] is not None
    assert ref["named"]["segments"][0]["named_wrong"] == 0
