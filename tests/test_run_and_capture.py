"""sockinspect run-and-capture: every scenario end to end, on loopback and in
network namespaces, checked on the analysis of the capture it produced, with
the assertion API the project offers to its users."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import sockinspect
from sockinspect._capture import can_capture
from sockinspect._cli import main
from sockinspect._run import cross_check
from sockinspect._topology import NetnsPair, leftovers
from sockinspect.assertions import (
    assert_client_port_ephemeral,
    assert_closed_cleanly,
    assert_handshake_complete,
    assert_nagle,
    assert_no_stalls,
    assert_payload_bytes,
    assert_udp_replies,
)

ROOT = Path(__file__).parents[1]
no_capture = can_capture()
pytestmark = pytest.mark.skipif(no_capture is not None, reason=f"live capture impossible here: {no_capture}")
root_only = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                               reason="network namespaces need root and the ip command")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["run-and-capture", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_echo(tmp_path, capsys):
    code, out, _ = run(capsys, "echo", "-o", str(tmp_path))
    assert code == 0
    cap = sockinspect.analyze(tmp_path / "echo.pcap")
    assert len(cap.tcp) == 3
    for conn in cap.tcp:
        assert_handshake_complete(conn)
        assert_client_port_ephemeral(conn)
        assert conn.client.port != conn.server.port
        assert_closed_cleanly(conn)  # the echo closes cleanly: FIN both ways, no RST
    assert "== echo: secret-code echo" in out and "TCP connections" in out


def test_handshake_ports_are_ephemeral_and_distinct(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative output path
    assert run(capsys, "handshake", "--connections", "6", "-o", "h.pcap")[0] == 0
    cap = sockinspect.analyze(tmp_path / "h.pcap")
    ports = [c.client.port for c in cap.tcp]
    assert len(ports) == 6 and len(set(ports)) == 6
    assert len({c.server.port for c in cap.tcp}) == 1
    assert all(c.client_port_ephemeral_linux and c.handshake.complete for c in cap.tcp)


def test_an_output_file_touches_nothing_else_in_its_folder(tmp_path, capsys):
    """-o FILE writes that file only: not the scenario's default name beside it, not a work folder."""
    (tmp_path / "echo.pcap").write_text("the user's own file")
    (tmp_path / ".work").mkdir()
    (tmp_path / ".work" / "notes").write_text("kept")
    code, out, _ = run(capsys, "echo", "-o", str(tmp_path / "mine.pcap"), "--json")
    assert code == 0 and json.loads(out.splitlines()[0])["file"] == str(tmp_path / "mine.pcap")
    assert (tmp_path / "echo.pcap").read_text() == "the user's own file"
    assert (tmp_path / ".work" / "notes").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".work", "echo.pcap", "mine.pcap"]


def test_file_of_50_megabytes_is_captured_whole(tmp_path, capsys):
    size = 50 << 20
    code, _, err = run(capsys, "file", "--size", "50M", "-o", str(tmp_path))
    assert code == 0, err
    assert "CAPTURE INCOMPLETE" not in err
    conn = sockinspect.analyze(tmp_path / "file.pcap").tcp.only()
    header = len(f"SOCKINSPECT-FILE/1 {size} random.bin\n")
    assert_payload_bytes(conn, size + header)  # the file transfer carries exactly the file (and its header)
    assert_closed_cleanly(conn)


def test_send_a_given_file(tmp_path, capsys):
    src = tmp_path / "notes.txt"
    src.write_text("  two lines\n\nwith blanks  \n")
    assert run(capsys, "file", "--file", str(src), "-o", str(tmp_path / "out"))[0] == 0
    conn = sockinspect.analyze(tmp_path / "out" / "file.pcap").tcp.only()
    assert_payload_bytes(conn, src.stat().st_size + len(f"SOCKINSPECT-FILE/1 {src.stat().st_size} notes.txt\n"))


def test_chat_ends_with_fin_both_ways(tmp_path, capsys):
    assert run(capsys, "chat", "-o", str(tmp_path))[0] == 0
    conn = sockinspect.analyze(tmp_path / "chat.pcap").tcp.only()
    assert_closed_cleanly(conn)
    assert conn.c2s.payload_bytes == len("KALI: Hi R2, my name is KALI. Nice to meet you.\n")
    assert conn.s2c.payload_bytes == len("R2: Hi, my name is R2\n")


