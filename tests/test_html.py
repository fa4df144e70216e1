"""sockinspect report: one self-contained HTML page (sockinspect._html), checked as a
page (nothing from outside, unique ids, text escaped) and for what it holds."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sockinspect import analyze
from sockinspect._html import CaptureSection, chosen, report_page
from sockinspect._ladder import ladder
from sockinspect._packets import connections_packets

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "captures" / "examples"
NAGLE_ON = EXAMPLES / "nagle-on.pcap"
ECHO = EXAMPLES / "echo.pcap"  # three connections


class Page(HTMLParser):
    """What a browser would fetch or run, every id, and the text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: list[str] = []
        self.outside: list[str] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        self.tags.append(tag)
        for name, value in attrs:
            if name == "id":
                self.ids.append(value)
            if name in ("src", "href", "xlink:href") and value and not value.startswith("#"):
                self.outside.append(value)

    def handle_data(self, data):  # noqa: ANN001
        self.text.append(data)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sockinspect", *args], capture_output=True, text=True, timeout=300)


def test_the_page_holds_everything_and_fetches_nothing():
    sections = []
    for path in (NAGLE_ON, ECHO):
        cap, details = connections_packets(path, lambda tcp: chosen(tcp))
        sections.append(CaptureSection(cap, list(cap.tcp), list(cap.udp), details))
    text = report_page(sections)
    page = Page(text)
    assert page.outside == [] and "script" not in page.tags and "@import" not in text
    assert re.search(r"url\((?!#)", text) is None  # the figures' clip paths are in the page
    assert len(page.ids) == len(set(page.ids)), "an id twice: the figures' would clash"
    assert page.tags.count("svg") == 2 * 4  # a time-sequence graph and ACK delays per connection
    assert "The captures side by side" in text
    words = "".join(page.text)
    for s in sections:
        for cp in s.details:  # each ladder, as text, line by line
            assert all(line in words for line in ladder(cp, width=110) if line)
    assert "Stalls of the client's data (24," in words


def test_the_connections_drawn_are_those_that_lost_most_time():
    tcp = list(analyze(EXAMPLES / "handshake.pcap").tcp)
    assert chosen(tcp, 3) == [0, 1, 2]  # nothing to tell them apart: the first
    slow = replace(tcp[7], c2s=replace(tcp[7].c2s, stall_ns_total=80_000_000))
    lossy = replace(tcp[5], s2c=replace(tcp[5].s2c, retransmissions=3))
    tcp[7], tcp[5] = slow, lossy
    assert chosen(tcp, 3) == [0, 5, 7]
    assert chosen(tcp, 0) == []


def test_the_command_draws_the_connections_asked_for(tmp_path):
    out = tmp_path / "r.html"
    run = cli("report", str(ECHO), "--connection", "1", "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"{out}: 1 capture, 1 connection drawn in detail"
    text = out.read_text()
    assert 'id="capture-0-tcp-1"' in text and 'id="capture-0-tcp-0"' not in text
    assert "1 of the 3 TCP connections are drawn below" in text


def test_tables_only_and_names_escaped(tmp_path):
    odd = tmp_path / "a<b>&'.pcap"
    shutil.copy(ECHO, odd)
    out = tmp_path / "r.html"
    run = cli("report", str(odd), "--details", "0", "-o", str(out))
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    assert "<svg" not in text and "a&lt;b&gt;&amp;&#x27;.pcap" in text and "<b>" not in text


def test_a_directory_of_captures_is_every_capture_in_it(tmp_path):
    for name in ("nagle-on.pcap", "nagle-nodelay.pcap"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    out = tmp_path / "r.html"
    run = cli("report", str(tmp_path), "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert "2 captures, 2 connections drawn" in run.stdout and 'id="compare"' in out.read_text()


@pytest.mark.parametrize("args, message", [
    ([str(ECHO), "--connection", "9", "-o", "{tmp}/r.html"], "no TCP connection #9 (it has 3: 0..2)"),
    ([str(ECHO), "-o", "/no/such/dir/r.html"], "No such file or directory"),
    (["{tmp}/missing.pcap", "-o", "{tmp}/r.html"], "no such file"),
    (["-", "-o", "{tmp}/r.html"], "must be a file, not a pipe"),
    ([str(ECHO), "--details", "-1", "-o", "{tmp}/r.html"], "--details"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args, message):
    run = cli("report", *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert run.returncode == 2
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_the_page_is_the_same_twice():
    cap, details = connections_packets(NAGLE_ON, lambda tcp: [0])
    section = CaptureSection(cap, list(cap.tcp), list(cap.udp), details)
    assert report_page([section]) == report_page([section])
    assert re.search(r"\d{4}-\d\d-\d\dT", report_page([section])) is None  # no date in the figures


def test_the_readmes_report_command_says_what_it_says(tmp_path):
    text = (ROOT / "README.md").read_text()
    command, said = re.search(r"^\$ sockinspect (report .*)\n(.*)$", text, flags=re.M).groups()
    args = command.split()
    name = args[args.index("-o") + 1]
    args[args.index("-o") + 1] = str(tmp_path / name)
    run = subprocess.run([sys.executable, "-m", "sockinspect", *args], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == said.replace(name, str(tmp_path / name))


BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(BROWSER is None, reason="no chromium to render the page with (apt-get install chromium)")
def test_a_browser_draws_the_page(tmp_path):
    from PIL import Image

    page, shot = tmp_path / "r.html", tmp_path / "r.png"
    assert cli("report", str(NAGLE_ON), "-o", str(page)).returncode == 0
    subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,4000", page.as_uri()], capture_output=True, timeout=120, check=False)
    image = Image.open(shot).convert("L")
    rows = [sum(1 for x in range(0, 1200, 4) if image.getpixel((x, y)) < 200) for y in range(0, 4000, 8)]
    assert sum(r > 0 for r in rows) > 150  # text, tables and two plots down the page, not a blank one


def test_a_capture_that_cannot_be_read_is_left_out_and_said(tmp_path):
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(NAGLE_ON.read_bytes()[:-30])
    out = tmp_path / "r.html"
    run = cli("report", str(cut), str(tmp_path / "missing.pcap"), str(ECHO), "-o", str(out))
    assert run.returncode == 2  # one capture failed
    assert "missing.pcap: no such file" in run.stderr
    assert "2 captures, 4 connections drawn in detail (1 left out: see above)" in run.stdout
    text = out.read_text()
    assert '<p class="warning">warning: file cut short' in text  # the page, mailed, says it too
