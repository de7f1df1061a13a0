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
