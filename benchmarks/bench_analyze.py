"""sockinspect side by side with the tools a user would pick instead: speed, CPU and memory.

    .venv/bin/python benchmarks/bench_analyze.py [--large] [--repeat 3] [--tools a,b] [--json]
    .venv/bin/python benchmarks/bench_analyze.py --install-nfstream   # once: NFStream in a venv of its own

The capture is generated once by ``capture.py`` into ``--dir`` and reused:
1,000,000 packets over 10,000 connections by default, 10,000,000 over 100,000
with ``--large`` (5.4 GB), or ``--packets``/``--connections``. Each tool reads
the file and writes its per-connection report to a scratch file (so a pipe
costs nothing), which is then checked for the packets and connections it counted:

- sockinspect: ``python -m sockinspect analyze --json FILE`` (the full analysis, one
  document: every connection is kept until the end);
- sockinspect --jsonl: the same analysis, each connection written as it ends
  (memory follows the connections open at once);
- tshark: ``tshark -q -n -z conv,tcp -r FILE`` (per-conversation frames and bytes);
- tcptrace: ``tcptrace -n -l -r FILE``, its long per-connection report with RTT
  statistics, the closest to sockinspect's (``-n``: no name lookups);
- NFStream: ``NFStreamer(source=FILE, statistical_analysis=True)`` iterated to the
  last flow, run by the python of ``--nfstream-venv``, with its default meters.

A tool that is not installed is reported as such. Runs are interleaved (every
tool's run 1, then every tool's run 2, ...) because a shared machine is noisy;
wall and CPU time are the best of ``--repeat`` runs, the peak RSS the largest.
CPU time is user + system of the whole process tree (``os.wait4``), and peak RSS
the sum over the tree (see ``proctree.py``). Packets/s is the file's packets over
the wall time; ``sockinspect ×`` is sockinspect's packets/s over the tool's. The
1-minute load average is printed before and after, with the core count.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from capture import CAPTURE_VERSION, generate
from proctree import Run, run
from tabulate import tabulate

ROOT = Path(__file__).resolve().parent.parent
NFSTREAM_SNIPPET = """\
import json, sys
from nfstream import NFStreamer
flows = packets = 0
for flow in NFStreamer(source=sys.argv[1], statistical_analysis=True):
    flows += 1
    packets += flow.bidirectional_packets
