"""sockinspect run-and-capture: every scenario end to end, on loopback and in
network namespaces, checked on the analysis of the capture it produced, with
the assertion API the project offers to its users."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import pytest

import sockinspect
from sockinspect._capture import can_capture
from sockinspect._cli import main
from sockinspect._delays import held_decimals_ms
from sockinspect._run import OWNER_FILE, STATE_DIR_VAR, Owner, _proc_stat, clean_leftovers, cross_check
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
    page = tmp_path / "lab.html"
    code, out, _ = run(capsys, "lab", "--connections", "5", "--requests", "8", "--size", "1M", "-o", str(tmp_path),
                       "--html", str(page))
    assert code == 0
    answers = out[out.index("Part 4:"):]
    for q in "abcdefg":
        match = re.search(rf"^{q}\) (.+)$", answers, re.MULTILINE)
        assert match, f"no answer to {q}"
        assert re.search(r"\d", match.group(1)), f"answer {q} has no measured figure"
    assert "ephemeral range 32768-60999" in answers
    assert "= 0`" in answers  # bind() returning 0, from the trace
    # b): one connection's handshake, whose parts add up (µs rounding aside)
    synack, ack, rtt = map(float, re.search(
        r"SYN/ACK after ([\d.]+) ms, then the client's ACK ([\d.]+) ms later \(handshake RTT ([\d.]+) ms", answers
    ).groups())
    assert abs(synack + ack - rtt) <= 0.002
    # g): a median from the latency sketch shows no more digits than the sketch holds
    median = re.search(r"the median request took ([\d.]+) ms with Nagle on", answers).group(1)
    assert len(median.partition(".")[2]) <= max(held_decimals_ms(float(median)), 0)
    assert len(list(tmp_path.glob("*.pcap"))) == 8
    # the same answers as a page, with their pictures: b) a ladder, f) and g) two plots each
    html = page.read_text()
    sections = dict(re.findall(r'<section class="answer" id="part-4(\w)">(.*?)</section>', html, re.S))
    assert sorted(sections) == list("abcdefg")
    assert '<pre class="ladder">' in sections["b"] and "[S.]" in sections["b"]
    for q, title in (("f", "Time-sequence graph"), ("g", "ACK delays")):
        assert sections[q].count("<svg") == 2
        assert f"<figcaption>{title}, Nagle on" in sections[q] and f"<figcaption>{title}, TCP_NODELAY" in sections[q]
    assert "<code>bind(3," in sections["d"]


@root_only
@pytest.mark.parametrize("scenario", ["echo", "nagle"])
def test_netns_topology(tmp_path, capsys, scenario):
    more = ["--requests", "6"] if scenario == "nagle" else []
    code, _, err = run(capsys, scenario, "--topology", "netns", *more, "-o", str(tmp_path))
    assert code == 0, err
    cap = sockinspect.analyze(next(tmp_path.glob("*.pcap")))
    conn = cap.tcp[0]
    assert (conn.client.addr, conn.server.addr) == ("10.10.10.3", "10.10.10.2")  # KALI -> R2
    assert leftovers(owner_pid=os.getpid()) == []


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
        (["echo", "--html", "x.html"], "--html is an option of lab"),
        (["lab", "--html", "/no/such/folder/lab.html"], "no such folder to write it in"),
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


# --- Stopped by a signal, or killed: nothing is left behind -------------------------------------

TOPOLOGY = "netns" if os.geteuid() == 0 and shutil.which("ip") else "loopback"
READY_S = 120  # a busy 2-core machine: wide bands, and a readiness sign rather than a fixed sleep


def _eventually(check: Callable[[], object], what: str, timeout: float = READY_S,
                proc: subprocess.Popen | None = None) -> object:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the run ended ({proc.returncode}) before {what}: {proc.stderr.read()[-500:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.05)
    return found


def _sockinspect(tmp_path: Path, *argv: str, **popen) -> subprocess.Popen:
    env = {**os.environ, STATE_DIR_VAR: str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen}
    return subprocess.Popen([sys.executable, "-m", "sockinspect", *argv], cwd=tmp_path, env=env, **popen)


def _start_long_run(tmp_path: Path) -> subprocess.Popen:
    """A handshake run far too long to end by itself, once its server runs and two clients have
    finished (their accounting records are written): the capture and the programs are going."""
    proc = _sockinspect(tmp_path, "run-and-capture", "handshake", "--connections", "100000",
                        "--topology", TOPOLOGY, "-o", str(tmp_path / "out"), stdout=subprocess.DEVNULL)
    _eventually(lambda: list((tmp_path / "out").glob(".work-*/sent-3.jsonl")), "two clients finished", proc=proc)
    return proc


def _processes_of(tmp_path: Path) -> list[str]:
    """Live processes (not zombies) whose command line names ``tmp_path``: the run and its programs."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = _proc_stat(int(entry.name))
        except OSError:
            continue
        if str(tmp_path) in cmdline and state is not None and state[0] not in "ZX":
            found.append(f"{entry.name}: {cmdline[:150]}")
    return found


