"""sockinspect conform: students' submissions (tests/data/conform, one per defect class, and
a correct one written with plain sockets) run on the lab's hosts; each defect is found and
blamed on the right program, and the reference programs pass every check."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sockinspect._cli import main
from sockinspect._documents import conform_document
from sockinspect._topology import leftovers
from sockinspect.conform import DEFAULT_TIMEOUT_S, Grade, conform
from sockinspect.conform.checks import Check
from sockinspect.conform.programs import SubmissionError, submission
from sockinspect.conform.report import batch_row, table
from sockinspect.conform.sandbox import parse_probe, read_regular

ROOT = Path(__file__).parents[1]
DATA = ROOT / "tests" / "data" / "conform"
root_only = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("strace") is None,
                               reason="the lab's hosts need root, the ip command and strace")
QUICK = 1.0  # --timeout for defective submissions: a hung program costs this much
# (a submission that must pass gets DEFAULT_TIMEOUT_S: on a busy machine a correct client
# started in its sandbox may take longer than QUICK, and it never waits the timeout out)


# --- what needs no hosts ----------------------------------------------------------------------

def test_a_probe_finds_where_the_client_connects_and_what_it_reads(tmp_path):
    trace = "\n".join([
        f'100 openat(AT_FDCWD, "{tmp_path}/tcp_file_transfer_client.py", O_RDONLY|O_CLOEXEC) = 3',
        '100 openat(AT_FDCWD, "/usr/lib/python3.11/encodings/__init__.py", O_RDONLY|O_CLOEXEC) = 3',
        '100 openat(AT_FDCWD, "send_me.txt", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)',
        f'100 openat(AT_FDCWD, "{tmp_path}/notes.txt", O_RDONLY|O_CLOEXEC) = 4',
        '100 openat(AT_FDCWD, "log.txt", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 5',
        '100 connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT',
        '100 connect(3, {sa_family=AF_INET, sin_port=htons(6000), sin_addr=inet_addr("10.10.10.2")}, 16)'
        ' = -1 ECONNREFUSED (Connection refused)',
        '100 connect(4, {sa_family=AF_INET, sin_port=htons(7000), sin_addr=inet_addr("10.10.10.2")}, 16) = 0',
    ])
    probe = parse_probe(trace, tmp_path)
    assert probe.port == 6000  # the first connect to an IP address
    assert probe.opened == ["send_me.txt", "notes.txt"]  # not the program, the stdlib, or what it writes


def test_ipv6_connects_are_found(tmp_path):
    line = ('7 connect(3, {sa_family=AF_INET6, sin6_port=htons(5050), sin6_flowinfo=htonl(0), '
            'inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0')
    assert parse_probe(line, tmp_path).port == 5050


def test_a_submission_that_cannot_run_is_refused_before_running(tmp_path):
    with pytest.raises(SubmissionError, match="no such folder"):
        submission("echo", tmp_path / "nobody")
    with pytest.raises(SubmissionError, match="echo_tcp_server.py: no such file"):
        submission("echo", tmp_path)
    shutil.copytree(DATA / "echo" / "correct_plain", tmp_path / "s")
    (tmp_path / "s" / "echo_tcp_client.py").write_text("print('unclosed'\n")
    with pytest.raises(SubmissionError, match=r"echo_tcp_client.py: syntax error at line 1"):
        submission("echo", tmp_path / "s")
    server, client = submission("echo", DATA / "echo" / "correct_plain")
    assert (server.name, client.name, server.reference) == ("echo_tcp_server.py", "echo_tcp_client.py", False)


@pytest.mark.parametrize("argv, message", [
    (["file", "--client-file", "../etc/passwd"], "--client-file is a file name in the program's folder"),
    (["echo", "--server-file", "out.txt"], "--client-file and --server-file are options of the file lab"),
    (["echo", "--submission", "/no/such/folder"], "/no/such/folder: no such folder"),
    (["echo", "--submissions", __file__], "not a folder"),
])
def test_bad_arguments_are_one_line_and_exit_2(capsys, argv, message):
    assert main(["conform", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("argv", [["nolab"], ["echo", "--timeout", "0"], ["echo", "--timeout", "x"],
                                  ["echo", "--json", "--csv"], ["echo", "--submission", "a", "--submissions", "b"]])
def test_bad_usage_exits_2(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(["conform", *argv])
    assert exc.value.code == 2


def test_the_table_shows_each_failure_with_what_was_expected_and_seen():
    grade = Grade("echo", "alice", "netns", (
        Check("reply: the lab's request 1", "server", False, "Secret code not found.", "Secret code not found",
              "request 1, packets 3-12"),
        Check("client joins its arguments with single spaces", "client", True, "'a b'", "'a b'", "transcript line 1"),
    ), "captures/conform/echo-alice.pcap", 0)
    text = table(grade)
    assert "FAIL reply: the lab's request 1 (server, request 1, packets 3-12)" in text
    assert "  expected: Secret code not found.\n  seen:     Secret code not found\n" in text
    assert "score: 1/2 checks passed; failing: server" in text
    doc = conform_document(grade)
    assert doc["score"] == {"passed": 1, "total": 2} and doc["passed"] is False
    row = batch_row("alice", doc)
    assert (row["server_failures"], row["client_failures"], row["both_failures"], row["score"]) == (1, 0, 0, 50.0)


# --- running submissions ----------------------------------------------------------------------

_GRADES: dict[tuple, Grade] = {}


def _grade(tmp_path: Path, lab: str, name: str | None, timeout: float = QUICK, **kw: str) -> Grade:
    """The grade of tests/data/conform/LAB/NAME (None: the reference), run once per session."""
    key = (lab, name, timeout, *sorted(kw.items()))
    if key not in _GRADES:
        folder = None if name is None else DATA / lab / name
        _GRADES[key] = conform(lab, folder, tmp_path / f"{lab}-{name}.pcap", timeout=timeout, **kw)
        assert not leftovers(os.getpid()), "namespaces left behind"
    return _GRADES[key]


def _failed(grade: Grade) -> dict[str, str]:
    return {c.name: c.program for c in grade.checks if not c.passed}


@root_only
@pytest.mark.parametrize("lab", ["file"])  # echo's: test_the_cli_json_follows_the_schema
def test_the_reference_programs_pass_every_check(tmp_path, lab):
    grade = _grade(tmp_path, lab, None, timeout=DEFAULT_TIMEOUT_S)
    assert grade.ok, _failed(grade)
    assert len(grade.checks) >= 25
    assert {c.program for c in grade.checks} == {"server", "client", "both"}  # each pairing was run


@root_only
@pytest.mark.parametrize("lab", ["echo", "file"])
def test_a_correct_submission_in_another_style_passes(tmp_path, lab):
    grade = _grade(tmp_path, lab, "correct_plain", timeout=DEFAULT_TIMEOUT_S)
    assert grade.ok, _failed(grade)


# submission -> (checks that must fail, the programs failing checks may blame)
ECHO_DEFECTS = {
    "wrong_reply": ({"reply: the lab's request 1", "reply: the lab's request 2", "reply: only digits"},
                    {"server", "both"}),
    "client_join": ({"client joins its arguments with single spaces", "transcript: the lab's request 1"},
                    {"client", "both"}),
    "client_send_label": ({"client prints 'Sent:' and six spaces", "transcript: the lab's request 1"},
                          {"client", "both"}),
    "single_recv": ({"reply: longer than one recv buffer"}, {"server"}),
    "one_client": ({"server keeps serving a second and a third client",
                    "server answers a client while another is connected"}, {"server", "both"}),
    "no_close": ({"server closes each connection once the client has closed its side"}, {"server"}),
    "hangs": ({"transcript: the lab's request 1", "together: the lab's transcript 1"}, {"client", "both"}),
}


@root_only
@pytest.mark.parametrize("name", sorted(ECHO_DEFECTS))
def test_each_echo_defect_is_found_and_blamed_on_its_program(tmp_path, name):
    must_fail, blamed = ECHO_DEFECTS[name]
    failed = _failed(_grade(tmp_path, "echo", name))
    assert must_fail <= failed.keys(), failed
    assert set(failed.values()) <= blamed, failed


def test_the_defects_are_distinct():
    """Each defect shows in its own check: joining and the Sent: label are told apart."""
    assert "client prints 'Sent:' and six spaces" not in ECHO_DEFECTS["client_join"][0]
    assert "client joins its arguments with single spaces" not in ECHO_DEFECTS["client_send_label"][0]


@root_only
def test_a_hanging_client_is_killed_and_says_so(tmp_path):
    grade = _grade(tmp_path, "echo", "hangs")
    seen = next(c.seen for c in grade.checks if c.name == "transcript: the lab's request 1")
    assert seen.startswith(f"timed out after {QUICK:g} s")


@root_only
def test_a_client_joining_without_spaces_is_shown_where(tmp_path):
    grade = _grade(tmp_path, "echo", "client_join")
    check = next(c for c in grade.checks if c.name == "transcript: the lab's request 1")
    assert "Sent:      sfdsdTediscool23432" in check.seen
    assert check.where.startswith("run 1, transcript line 1, packets ")


FILE_DEFECTS = {
    "strip": ({"copy identical: text with blank lines", "copy identical: whitespace at the 1024-byte boundaries",
               "copy identical: a trailing newline", "together: text with blank lines"}, {"server", "both"}),
    "client_strip": ({"client sends: a trailing newline", "client sends: binary data"}, {"client", "both"}),
    "no_close": ({"server closes its copy when the file has arrived"}, {"server"}),
}


@root_only
@pytest.mark.parametrize("name", sorted(FILE_DEFECTS))
def test_each_file_defect_is_found_and_blamed_on_its_program(tmp_path, name):
    must_fail, blamed = FILE_DEFECTS[name]
    failed = _failed(_grade(tmp_path, "file", name))
    assert must_fail <= failed.keys(), failed
    assert set(failed.values()) <= blamed, failed


CHAT_DEFECTS = {
    "no_name": ({"server sends its lines as 'R2: text'", "a plain nc client gets the server's lines as 'R2: text'",
                 "together: R2's line reaches KALI"}, {"server", "both"}),
    "client_no_name": ({"client sends its lines as 'KALI: text'",
                        "a plain nc server gets the client's lines as 'KALI: text'"}, {"client", "both"}),
}


@root_only
@pytest.mark.parametrize("name", sorted(CHAT_DEFECTS))
def test_each_chat_defect_is_found_and_blamed_on_its_program(tmp_path, name):
    must_fail, blamed = CHAT_DEFECTS[name]
    failed = _failed(_grade(tmp_path, "chat", name, timeout=2.0))
    assert must_fail <= failed.keys(), failed
    assert set(failed.values()) <= blamed, failed


@root_only
def test_a_correct_chat_and_the_reference_chat_pass(tmp_path):
    for name in (None, "correct_plain"):
        grade = _grade(tmp_path, "chat", name, timeout=DEFAULT_TIMEOUT_S)
        assert grade.ok, _failed(grade)
        assert {"server shows the lines of a plain nc client", "client shows the lines of a plain nc server",
                "together: KALI's line reaches R2"} <= {c.name for c in grade.checks}


@root_only
def test_file_names_can_be_given(tmp_path):
    grade = _grade(tmp_path, "file", "correct_plain", timeout=DEFAULT_TIMEOUT_S, client_file="file_to_send",
                   server_file="received_file")
    assert grade.ok, _failed(grade)
    wrong = _grade(tmp_path, "file", "correct_plain", server_file="no_such_output")
    assert "no file written" in next(c.seen for c in wrong.checks if c.name == "copy identical: a trailing newline")


@root_only
def test_the_cli_prints_a_table_and_exits_1_on_a_failure(tmp_path, capsys):
    code = main(["conform", "echo", "--submission", str(DATA / "echo" / "single_recv"), "--timeout", str(QUICK),
                 "-o", str(tmp_path / "c.pcap")])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL      server     reply: longer than one recv buffer" in out
    assert "  expected: Digits: 427 Count: 3\n" in out
    assert f"capture: {tmp_path / 'c.pcap'}" in out
    assert (tmp_path / "c.pcap").stat().st_size > 1000


@root_only
def test_the_cli_json_follows_the_schema(tmp_path, capsys):
    jsonschema = pytest.importorskip("jsonschema")
    from sockinspect._schema import for_document, load
    code = main(["conform", "echo", "--json", "-o", str(tmp_path / "c.pcap")])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["passed"] and doc["error"] is None
    jsonschema.validate(doc, for_document(load(), "conform"))


@root_only
def test_a_submission_that_cannot_run_exits_2_with_one_line(tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(DATA / "echo" / "correct_plain", broken)
    (broken / "echo_tcp_server.py").write_text("import time\ntime.sleep(60)\n")  # never listens
    code = main(["conform", "echo", "--submission", str(broken), "--timeout", "1", "-o", str(tmp_path / "c.pcap")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "sockinspect conform: error: echo_tcp_server.py never listened within 1 s\n"
    (broken / "echo_tcp_server.py").write_text("raise SystemExit('no port for me')\n")
    assert main(["conform", "echo", "--submission", str(broken), "-o", str(tmp_path / "c.pcap")]) == 2
    assert "echo_tcp_server.py exited 1 before it listened: no port for me" in capsys.readouterr().err


@root_only
def test_a_batch_gives_one_row_per_student(tmp_path, capsys):
    students = tmp_path / "class"
    shutil.copytree(DATA / "echo" / "correct_plain", students / "alice")
    shutil.copytree(DATA / "echo" / "wrong_reply", students / "bob")
    (students / "carol").mkdir()  # handed in nothing
    code = main(["conform", "echo", "--submissions", str(students), "--csv", "--timeout", str(QUICK),
                 "-o", str(tmp_path / "caps")])
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[0] == ("student,passed,total,score,server_failures,client_failures,both_failures,"
                                   "failed,error")
    rows = {row["student"]: row for row in csv.DictReader(io.StringIO(out))}
    assert out.splitlines()[1] == "alice,27,27,100.0,0,0,0,,"
    assert rows["bob"]["failed"].startswith("reply: the lab's request 1; reply: the lab's request 2;")
    assert rows["bob"]["server_failures"] != "0" and rows["bob"]["client_failures"] == "0"
    assert "echo_tcp_server.py: no such file" in rows["carol"]["error"] and rows["carol"]["total"] == "0"
    assert sorted(p.name for p in (tmp_path / "caps").iterdir()) == ["alice.pcap", "bob.pcap"]


@root_only
def test_the_loopback_topology_gives_the_same_checks(tmp_path):
    grade = conform("echo", DATA / "echo" / "wrong_reply", tmp_path / "lo.pcap", topology="loopback", timeout=QUICK)
    assert grade.topology == "loopback"
    assert set(_failed(grade)) >= ECHO_DEFECTS["wrong_reply"][0]
    assert not leftovers(os.getpid())


@root_only
def test_rootless_inside_a_user_namespace(tmp_path):
    """As in 'unshare -rn' (what a user without root gets): the lab's addresses on the
    namespace's own loopback; the programs run as that user."""
    done = subprocess.run(["unshare", "-rn", "--", sys.executable, "-m", "sockinspect", "conform", "file",
                           "--topology", "loopback", "--submission", str(DATA / "file" / "client_strip"),
                           "--timeout", str(QUICK), "--json", "-o", str(tmp_path / "u.pcap")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    if done.returncode == 2 and "unshare" in done.stderr:
        pytest.skip(f"no user namespaces here: {done.stderr.strip()}")
    doc = json.loads(done.stdout)
    assert done.returncode == 1, done.stderr
    assert {c["program"] for c in doc["checks"] if not c["passed"]} <= {"client", "both"}
    assert "client sends: a trailing newline" in {c["name"] for c in doc["checks"] if not c["passed"]}


@root_only
def test_sigterm_removes_everything(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "sockinspect", "conform", "echo", "--submission",
                             str(DATA / "echo" / "hangs"), "--timeout", "30", "-o", str(tmp_path / "t.pcap")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not leftovers(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # well into the checks
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM; its programs, namespaces and folders are removed" in err
    assert not leftovers(proc.pid)
    alive = subprocess.run(["pgrep", "-f", r"/\.sockinspect-[0-9a-f]+/[0-9]+-(server|client|probe)/"],
                           capture_output=True, text=True).stdout
    assert not alive.strip(), "a program outlived the run"


# --- untrusted programs -----------------------------------------------------------------------

def test_probe_names_are_unescaped_and_normalised(tmp_path):
    trace = "\n".join([
        '9 openat(AT_FDCWD, "donn\\303\\251es.txt", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)',
        '9 openat(AT_FDCWD, "./file_to_send", O_RDONLY|O_CLOEXEC) = 3',
        '9 openat(AT_FDCWD, "../../etc/passwd", O_RDONLY|O_CLOEXEC) = 3',
        '9 openat(AT_FDCWD, "a \\"quoted\\" name", O_RDONLY) = 3',
    ])
    assert parse_probe(trace, tmp_path).opened == ["données.txt", "file_to_send", 'a "quoted" name']


def test_copies_are_read_without_following_links(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"root's only")
    (tmp_path / "copy").symlink_to(secret)
    assert read_regular(tmp_path / "copy", 100) is None
    (tmp_path / "big").write_bytes(b"x" * 1000)
    assert read_regular(tmp_path / "big", 10) == b"x" * 10


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to give folders to user nobody")
def test_folders_are_made_whole_before_a_student_gets_them(tmp_path):
    from sockinspect._run import Lease
    from sockinspect.conform.programs import reference
    from sockinspect.conform.sandbox import NOBODY, Sandbox
    with Lease("conform test") as lease:
        sb = Sandbox(None, tmp_path / "unused.pcap", lease, 1.0)  # type: ignore[arg-type]  # no hosts needed
        try:
            _, student = submission("file", DATA / "file" / "correct_plain")
            mine = sb.folder(student, "client", {"sub/file_to_send": b"data"})
            theirs = sb.folder(reference("file")[0], "server")
            assert (sb.work.stat().st_mode & 0o777) == 0o711  # a program finds its own folder, lists none
            if sb.drop:
                assert {p.stat().st_uid for p in (mine, *mine.rglob("*"))} == {NOBODY}
            assert (mine / "sub" / "file_to_send").read_bytes() == b"data"
            assert (mine / "tcp_file_transfer_client.py").is_file()  # the submission's files beside it
            assert theirs.stat().st_uid == 0 and (theirs.stat().st_mode & 0o777) == 0o700
        finally:
            sb.__exit__(None, None, None)


DAEMON_SERVER = '''
import os, socket, sys, time
if os.fork() == 0:          # a child that leaves its group and outlives the server
    os.setsid()
    if os.fork() == 0:
        time.sleep(300)
    os._exit(0)
exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "real_server.py")).read())
'''


@root_only
def test_what_a_program_forks_dies_with_it(tmp_path):
    folder = tmp_path / "daemon"
    shutil.copytree(DATA / "echo" / "correct_plain", folder)
    (folder / "echo_tcp_server.py").rename(folder / "real_server.py")
    (folder / "echo_tcp_server.py").write_text(DAEMON_SERVER)
    grade = conform("echo", folder, tmp_path / "d.pcap", timeout=DEFAULT_TIMEOUT_S)  # correct: never waits
    assert grade.ok, _failed(grade)
    alive = subprocess.run(["pgrep", "-f", r"/\.sockinspect-[0-9a-f]+/"], capture_output=True, text=True).stdout
    assert not alive.strip(), "a forked child outlived the run"


@root_only
def test_a_server_with_two_ports_is_tried_on_the_one_its_client_uses(tmp_path):
    folder = tmp_path / "two"
    shutil.copytree(DATA / "echo" / "correct_plain", folder)
    source = (folder / "echo_tcp_server.py").read_text()
    (folder / "echo_tcp_server.py").write_text(
        "import socket\n_extra = socket.create_server(('10.10.10.2', 4000))  # a port its client never uses\n"
        + source)
    grade = conform("echo", folder, tmp_path / "t.pcap", timeout=DEFAULT_TIMEOUT_S)  # correct: never waits
    assert grade.ok, _failed(grade)
