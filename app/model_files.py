"""``facelandmarks models check``: every file a run needs is there and intact.

Installed, each file is compared with the sha256 the wheel's build wrote into
``facelandmarks/data/manifest.json``; in a source checkout (no manifest: the files are
built here by ``make setup``) each is only required to exist and be non-empty.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .paths import BUILD_COMMAND, BUNDLED_DIR, INSTALLED, MANIFEST_NAME, runtime_files


@dataclass(frozen=True)
class FileCheck:
    name: str        # path in the wheel's data folder, e.g. models/blazeface/...
    path: Path       # where this install reads it from
    status: str      # "ok", "missing", "damaged" (sha256 or size differs), "empty"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_files() -> list[FileCheck]:
    expected = (json.loads((BUNDLED_DIR / MANIFEST_NAME).read_text()) if INSTALLED else {})
    return [FileCheck(name, path, _status(path, expected.get(name)))
            for name, path in runtime_files().items()]


def _status(path: Path, expected: dict | None) -> str:
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if expected is None:
        return "ok" if size else "empty"
    if size != expected["bytes"] or sha256(path) != expected["sha256"]:
        return "damaged"
    return "ok"


def report(checks: list[FileCheck]) -> tuple[str, bool]:
    """The lines to print and whether every file is fine."""
    how = "sha256 against the wheel's manifest" if INSTALLED else "a source checkout: present"
    lines = [f"{check.status:8} {check.path}" for check in checks]
    bad = [check for check in checks if check.status != "ok"]
    lines.append(f"{len(checks) - len(bad)} of {len(checks)} file(s) ok; checked: {how}")
    if bad:
        lines.append(f"fix: {BUILD_COMMAND}")
    return "\n".join(lines), not bad