print(json.dumps({"flows": flows, "packets": packets}))
"""


@dataclass
class Tool:
    name: str
    command: Callable[[Path], list[str]]
    counts: Callable[[Path], tuple[int | None, int | None]]  # (packets, connections) from the tool's output
    version: str = ""


def _sockinspect_counts(out: Path) -> tuple[int | None, int | None]:
    with open(out) as f:
        doc = json.loads(f.readline())
    return doc.get("packets"), len(doc.get("tcp", ()))


def _sockinspect_lines_counts(out: Path) -> tuple[int | None, int | None]:
    with open(out) as f:
        for line in f:
            if '"record":"capture"' in line:
                doc = json.loads(line)
                return doc.get("packets"), doc.get("tcp_connections")
    return None, None


def _tshark_counts(out: Path) -> tuple[int | None, int | None]:
    packets = conversations = 0
    frames = re.compile(r"(\d+)\s+\d+\s+(?:bytes|[kMGT]B)")
    with open(out) as f:
        for line in f:
            if "<->" in line:
                conversations += 1
                packets += int(frames.findall(line)[2])  # <- frames, -> frames, total frames
    return packets, conversations


def _tcptrace_counts(out: Path) -> tuple[int | None, int | None]:
    packets = connections = None
    with open(out) as f:
        for line in f:
            if m := re.match(r"(\d+) packets seen, (\d+) TCP packets traced", line):
                packets = int(m[2])
            elif m := re.match(r"(\d+) TCP connections traced", line):
                connections = int(m[1])
                break
    return packets, connections


def _nfstream_counts(out: Path) -> tuple[int | None, int | None]:
    doc = json.loads(out.read_text())
    return doc["packets"], doc["flows"]


def _first_line(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return next((line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()), "")


def _sockinspect_version() -> str:
    head = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    changed = _first_line(["git", "-C", str(ROOT), "status", "--porcelain", "--", "sockinspect"])
    return f"git {head}" + (" with uncommitted changes in sockinspect/" if changed else "") if head else ""


def find_tools(nfstream_venv: Path) -> tuple[list[Tool], list[str]]:
    """The tools installed here, and the names of those that are not."""
    sockinspect = [sys.executable, "-m", "sockinspect", "analyze"]
    tools = [Tool("sockinspect", lambda f: [*sockinspect, "--json", str(f)], _sockinspect_counts,
                  _sockinspect_version()),
             Tool("sockinspect --jsonl", lambda f: [*sockinspect, "--jsonl", str(f)], _sockinspect_lines_counts,
                  _sockinspect_version())]
    missing = []
    if tshark := shutil.which("tshark"):
        tools.append(Tool("tshark", lambda f: [tshark, "-q", "-n", "-z", "conv,tcp", "-r", str(f)],
                          _tshark_counts, _first_line([tshark, "--version"])))
    else:
        missing.append("tshark")
    if tcptrace := shutil.which("tcptrace"):
        tools.append(Tool("tcptrace", lambda f: [tcptrace, "-n", "-l", "-r", str(f)], _tcptrace_counts,
                          _first_line([tcptrace, "-v"])))
    else:
        missing.append("tcptrace")
    python = nfstream_venv / "bin" / "python"
    version = _first_line([str(python), "-c", "import nfstream; print('nfstream', nfstream.__version__)"])
    if version.startswith("nfstream "):
        tools.append(Tool("NFStream", lambda f: [str(python), "-c", NFSTREAM_SNIPPET, str(f)], _nfstream_counts,
                          version))
    else:
        missing.append("NFStream")
    return tools, missing


def install_nfstream(venv: Path) -> None:
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--upgrade", "pip", "nfstream"],
                   check=True, stdout=sys.stderr)


def _warm(path: Path) -> None:
    """Read the file once, so that every tool, first or last, finds it in the page cache."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(8 << 20)
        while f.readinto(buf):
            pass


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def bench(tools: list[Tool], path: Path, packets: int, repeat: int, scratch: Path) -> list[dict]:
    runs: dict[str, list[Run]] = {t.name: [] for t in tools}
    counted: dict[str, tuple[int | None, int | None]] = {}
    failed: dict[str, str] = {}
    for i in range(repeat):
        for tool in tools:
            if tool.name in failed:
                continue
            out = scratch / f"out-{tool.name}.txt"
            try:
                r = run(tool.command(path), out)
                counted[tool.name] = tool.counts(out)
            except (RuntimeError, ValueError, KeyError, IndexError, OSError) as exc:
                failed[tool.name] = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else repr(exc)
                print(f"{tool.name}: failed: {exc}", file=sys.stderr)
                continue
            finally:
                out.unlink(missing_ok=True)
                out.with_suffix(".err").unlink(missing_ok=True)
            runs[tool.name].append(r)
            print(f"run {i + 1}/{repeat} {tool.name:12} {r.wall_s:8.2f} s wall {r.cpu_s:8.2f} s CPU "
                  f"{r.peak_rss_mib:8.0f} MiB  load {_load()[0]}", file=sys.stderr)
    results = []
    for tool in tools:
        rs = runs[tool.name]
        row = {"tool": tool.name, "version": tool.version, "command": " ".join(tool.command(path)),
               "capture": path.name, "packets": packets, "runs": [asdict(r) for r in rs]}
        if tool.name in failed:
            row["failed"] = failed[tool.name]
        if rs:
            wall = min(r.wall_s for r in rs)
            row |= {"wall_s": wall, "cpu_s": min(r.cpu_s for r in rs), "packets_per_s": packets / wall,
                    "peak_rss_mib": max(r.peak_rss_mib for r in rs),
                    "packets_counted": counted[tool.name][0], "connections_counted": counted[tool.name][1]}
        results.append(row)
    mine = next((r for r in results if r["tool"] == "sockinspect" and "wall_s" in r), None)
    for r in results:
        if mine and "wall_s" in r:
            r["sockinspect_speedup"] = mine["packets_per_s"] / r["packets_per_s"]
    return results