def _left_behind(tmp_path: Path, pid: int) -> dict[str, list[str]]:
    return {"netns": leftovers(owner_pid=pid), "processes": _processes_of(tmp_path),
            "folders": [str(p) for p in (tmp_path / "out").glob(".work-*")],
            "records": [p.name for p in (tmp_path / "state").glob("run-*.json")]}


NOTHING = {"netns": [], "processes": [], "folders": [], "records": []}


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_the_run_and_removes_all_it_made(tmp_path, signo):
    proc = _start_long_run(tmp_path)
    assert TOPOLOGY == "loopback" or leftovers(owner_pid=proc.pid)  # the namespaces were there
    proc.send_signal(signo)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signo, err
    assert err.splitlines()[-1].startswith(f"sockinspect run-and-capture: stopped by {signal.Signals(signo).name};")
    # A program started just as the signal came may have missed the runner's list; its parent-death
    # signal, sent as the runner exits, ends it a moment later.
    _eventually(lambda: not _processes_of(tmp_path), "no program outlives the runner", timeout=30)
    assert _left_behind(tmp_path, proc.pid) == NOTHING
    assert (tmp_path / "out" / "handshake.pcap").exists()  # what was captured so far is kept


@pytest.mark.parametrize("then", ["cleanup", "next run"])
def test_after_sigkill_the_programs_die_and_the_rest_is_removed_later(tmp_path, then):
    proc = _start_long_run(tmp_path)
    proc.kill()
    proc.communicate(timeout=60)
    # The parent-death signal ends every program; the namespaces and folder stay for now.
    _eventually(lambda: not _processes_of(tmp_path), "the programs died with their runner", timeout=30)
    left = _left_behind(tmp_path, proc.pid)
    assert len(left["folders"]) == 1 and len(left["records"]) == 1
    assert len(left["netns"]) == (2 if TOPOLOGY == "netns" else 0)
    if then == "cleanup":
        done = _sockinspect(tmp_path, "cleanup", "--json", str(tmp_path / "out"))
        out, err = done.communicate(timeout=60)
        assert done.returncode == 0, err
        # Namespaces of other runs on this machine are not in this test's records: kept, and not counted here.
        items = [i for i in json.loads(out)["items"] if i["owner_pid"] is not None]
        assert sorted((i["kind"], i["name"], i["action"]) for i in items) == sorted(
            [("netns", n, "removed") for n in left["netns"]] + [("folder", left["folders"][0], "removed")])
        assert all(i["owner_pid"] == proc.pid for i in items)
    else:
        done = _sockinspect(tmp_path, "run-and-capture", "echo", "--topology", TOPOLOGY, "-o", str(tmp_path / "out"))
        _, err = done.communicate(timeout=180)
        assert done.returncode == 0, err
        netns = {0: "0 network namespaces", 2: "2 network namespaces"}[len(left["netns"])]
        assert f"removed what killed runs (pid {proc.pid}) left behind: {netns}, 1 work folder\n" in err
    assert _left_behind(tmp_path, proc.pid) == NOTHING


def test_cleanup_leaves_a_live_runs_namespaces_and_folder_alone(tmp_path):
    proc = _start_long_run(tmp_path)
    try:
        before = _left_behind(tmp_path, proc.pid)
        done = _sockinspect(tmp_path, "cleanup", "--json", str(tmp_path))
        out, err = done.communicate(timeout=60)
        assert done.returncode == 0, err
        # Other runs on this machine (their namespaces are not in this test's records) are kept too.
        items = [i for i in json.loads(out)["items"] if i["owner_pid"] == proc.pid]
        assert items and all(i["action"] == "kept" and "still going" in i["reason"] for i in items)
        assert {i["name"] for i in items} == {*before["netns"], *before["folders"]}
        after = _left_behind(tmp_path, proc.pid)
        assert (after["netns"], after["folders"], after["records"]) == (before["netns"], before["folders"],
                                                                       before["records"])
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert _left_behind(tmp_path, proc.pid) == NOTHING


