"""The wheel's build: the ``app/`` folder installs as the ``facelandmarks`` package (never
as a top-level ``app``), and the run-time model files, fonts and demo settings are copied
into ``facelandmarks/data/`` with a sha256 manifest, so an installed tool runs from any
folder without this checkout and without TensorFlow.

The model files are built by ``make setup`` (``python -m models build``) first; a wheel
built without them would not run, so the build stops and says so. Metadata,
dependencies and extras are in ``pyproject.toml``.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PACKAGE = "facelandmarks"

# What a run needs, nothing more (the fp32/fp16/dynint8 FaceNet variants and the TensorFlow
# references stay in the checkout): the one list, also read by `facelandmarks models check`.
RUNTIME_FILES = json.loads((ROOT / "models" / "runtime_files.json").read_text())
BUNDLE = {f"{folder}/{name}": f"{folder}/{name}"
          for folder in ("models", "assets") for name in RUNTIME_FILES[folder]}


def packages() -> dict[str, str]:
    """``facelandmarks.<sub>`` -> its folder under app/, for every folder with an __init__.py."""
    found = {}
    for init in sorted((ROOT / "app").rglob("__init__.py")):
        rel = init.parent.relative_to(ROOT / "app")
        found[".".join((PACKAGE, *rel.parts))] = str(Path("app", *rel.parts))
    return found


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class BuildWithModels(build_py):
    """build_py, then the bundled files and their manifest into the build's package."""

    def run(self) -> None:
        # an earlier build's copy may hold modules since moved or removed: start clean
        shutil.rmtree(Path(self.build_lib) / PACKAGE, ignore_errors=True)
        super().run()
        missing = [src for src in BUNDLE if not (ROOT / src).is_file()]
        if missing:
            raise SystemExit("cannot build the facelandmarks wheel: model files missing: "
                             + ", ".join(missing)
                             + "\n  fix: make setup  (builds them), then pip install . again")
        data = Path(self.build_lib) / PACKAGE / "data"
        manifest = {}
        for src, dest in BUNDLE.items():
            target = data / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / src, target)
            manifest[dest] = {"sha256": sha256(target), "bytes": target.stat().st_size}
        (data / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))


PACKAGES = packages()
setup(packages=list(PACKAGES), package_dir=PACKAGES, cmdclass={"build_py": BuildWithModels},
      package_data={f"{PACKAGE}.server": ["static/*"]})
