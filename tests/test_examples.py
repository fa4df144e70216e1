"""examples/echo_service: a third-party-style project using the plugin and the CLI.
Its tests pass as shipped, and breaking the service makes the right assertion
fail with the right message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sockinspect._capture import can_capture

EXAMPLE = Path(__file__).parents[1] / "examples" / "echo_service"
BIN = Path(sys.executable).parent
no_capture = can_capture()
pytestmark = pytest.mark.skipif(no_capture is not None, reason=f"live capture impossible here: {no_capture}")


def _run(cmd: list[str], bug: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ECHO_SERVICE_BUG": bug, "PYTHON": sys.executable,
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(cmd, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=120)


def _pytest(bug: str = "") -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], bug)


def test_example_tests_pass():
    result = _pytest()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_reset_bug_fails_the_clean_close_assertion():
    result = _pytest("reset")
    assert result.returncode == 1
    assert "expected no RST, seen 0 RST from the client, 1 from the server" in result.stdout
    assert "sockinspect captures (kept for Wireshark)" in result.stdout


def test_split_reply_bug_fails_the_no_stalls_assertion():
    result = _pytest("split-reply")
    assert result.returncode == 1
    assert "expected at most 0 stalls in s2c, seen " in result.stdout
    assert "delayed ACK packet" in result.stdout


def test_ci_snippet():
    good = _run(["bash", "ci.sh"])
    assert good.returncode == 0, good.stdout + good.stderr
    assert "6 checks passed, 0 failed" in good.stdout
    bad = _run(["bash", "ci.sh"], "reset")
    assert bad.returncode == 1
    assert 'FAIL' in bad.stdout and 'state == SF  (seen "RSTR")' in bad.stdout