def test_nagle_stalls_only_with_nagle_on(tmp_path, capsys):
    code, out, _ = run(capsys, "nagle", "--requests", "12", "-o", str(tmp_path))
    assert code == 0
    on = sockinspect.analyze(tmp_path / "nagle-on.pcap").tcp.only()
    off = sockinspect.analyze(tmp_path / "nagle-nodelay.pcap").tcp.only()
    assert_nagle(on, "on")
    assert on.c2s.stalls >= 9  # quick-ACK at the start may spare a request or two
    assert_nagle(off, "off")
    assert_no_stalls(off)  # TCP_NODELAY removes the stalls
    assert "== nagle: side by side" in out


def test_udp_vs_tcp(tmp_path, capsys):
    assert run(capsys, "udp-vs-tcp", "--messages", "5", "-o", str(tmp_path))[0] == 0
    assert_udp_replies(sockinspect.analyze(tmp_path / "udp.pcap").udp.only())
    tcp = sockinspect.analyze(tmp_path / "tcp.pcap").tcp
    assert len(tcp) == 5 and all(c.handshake.complete for c in tcp)


def test_lab_answers_every_question_with_numbers(tmp_path, capsys):
    code, out, _ = run(capsys, "lab", "--connections", "5", "--requests", "8", "--size", "1M", "-o", str(tmp_path))
    assert code == 0
    answers = out[out.index("Part 4:"):]
    for q in "abcdefg":
        match = re.search(rf"^{q}\) (.+)$", answers, re.MULTILINE)
        assert match, f"no answer to {q}"
        assert re.search(r"\d", match.group(1)), f"answer {q} has no measured figure"
    assert "ephemeral range 32768-60999" in answers
    assert "= 0`" in answers  # bind() returning 0, from the trace
    assert len(list(tmp_path.glob("*.pcap"))) == 8


@root_only
@pytest.mark.parametrize("scenario", ["echo", "nagle"])
def test_netns_topology(tmp_path, capsys, scenario):
    code, _, err = run(capsys, scenario, "--topology", "netns", "--requests", "6", "-o", str(tmp_path))
    assert code == 0, err
    cap = sockinspect.analyze(next(tmp_path.glob("*.pcap")))
    conn = cap.tcp[0]
    assert (conn.client.addr, conn.server.addr) == ("10.10.10.3", "10.10.10.2")  # KALI -> R2
    assert leftovers() == []


@root_only
def test_netns_is_removed_after_an_error():
    with pytest.raises(RuntimeError), NetnsPair() as pair:
        assert pair.r2 in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        raise RuntimeError("boom")
    assert leftovers() == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["file", "--size", "lots"], "not a size"),
        (["nagle", "-o", "x.pcap"], "makes several captures"),
        (["file", "--file", "/nonexistent"], "no such file"),
        (["teleport"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2(capsys, argv, message):
    try:
        code = main(["run-and-capture", *argv])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_cross_check_reports_missing_bytes():
    cap = sockinspect.analyze(ROOT / "tests" / "data" / "nagle" / "nodelay.pcap")
    conn = cap.tcp.only()
    sent = [{"proto": "tcp", "local": [conn.client.addr, conn.client.port],
             "peer": [conn.server.addr, conn.server.port], "sent": conn.c2s.payload_bytes + 100}]
    (problem,) = cross_check(cap, sent, dropped=0)
    assert f"sent {conn.c2s.payload_bytes + 100} bytes, the capture holds {conn.c2s.payload_bytes}" in problem
    assert cross_check(cap, [{**sent[0], "sent": conn.c2s.payload_bytes}], dropped=3) == [
        "the kernel dropped 3 packets during the capture"]


@pytest.mark.skipif(os.geteuid() != 0 or not (shutil.which("setpriv") and Path("/usr/bin/python3.11").exists()),
                    reason="needs root to switch to an unprivileged user, setpriv and /usr/bin/python3.11")
def test_unprivileged_user_runs_inside_a_user_namespace():
    import sys
    import tempfile

    site = next(p for p in sys.path if p.endswith("site-packages"))
    with tempfile.TemporaryDirectory(prefix="sockinspect-nobody-") as tmp:  # pytest's tmp_path is root-only
        tmp_path = Path(tmp)
        tmp_path.chmod(0o777)
        _run_as_nobody(tmp_path, site)


def _run_as_nobody(tmp_path: Path, site: str) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": f"{ROOT}:{site}"}
    done = subprocess.run(
        ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--",
         "/usr/bin/python3.11", "-m", "sockinspect", "run-and-capture", "echo", "-o", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    if "no user namespace either" in done.stderr:
        assert done.returncode == 2 and done.stderr.count("\n") == 1
        pytest.skip("unprivileged user namespaces are disabled on this kernel")
    assert done.returncode == 0, done.stderr
    assert len(sockinspect.analyze(tmp_path / "out" / "echo.pcap").tcp) == 3
