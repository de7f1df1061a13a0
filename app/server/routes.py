"""The HTTP and WebSocket API of ``serve`` (Starlette), and the page.

Every error is JSON ``{"detail": "..."}`` with a 4xx/5xx status, never a traceback (a
500 logs its traceback on the server's stderr). Routes (all under ``/api``):

=========================================  =================================================
``GET status``                             frames, FPS, source, models, why frames stopped
``GET stream.mjpg``                        the annotated frames, ``multipart/x-mixed-replace``
``GET snapshot.jpg``                       the latest annotated frame
``GET faces``                              the latest frame's faces: track, box, name, similarity
``WS ws``                                  faces, enrolment progress and status, 5 times a second
``GET people``                             ``[{"name", "samples"}]``
``GET people/{name}/thumb.jpg``            a stored face crop
``POST people/{name}/photos``              multipart ``photos`` (+ ``force``, ``face``): 201
``PATCH people/{name}``                    ``{"name": NEW}``: 200, 409 if NEW is taken
``DELETE people/{name}``                   204, 404 if unknown
``POST enrol``                             ``{"track", "name"}``: 202, live enrolment starts
``POST enrol/undo``, ``POST enrol/cancel`` undo this server's latest live enrolment; cancel one
``GET unknown``                            recent faces that matched nobody
``GET unknown/{track}/thumb.jpg``          one of them
``POST unknown/{track}``                   ``{"name"}``: "this is ...", 201
=========================================  =================================================
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from ..people.enroll import EnrolmentError, FaceCountError
from ..people.gallery import GalleryError, NameTaken, PersonNotFound
from ..sources.capture import now_ms
from .access import AccessMiddleware, AccessPolicy
from .actions import PeopleActions
from .live import LiveService, ServiceStopped

STATIC = Path(__file__).resolve().parent / "static"
MAX_UPLOAD_BYTES = 20 * 2**20    # one request's photos (phone photos are 2-8 MB each)
MAX_UPLOAD_FILES = 20
WS_PERIOD_S = 0.2
STREAM_POLL_S = 0.005
BOUNDARY = "frame"


class ApiError(Exception):
    def __init__(self, status: int, detail: str, **extra):
        self.status, self.detail, self.extra = status, detail, extra


def create_app(service: LiveService, policy: AccessPolicy) -> AccessMiddleware:
    api = Api(service)
    routes = [
        Route("/", api.page), Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/api/status", api.status), Route("/api/stream.mjpg", api.stream),
        Route("/api/snapshot.jpg", api.snapshot), Route("/api/faces", api.faces),
        WebSocketRoute("/api/ws", api.websocket),
        Route("/api/people", api.people),
        Route("/api/people/{name}/thumb.jpg", api.thumbnail),
        Route("/api/people/{name}/photos", api.add_photos, methods=["POST"]),
        Route("/api/people/{name}", api.person, methods=["PATCH", "DELETE"]),
        Route("/api/enrol", api.enrol, methods=["POST"]),
        Route("/api/enrol/undo", api.undo, methods=["POST"]),
        Route("/api/enrol/cancel", api.cancel, methods=["POST"]),
        Route("/api/unknown", api.unknown),
        Route("/api/unknown/{track:int}/thumb.jpg", api.unknown_thumbnail),
        Route("/api/unknown/{track:int}", api.name_unknown, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={
        ApiError: _api_error, HTTPException: _http_error, Exception: _server_error})
    return AccessMiddleware(app, policy)


class Api:
    def __init__(self, service: LiveService):
        self.service = service
        self.actions = PeopleActions(service)

    # -- the page and what it watches --------------------------------------------------------
    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def status(self, request: Request) -> Response:
        return JSONResponse(self.service.status())

    async def faces(self, request: Request) -> Response:
        return JSONResponse(self.service.faces())

    async def snapshot(self, request: Request) -> Response:
        part = await asyncio.to_thread(self.service.hub.jpeg)
        if part is None:
            raise ApiError(503, "no frame yet")
        return Response(part[1], media_type="image/jpeg",
                        headers={"Cache-Control": "no-store", "X-Frame": str(part[0])})

    async def stream(self, request: Request) -> Response:
        return StreamingResponse(self._parts(), headers={"Cache-Control": "no-store"},
                                 media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}")

    async def _parts(self):
        """Each new frame once, as it comes; a client that reads slowly skips frames."""
        hub, sent = self.service.hub, None
        hub.watching(+1)
        try:
            while not self.service.stopping:
                if hub.index == sent or hub.index < 0:
                    await asyncio.sleep(STREAM_POLL_S)
                    continue
                index, data, captured_ms = await asyncio.to_thread(hub.jpeg)
                sent = index
                head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: "
                        f"{len(data)}\r\nX-Frame: {index}\r\nX-Capture-Age-Ms: "
                        f"{now_ms() - captured_ms:.1f}\r\n\r\n")
                yield head.encode() + data + b"\r\n"
        finally:
            hub.watching(-1)

    async def websocket(self, socket: WebSocket) -> None:
        await socket.accept()
        try:
            while not self.service.stopping:
                await socket.send_json({**self.service.faces(),
                                        "enrolment": self.service.enrolment(),
                                        "status": self.service.status()})
                await asyncio.sleep(WS_PERIOD_S)
            await socket.close(1001)
        except Exception:   # the client went away (any of the ways a socket can close)
            return

    # -- people ---------------------------------------------------------------------------
    async def people(self, request: Request) -> Response:
        return JSONResponse(await asyncio.to_thread(self.actions.people))

    async def thumbnail(self, request: Request) -> Response:
        name = request.path_params["name"]
        data = await _done(asyncio.to_thread(self.actions.thumbnail, name))
        if data is None:
            raise ApiError(404, f"{name!r} has no stored face crop")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def add_photos(self, request: Request) -> Response:
        name = request.path_params["name"]
        form = await _form(request)
        photos = [f for f in form.getlist("photos") if hasattr(f, "read")]
        if not photos:
            raise ApiError(422, "no photos: send them as the multipart field 'photos'")
        face = _optional_int(form.get("face") or request.query_params.get("face"), "face")
        force = _flag(form.get("force") or request.query_params.get("force"))
        with tempfile.TemporaryDirectory(prefix="facelandmarks-upload-") as folder:
            paths = [await _save(photo, Path(folder), i) for i, photo in enumerate(photos)]
            added = await _done(self.actions.add_photos(name, paths, force, face),
                                hide=folder + os.sep)
        return JSONResponse(vars(added), status_code=201)

    async def person(self, request: Request) -> Response:
        name = request.path_params["name"]
        if request.method == "DELETE":
            removed = await _done(self.actions.remove(name))
            return Response(status_code=204, headers={"X-Samples-Removed": str(removed)})
        new = (await _json(request)).get("name")
        if not isinstance(new, str):
            raise ApiError(422, 'give the new name as {"name": "..."}')
        await _done(self.actions.rename(name, new))
        return JSONResponse({"name": new.strip()})

    # -- live enrolment and unknown faces ------------------------------------------------------
    async def enrol(self, request: Request) -> Response:
        body = await _json(request)
        track, name = body.get("track"), body.get("name")
        if not isinstance(track, int) or not isinstance(name, str):
            raise ApiError(422, 'give {"track": ID, "name": "..."} (ID from /api/faces)')
        await _done(self.actions.enrol_track(track, name))
        return JSONResponse({"track": track, "name": name.strip(),
                             "progress": "/api/ws"}, status_code=202)

    async def undo(self, request: Request) -> Response:
        undone, message = await _done(self.actions.undo())
        return JSONResponse({"undone": undone, "detail": message})

    async def cancel(self, request: Request) -> Response:
        return JSONResponse({"cancelled": await _done(self.actions.cancel_enrolment())})

    async def unknown(self, request: Request) -> Response:
        live = {f["track"] for f in self.service.faces()["faces"]}
        return JSONResponse([{"track": f.track, "last_frame": f.last_frame,
                              "samples": len(f.embeddings), "live": f.track in live}
                             for f in self.service.unknown.listing()])

    async def unknown_thumbnail(self, request: Request) -> Response:
        face = self.service.unknown.get(request.path_params["track"])
        if face is None:
            raise ApiError(404, "no such recent unknown face")
        return Response(face.thumbnail, media_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})

    async def name_unknown(self, request: Request) -> Response:
        body = await _json(request)
        name = body.get("name")
        if not isinstance(name, str):
            raise ApiError(422, 'give {"name": "..."}')
        added = await _done(self.actions.name_unknown(request.path_params["track"], name,
                                                      _flag(body.get("force"))))
        return JSONResponse(vars(added), status_code=201)


# -- helpers -----------------------------------------------------------------------------------
async def _done(future, hide: str | None = None):
    """The job's result; its refusal as an :class:`ApiError` with the right status."""
    if isinstance(future, concurrent.futures.Future):
        future = asyncio.wrap_future(future)
    try:
        return await future
    except FaceCountError as exc:
        raise ApiError(422, _hidden(exc, hide), faces=[{"box": b} for b in exc.boxes]) from exc
    except PersonNotFound as exc:
        raise ApiError(404, str(exc)) from exc
    except NameTaken as exc:
        raise ApiError(409, str(exc)) from exc
    except ServiceStopped as exc:
        raise ApiError(503, str(exc)) from exc
    except (EnrolmentError, ValueError) as exc:
        raise ApiError(422, _hidden(exc, hide)) from exc
    except LookupError as exc:
        raise ApiError(404, str(exc)) from exc
    except GalleryError as exc:
        raise ApiError(409, str(exc)) from exc


