"""The toolchain's command line: help, errors, and an idempotent build."""
import subprocess
import sys

from app.paths import REPO_ROOT


def run_models(*args):
    return subprocess.run([sys.executable, "-m", "models", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_help_lists_the_commands():
    result = run_models("--help")
    assert result.returncode == 0
    for command in ("build", "verify", "export_cnn68"):
        assert command in result.stdout


def test_unknown_command_exits_2():
    result = run_models("frobnicate")
    assert result.returncode == 2 and "unknown command" in result.stderr


def test_build_twice_does_nothing_the_second_time():
    # make setup has already built everything: a second build converts nothing
    result = run_models("build")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "facenet casia: all variants present" in result.stdout
    assert "facenet keras: all variants present" in result.stdout
    assert "cnn68: present" in result.stdout