def _table(results: list[dict]) -> str:
    rows = []
    for r in results:
        if "wall_s" not in r:
            rows.append([r["tool"], r["capture"], "", "", "", "", "", "", f"failed: {r.get('failed', '')}"[:60]])
            continue
        speedup = f"{r['sockinspect_speedup']:.2f}" if "sockinspect_speedup" in r else ""
        rows.append([r["tool"], r["capture"], r["packets_counted"], r["connections_counted"], f"{r['wall_s']:.2f}",
                     f"{r['cpu_s']:.2f}", f"{r['packets_per_s']:,.0f}", speedup, f"{r['peak_rss_mib']:,.0f}"])
    return tabulate(rows, ["tool", "capture", "packets seen", "connections", "wall s", "CPU s", "packets/s",
                           "sockinspect ×", "peak RSS MiB"], disable_numparse=True,
                    colalign=("left", "left", "right", "right", "right", "right", "right", "right", "right"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--packets", type=int, default=1_000_000)
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--large", action="store_true", help="the 10,000,000-packet, 100,000-connection capture")
    p.add_argument("--dir", type=Path, default=Path("/tmp/sockinspect-bench"), help="where the captures are kept")
    p.add_argument("--repeat", type=int, default=3, help="runs per tool; the best time counts (default 3)")
    p.add_argument("--tools", help="comma-separated subset of: sockinspect,sockinspect --jsonl,tshark,tcptrace,"
                   "NFStream")
    p.add_argument("--nfstream-venv", type=Path, help="venv with nfstream (default: DIR/nfstream-venv)")
    p.add_argument("--install-nfstream", action="store_true", help="first create that venv and pip install nfstream")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--save", type=Path, help="also write the JSON document to this file")
    args = p.parse_args()
    if args.large:
        args.packets, args.connections = 10_000_000, 100_000
    args.dir.mkdir(parents=True, exist_ok=True)
    venv = args.nfstream_venv or args.dir / "nfstream-venv"
    if args.install_nfstream:
        install_nfstream(venv)
    tools, missing = find_tools(venv)
    if args.tools:
        wanted = {name.strip().lower() for name in args.tools.split(",")}
        tools = [t for t in tools if t.name.lower() in wanted]
        missing = [m for m in missing if m.lower() in wanted]
    path = args.dir / f"bench-{CAPTURE_VERSION}-{args.packets}p-{args.connections}c.pcap"
    if not path.exists():
        generate(path, args.packets, args.connections)
    _warm(path)
    cores = os.cpu_count()
    load_before = _load()
    results = bench(tools, path, args.packets, args.repeat, args.dir)
    load_after = _load()
    machine = {"cores": cores, "usable_cores": len(os.sched_getaffinity(0)), "load_before": load_before,
               "load_after": load_after}
    doc = json.dumps({"capture": str(path), "packets": args.packets, "connections": args.connections,
                      "repeat": args.repeat, "machine": machine, "not_installed": missing, "results": results},
                     indent=2)
    if args.save:
        args.save.write_text(doc + "\n")
    if args.json:
        print(doc)
        return 0
    print(_table(results))
    for name in missing:
        print(f"{name}: not installed, not measured"
              + (" (--install-nfstream installs it)" if name == "NFStream" else f" (apt-get install {name})"))
    print(f"best of {args.repeat}, runs interleaved; {cores} cores; load average (1, 5, 15 min) "
          f"{', '.join(map(str, load_before))} before, {', '.join(map(str, load_after))} after")
    for t in tools:
        print(f"{t.name}: {t.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