def _hidden(exc: Exception, prefix: str | None) -> str:
    """The message without the upload's temporary folder (the client's file name stays)."""
    text = str(exc)
    return re.sub(re.escape(prefix) + r"\d+" + re.escape(os.sep), "", text) if prefix else text


async def _json(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError as exc:
        raise ApiError(400, f"the body must be JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


async def _form(request: Request):
    """The multipart form, refused (413) past :data:`MAX_UPLOAD_BYTES` before it is read."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        raise ApiError(413, f"upload of {int(declared) / 2**20:.1f} MB is over the limit of "
                       f"{MAX_UPLOAD_BYTES // 2**20} MB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_UPLOAD_BYTES:
            raise ApiError(413, f"upload over the limit of {MAX_UPLOAD_BYTES // 2**20} MB")
    replay = Request(request.scope, receive=_replay(bytes(body)))
    try:
        return await replay.form(max_files=MAX_UPLOAD_FILES, max_part_size=MAX_UPLOAD_BYTES)
    except HTTPException as exc:
        raise ApiError(exc.status_code if exc.status_code >= 400 else 400, exc.detail) from exc
    except Exception as exc:   # a malformed multipart body
        raise ApiError(400, f"could not read the upload: {exc}") from exc


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}
    return receive


async def _save(upload, folder: Path, index: int) -> Path:
    """An uploaded file under its own (cleaned) name, so refusals name it."""
    name = re.sub(r"[^\w.\- ]", "_", Path(upload.filename or f"photo-{index}").name)[:100]
    path = folder / str(index) / (name or f"photo-{index}")
    path.parent.mkdir()
    path.write_bytes(await upload.read())
    return path


def _flag(value) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes", "on")


def _optional_int(value, what: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ApiError(422, f"{what} must be a whole number, got {value!r}") from exc


async def _api_error(request, exc: ApiError) -> Response:
    return JSONResponse({"detail": exc.detail, **exc.extra}, status_code=exc.status)


async def _http_error(request, exc: HTTPException) -> Response:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _server_error(request, exc: Exception) -> Response:
    traceback.print_exception(exc, file=sys.stderr)
    return JSONResponse({"detail": f"internal error: {type(exc).__name__}: {exc}"},
                        status_code=500)