def _gone_owner() -> Owner:
    """The owner record of a process that has ended."""
    sleeper = subprocess.Popen(["sleep", "60"])
    owner = replace(Owner.me(), pid=sleeper.pid, start=_proc_stat(sleeper.pid)[1])
    sleeper.kill()
    sleeper.wait()
    return owner


def _folder(parent: Path, name: str, owner: Owner | None) -> Path:
    path = parent / name
    path.mkdir()
    (path / "server-1.log").write_text("a log")
    if owner is not None:
        (path / OWNER_FILE).write_text(json.dumps({"owner": asdict(owner)}))
    return path


def test_cleanup_removes_only_a_gone_owners_folders_of_this_user(tmp_path, monkeypatch):
    monkeypatch.setenv(STATE_DIR_VAR, str(tmp_path / "state"))
    gone = _gone_owner()
    assert gone.state() == "gone" and Owner.me().state() == "running"
    out = tmp_path / "captures" / "echo"
    out.mkdir(parents=True)
    dead = _folder(out, ".work-dead", gone)
    live = _folder(out, ".work-live", Owner.me())
    other = _folder(out, ".work-other", replace(gone, uid=gone.uid + 1))
    unmarked = _folder(out, ".work-unmarked", None)
    users = _folder(out, ".work", gone)  # not a name sockinspect makes
    dry = clean_leftovers([tmp_path / "captures"], dry_run=True)
    assert [(i.name, i.action) for i in dry if i.action != "kept"] == [(str(dead), "would remove")]
    assert dead.exists()
    items = {i.name: i for i in clean_leftovers([tmp_path / "captures"])}
    assert items[str(dead)].action == "removed" and not dead.exists()
    assert items[str(live)].action == "kept" and "still going" in items[str(live)].reason
    assert items[str(other)].action == "kept" and f"uid {gone.uid + 1}" in items[str(other)].reason
    assert items[str(unmarked)].action == "kept" and "no owner.json" in items[str(unmarked)].reason
    assert str(users) not in items
    assert all(p.exists() for p in (live, other, unmarked, users))



def _in_time(call: Callable[[], object], timeout: float = 20.0) -> object:
    """``call()``'s result, failing (not hanging) when it takes longer than ``timeout``."""
    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(call()), daemon=True)
    worker.start()
    worker.join(timeout)
    assert done, f"still running after {timeout} s"
    return done[0]


def test_cleanup_keeps_a_folder_whose_owner_file_is_no_regular_file(tmp_path, monkeypatch):
    """A FIFO hung clean-up (and run-and-capture -o, which cleans its folder first), a
    symlink to /dev/zero read until memory ran out: such a folder is kept, with the reason."""
    monkeypatch.setenv(STATE_DIR_VAR, str(tmp_path / "state"))
    gone = _gone_owner()
    out = tmp_path / "captures"
    out.mkdir()
    fifo, zero, big, bad, junk = (_folder(out, f".work-{n}", None) for n in ("fifo", "zero", "big", "bad", "junk"))
    os.mkfifo(fifo / OWNER_FILE)
    (zero / OWNER_FILE).symlink_to("/dev/zero")
    (big / OWNER_FILE).write_text(json.dumps({"owner": asdict(gone), "pad": "x" * 100_000}))
    (bad / OWNER_FILE).write_text(json.dumps({"owner": {**asdict(gone), "pid": str(gone.pid)}}))
    (junk / OWNER_FILE).write_text("[" * 4000)
    for dry_run in (True, False):
        items = {i.name: i for i in _in_time(functools.partial(clean_leftovers, [out], dry_run=dry_run))}
        assert {name: items[str(name)].action for name in (fifo, zero, big, bad, junk)} == dict.fromkeys(
            (fifo, zero, big, bad, junk), "kept")
        assert "owner.json is a FIFO, not a regular file" in items[str(fifo)].reason
        assert "owner.json is a symlink, not a regular file" in items[str(zero)].reason
        assert "owner.json is larger than 4096 bytes" in items[str(big)].reason
        assert "owner.json has a malformed owner" in items[str(bad)].reason
        assert "owner.json is not JSON" in items[str(junk)].reason
    assert all(p.exists() for p in (fifo, zero, big, bad, junk))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to give a folder to another user")
