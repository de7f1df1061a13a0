"""app.lab.isa: a command run seeing AVX2 only (how issue 23's AVX2-only machine is
measured here), and crashes under the shim still crash as they would."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from app.lab import isa

pytestmark = pytest.mark.skipif(
    not isa.cpuid_faulting() or shutil.which("cc") is None,
    reason="needs Linux CPUID faulting (cpuid_fault) and a C compiler")


def run_python(code: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *flags, "-m", "app.lab.isa", "avx2", "--",
                           sys.executable, *flags, "-c", code],
                          capture_output=True, text=True, timeout=60)


def test_numpy_sees_avx2_but_no_avx512_under_the_shim():
    native = subprocess.run([sys.executable, "-c", isa.NUMPY_PROBE], capture_output=True,
                            text=True, check=True).stdout.split()
    shimmed = run_python(isa.NUMPY_PROBE)
    assert shimmed.returncode == 0, shimmed.stderr
    seen = shimmed.stdout.split()
    assert not {"AVX512F", "AVX512_SKX", "AVX512VNNI"} & set(seen)
    assert ("AVX2" in seen) == ("AVX2" in native)


def test_the_models_still_run_under_the_shim():
    code = ("import numpy as np; from app.factory import build_detector; "
            "d = build_detector('blazeface', 1); "
            "print(len(d.detect(np.zeros((360, 640, 3), np.uint8))))")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


@pytest.mark.parametrize("flags", [(), ("-X", "faulthandler")])
def test_a_real_crash_still_crashes(flags):
    """The shim handles SIGSEGV for CPUID only; any other goes to the program's own
    handler (faulthandler here) or kills the process as it would have."""
    result = run_python("import ctypes; ctypes.string_at(0)", *flags)
    assert result.returncode == -11
    assert ("Segmentation fault" in result.stderr) == bool(flags)
