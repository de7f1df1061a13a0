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
    assert ours["detector_frames"] == ours["stage_frames"]["detect"] == FRAMES
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
    assert main(["bench", "--source", str(head), "--repeat", "0"]) == 2
    assert "--repeat must be at least 1" in capsys.readouterr().err
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