def test_cleanup_keeps_another_users_folder_whatever_its_owner_file_claims(tmp_path, monkeypatch):
    """Another user can write an owner.json naming our uid and a gone pid: the folder
    itself must be ours too."""
    monkeypatch.setenv(STATE_DIR_VAR, str(tmp_path / "state"))
    gone = _gone_owner()
    out = tmp_path / "captures"
    out.mkdir()
    forged = _folder(out, ".work-forged", gone)
    os.chown(forged, 65534, -1)
    linked = out / ".work-linked"
    linked.symlink_to(_folder(tmp_path, ".work-target", gone))
    record = tmp_path / "state" / "run-1-1.json"  # a record naming both
    record.parent.mkdir()
    record.write_text(json.dumps({"schema_version": 1, "owner": asdict(gone), "command": "x", "netns": [],
                                  "folders": [str(forged), str(linked)]}))
    for dry_run in (True, False):
        items = {i.name: i for i in clean_leftovers([out], dry_run=dry_run)}
        assert items[str(forged)].action == "kept"
        assert items[str(forged)].reason == "the folder belongs to uid 65534, not to this user"
        assert items[str(linked)].action == "kept" and "symlink" in items[str(linked)].reason
    assert (forged / "server-1.log").exists() and (tmp_path / ".work-target" / "server-1.log").exists()
    assert not record.exists()  # nothing it names is this user's to remove
    items = {i.name: i for i in clean_leftovers([out])}  # found in the folder, not in a record
    assert items[str(forged)].action == "kept" and "belongs to uid 65534" in items[str(forged)].reason
    assert forged.exists()


@pytest.mark.parametrize("change", [{"folders": [None]}, {"folders": "/tmp"}, {"netns": [1]}, {"owner": None},
                                    {"owner": {"pid": 1}}, {"netns": ["../../etc/x"]}, {"folders": ["relative"]}])
def test_cleanup_keeps_what_a_malformed_state_record_names(tmp_path, monkeypatch, change):
    """A record with "folders": [null] ended in a TypeError traceback: a malformed record
    is not known as a run's; it and the folders it names are kept, with the reason."""
    monkeypatch.setenv(STATE_DIR_VAR, str(tmp_path / "state"))
    gone = _gone_owner()
    folder = _folder(tmp_path, ".work-listed", gone)
    record = tmp_path / "state" / f"run-{gone.pid}-{gone.start}.json"
    record.parent.mkdir()
    doc = {"schema_version": 1, "owner": asdict(gone), "command": "x", "netns": [], "folders": [str(folder)]}
    if "folders" in change and isinstance(change["folders"], list):
        change = {"folders": [str(folder), *change["folders"]]}
    record.write_text(json.dumps({**doc, **change}))
    items = clean_leftovers()
    assert record.exists() and folder.exists()
    mine = [i for i in items if i.name == str(folder)]
    if isinstance(change.get("folders", []), list):
        assert [i.action for i in mine] == ["kept"]
        assert mine[0].owner_pid == (gone.pid if "owner" not in change else 1 if change["owner"] else None)
        assert f"the record {record} " in mine[0].reason and "not known as a run's" in mine[0].reason


def test_cleanup_usage(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(STATE_DIR_VAR, str(tmp_path / "state"))
    with pytest.raises(SystemExit) as exc:
        main(["cleanup", "--help"])
    assert exc.value.code == 0 and "--dry-run" in capsys.readouterr().out
    assert main(["cleanup", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err == f"sockinspect cleanup: error: {tmp_path / 'missing'}: no such folder\n"
    (tmp_path / "capture.pcap").write_bytes(b"")
    assert main(["cleanup", str(tmp_path / "capture.pcap")]) == 2
    assert capsys.readouterr().err == f"sockinspect cleanup: error: {tmp_path / 'capture.pcap'}: not a folder\n"
    monkeypatch.chdir(tmp_path)
    assert main(["cleanup", "--json"]) == 0  # other runs' namespaces may be reported as kept
    assert json.loads(capsys.readouterr().out)["dry_run"] is False
