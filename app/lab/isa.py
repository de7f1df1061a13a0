"""Run a command as if this CPU had AVX2 but no AVX-512 and no AVX-VNNI.

int8 FaceNet is 3x slower on an AVX2-only CPU (issue 23's AMD EPYC: 42 ms a face
at one thread) than where AVX-512 VNNI exists (13 ms), so speed figures from one
do not carry to the other. This runs a command under ``avx2_only.c`` (an
LD_PRELOAD shim that hides those CPUID bits from every library that asks:
XNNPACK inside LiteRT, numpy, OpenCV, glibc), so both machines can be measured
on one:

    python -m app.lab.isa avx2 -- python -m app bench --source CLIP --baseline DIR
    python -m app.lab.isa check          # what numpy sees, with and without

It needs Linux's CPUID faulting (``cpuid_fault`` in /proc/cpuinfo) and a C
compiler. Not a perfect stand-in: the cores, caches and clocks stay this
machine's; quote it as "AVX2 kernels on <this CPU>".
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SHIM_SOURCE = Path(__file__).with_name("avx2_only.c")
# glibc picks its own string/memory routines by CPU too; hide AVX-512 from it as well.
GLIBC_TUNABLES = "glibc.cpu.hwcaps=-AVX512F,-AVX512BW,-AVX512CD,-AVX512DQ,-AVX512VL,-AVX512ER,-AVX512PF"
NUMPY_PROBE = ("import numpy._core._multiarray_umath as m; f = m.__cpu_features__; "
               "print(' '.join(k for k in ('AVX2', 'AVX512F', 'AVX512_SKX', 'AVX512VNNI') "
               "if f.get(k)) or 'none')")


class ShimUnavailable(RuntimeError):
    pass


def cpuid_faulting() -> bool:
    try:
        return " cpuid_fault" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def build_shim(cache: Path | None = None) -> Path:
    """Compile the shim once per source version; returns the .so path."""
    if not cpuid_faulting():
        raise ShimUnavailable("this kernel or CPU cannot fault CPUID (no cpuid_fault in /proc/cpuinfo)")
    if not SHIM_SOURCE.is_file():
        raise ShimUnavailable(f"{SHIM_SOURCE.name} is not in this install: run it from a "
                              "source checkout")
    source = SHIM_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:12]
    # per user and private: whatever lies there is preloaded into every command
    cache = cache or Path(tempfile.gettempdir()) / f"facelandmarks-isa-{os.getuid()}"
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    if cache.stat().st_uid != os.getuid() or cache.stat().st_mode & 0o077:
        raise ShimUnavailable(f"{cache} is not a private folder of this user")
    shared = cache / f"avx2_only-{digest}.so"
    if not shared.exists():
        with tempfile.TemporaryDirectory(dir=cache) as work:
            partial = Path(work) / shared.name
            result = subprocess.run(
                ["cc", "-O2", "-shared", "-fPIC", "-o", str(partial), str(SHIM_SOURCE), "-ldl"],
                capture_output=True, text=True)
            if result.returncode != 0:
                raise ShimUnavailable(
                    f"cannot compile {SHIM_SOURCE.name}: {result.stderr.strip()}")
            partial.replace(shared)
    return shared


def avx2_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    shim = str(build_shim())
    env["LD_PRELOAD"] = f"{shim} {env['LD_PRELOAD']}" if env.get("LD_PRELOAD") else shim
    env["GLIBC_TUNABLES"] = ":".join(filter(None, (env.get("GLIBC_TUNABLES"), GLIBC_TUNABLES)))
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.lab.isa", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    run = sub.add_parser("avx2", help="run COMMAND seeing AVX2 only")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    sub.add_parser("check", help="print the SIMD levels numpy sees, natively and under the shim")
    args = parser.parse_args(argv)
    try:
        env = avx2_env()
    except ShimUnavailable as error:
        print(f"isa: {error}", file=sys.stderr)
        return 2
    if args.what == "check":
        for label, run_env in (("native", None), ("avx2", env)):
            seen = subprocess.run([sys.executable, "-c", NUMPY_PROBE], env=run_env,
                                  capture_output=True, text=True, check=True).stdout.strip()
            print(f"{label}: {seen}")
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --")
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    sys.exit(main())
