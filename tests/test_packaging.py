"""What pip installs: the runtime declares exactly what it imports, and the reference
programs come as sockinspect.reference_servers, never as a top-level package."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Imports that are not runtime dependencies: the pytest plugin runs inside pytest.
NOT_RUNTIME = {"pytest"}
# distribution -> module
IMPORT_NAMES = {"tabulate": "tabulate", "numpy": "numpy", "numba": "numba", "orjson": "orjson",
                "matplotlib": "matplotlib"}


def imported_top_level(folder: Path) -> set[str]:
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"sockinspect", "__future__"}


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {IMPORT_NAMES[d.split(">")[0].split("=")[0].split("[")[0].strip()] for d in project["dependencies"]}


def test_the_runtime_declares_exactly_what_it_imports():
    used = imported_top_level(ROOT / "sockinspect") | imported_top_level(ROOT / "reference_servers")
    assert used - NOT_RUNTIME == declared()


def test_scapy_and_dpkt_are_test_tools_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    test_extra = " ".join(project["optional-dependencies"]["test"])
    assert "scapy" in test_extra and "dpkt" in test_extra
    assert not any(d.startswith(("scapy", "dpkt")) for d in project["dependencies"])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    got = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
                         capture_output=True, text=True, timeout=300)
    if got.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {got.stderr.strip().splitlines()[-1:]}")
    return next(out.glob("sockinspect-*.whl"))


def test_the_wheel_holds_the_programs_under_sockinspect_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"sockinspect"}
    assert "sockinspect/reference_servers/echo_tcp_server.py" in names


def test_installed_programs_run_as_modules_and_as_scripts(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    as_module = subprocess.run([sys.executable, "-m", "sockinspect.reference_servers.echo_tcp_client", "--help"],
                               capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert as_module.returncode == 0 and "usage:" in as_module.stdout, as_module.stderr
    script = target / "sockinspect" / "reference_servers" / "echo_tcp_server.py"
    as_script = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                               cwd=tmp_path, env=env, timeout=60)
    assert as_script.returncode == 0 and "usage:" in as_script.stdout, as_script.stderr
    top_level = subprocess.run([sys.executable, "-c", "import reference_servers"], capture_output=True,
                               cwd=tmp_path, env=env, timeout=60)
    assert top_level.returncode != 0
