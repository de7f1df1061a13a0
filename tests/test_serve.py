"""serve: the HTTP API on the real pipeline and the Hamilton clip (Starlette's test client)."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from app.config import RunConfig  # noqa: E402
from app.server.access import AccessError, AccessPolicy  # noqa: E402
from app.server.live import LiveService  # noqa: E402
from app.server.routes import create_app  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"
CLIP, LIN = DATA / "short_hamilton_clip.mp4", DATA / "lin-manuel-miranda.png"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    config = RunConfig(source=str(CLIP), loop=True, headless=True, progress=False,
                       gallery=tmp_path_factory.mktemp("serve") / "g.sqlite3")
    live = LiveService(config, pace=True).start()
    yield live
    live.stop()


def client(service, token=None):
    return TestClient(create_app(service, AccessPolicy.for_bind("127.0.0.1", token)),
                      base_url="http://127.0.0.1:8000")


def test_status_people_upload_rename_remove(service):
    c = client(service)
    assert c.get("/api/status").json()["models"]["detector"] == "blazeface"
    r = c.post("/api/people/Lin-Manuel%20Miranda/photos",
               files={"photos": ("lin.png", LIN.read_bytes(), "image/png")})
    assert r.status_code == 201, r.text
    assert r.json()["added"] == 1
    assert c.get("/api/people").json() == [{"name": "Lin-Manuel Miranda", "samples": 1}]
    assert c.get("/api/people/Lin-Manuel%20Miranda/thumb.jpg").content[:2] == b"\xff\xd8"
    bad = c.post("/api/people/X/photos", files={"photos": ("a.jpg", b"not an image")})
    assert bad.status_code == 422 and "a.jpg" in bad.json()["detail"]
    assert "/tmp" not in bad.json()["detail"]
    assert c.patch("/api/people/Lin-Manuel%20Miranda", json={"name": "LMM"}).status_code == 200
    assert c.delete("/api/people/Nobody").status_code == 404
    assert c.delete("/api/people/LMM").status_code == 204
    assert c.get("/api/people").json() == []


def test_snapshot_and_faces(service):
    c = client(service)
    assert c.get("/api/snapshot.jpg").content[:2] == b"\xff\xd8"
    faces = c.get("/api/faces").json()
    assert faces["size"] == [640, 360]


def test_token_and_origin_rules(service):
    with pytest.raises(AccessError):
        AccessPolicy.for_bind("0.0.0.0", None)
    token = "t" * 20
    c = client(service, token)
    assert c.get("/api/people").status_code == 401
    assert c.get("/api/people", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert c.get(f"/api/status?token={token}").status_code == 200
    assert c.get("/api/people").status_code == 200      # the cookie the ?token= set
    evil = client(service).post("/api/enrol/undo", headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403
    rebinding = TestClient(create_app(service, AccessPolicy.for_bind("127.0.0.1", None)),
                           base_url="http://attacker.example")
    assert rebinding.get("/api/people").status_code == 421


def wait_for(predicate, timeout: float = 30.0, every: float = 0.1):
    """The first truthy value of ``predicate()`` within ``timeout`` s, else fail."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s")


def test_websocket_pushes_faces_status_and_enrolment(service):
    # the test client's WebSocket says Host: testserver whatever its base URL
    with client(service).websocket_connect("/api/ws", headers={"host": "127.0.0.1:8000"}) as ws:
        first, second = ws.receive_json(), ws.receive_json()
    for message in (first, second):
        assert {"frame", "faces", "enrolment", "status"} <= set(message)
        assert message["status"]["models"]["detector"] == "blazeface"
    assert second["status"]["frames"] > first["status"]["frames"]   # live, not a copy


def test_stream_parts_are_jpegs(service):
    hub = service.hub
    with client(service).stream("GET", "/api/stream.mjpg") as response:
        assert response.headers["content-type"].startswith("multipart/x-mixed-replace")
        data = b""
        for chunk in response.iter_bytes():
            data += chunk
            if data.count(b"--frame") >= 3:
                break
    assert data.count(b"\xff\xd8") >= 2 and b"X-Capture-Age-Ms" in data
    assert hub.encoded > 0


def test_hub_encodes_each_frame_once_and_only_when_asked():
    import numpy as np

    from app.server.hub import FrameHub
    from app.types import Frame, FrameResult

    drawn = []
    hub = FrameHub(lambda result: drawn.append(result.frame.index) or result.frame.image)
    assert hub.jpeg() is None and hub.index == -1
    for index in range(5):     # nobody watches: nothing is drawn or encoded
        hub.publish(FrameResult(Frame(index, np.zeros((8, 8, 3), np.uint8), 0.0), [], {}))
    assert drawn == [] and hub.encoded == 0
    first, second = hub.jpeg(), hub.jpeg()     # two watchers, one frame
    assert first[0] == 4 and first[1] is second[1] and drawn == [4] and hub.encoded == 1


def test_live_enrolment_by_track_undo_and_cancel(service):
    c = client(service)
    assert c.post("/api/enrol", json={"track": "x"}).status_code == 422
    gone = c.post("/api/enrol", json={"track": 10**6, "name": "Ada"})
    assert gone.status_code == 422 and "no face #1000000" in gone.json()["detail"]
    assert c.post("/api/enrol/cancel").json() == {"cancelled": False}
    face = wait_for(lambda: next((f for f in c.get("/api/faces").json()["faces"]
                                  if f["name"] is None and f["box"][2] - f["box"][0] > 70),
                                 None))
    started = c.post("/api/enrol", json={"track": face["track"], "name": "Ada"})
    assert started.status_code == 202, started.text
    assert started.json()["progress"] == "/api/ws"
    assert c.post("/api/enrol/cancel").json() == {"cancelled": True}
    assert c.get("/api/people").json() == []
    undone = c.post("/api/enrol/undo").json()
    assert undone["undone"] is False and undone["detail"]


def test_unknown_faces_listed_with_thumbnails_and_named(service):
    c = client(service)
    unknown = wait_for(lambda: c.get("/api/unknown").json())
    track = unknown[0]["track"]
    assert unknown[0]["samples"] >= 1
    assert c.get(f"/api/unknown/{track}/thumb.jpg").content[:2] == b"\xff\xd8"
    assert c.get("/api/unknown/999999/thumb.jpg").status_code == 404
    assert c.post(f"/api/unknown/{track}", json={}).status_code == 422
    named = c.post(f"/api/unknown/{track}", json={"name": "Someone In The Audience",
                                                 "force": True})
    assert named.status_code == 201, named.text
    assert named.json()["name"] == "Someone In The Audience"
    assert track not in [f["track"] for f in c.get("/api/unknown").json()]
    assert c.post(f"/api/unknown/{track}", json={"name": "Again"}).status_code == 404
    assert c.delete("/api/people/Someone%20In%20The%20Audience").status_code == 204


def test_bad_requests_are_json_errors(service):
    c = client(service)
    not_json = c.patch("/api/people/X", content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and "JSON" in not_json.json()["detail"]
    assert c.post("/api/people/X/photos", data={"nothing": "here"}).status_code == 422
    big = c.post("/api/people/X/photos", files={"photos": ("big.jpg", b"0" * (21 * 2**20))})
    assert big.status_code == 413 and "limit" in big.json()["detail"]
    assert c.get("/api/nothing-here").json()["detail"]
