"""The programs a lab's submission consists of, and where they come from: a
student's folder (run as ``python3 FILE``, with whatever they hard-coded) or
sockinspect's reference programs (told the address and port to use)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import SockinspectError

REFERENCE = Path(__file__).resolve().parents[1] / "reference_servers"
LAB_FILES = {  # lab -> (server's file, client's file), the names LAB_SPEC gives them
    "echo": ("echo_tcp_server.py", "echo_tcp_client.py"),
    "file": ("tcp_file_transfer_server.py", "tcp_file_transfer_client.py"),
    "chat": ("chat_server.py", "chat_client.py"),  # the lab runs nc; these are the reference's names
}
MAX_SOURCE_BYTES = 1 << 20


class SubmissionError(SockinspectError):
    """A submission cannot be run: a program is missing, unreadable or not Python."""


@dataclass(frozen=True)
class Program:
    """One program of a lab: a student's file, or a reference program."""

    name: str  # its file name, as the lab gives it
    path: Path
    reference: bool  # sockinspect's own: takes --host and --port, runs from its package
    extra: tuple[str, ...] = ()  # arguments a reference program always gets (--raw, --quiet-plain)

    @property
    def copy_folder(self) -> bool:
        """Whether the files beside it are copied into each folder it runs in."""
        return not self.reference

    def script(self, folder: Path) -> Path:
        return self.path if self.reference else folder / self.path.name

    def server_args(self, addr: str, port: int = 0) -> list[str]:
        return ["--host", addr, "--port", str(port), *self.extra] if self.reference else []

    def client_args(self, addr: str, port: int) -> list[str]:
        return ["--host", addr, "--port", str(port), *self.extra] if self.reference else []


def reference(lab: str) -> tuple[Program, Program]:
    """The reference server and client of ``lab``, speaking the lab's own plain file
    protocol: the bytes alone, no header, no answer."""
    server, client = LAB_FILES[lab]
    plain = lab == "file"
    return (Program(server, REFERENCE / server, True, ("--quiet-plain",) if plain else ()),
            Program(client, REFERENCE / client, True, ("--raw",) if plain else ()))


def submission(lab: str, folder: Path) -> tuple[Program, Program]:
    """The student's server and client of ``lab`` in ``folder``; SubmissionError when one is
    missing or does not compile (it is compiled here, never run)."""
    if not folder.is_dir():
        raise SubmissionError(f"{folder}: no such folder")
    programs = []
    for name in LAB_FILES[lab]:
        path = folder / name
        if not path.is_file():
            raise SubmissionError(f"{path}: no such file (the lab names its programs {' and '.join(LAB_FILES[lab])})")
        source = path.read_bytes()[:MAX_SOURCE_BYTES + 1]
        if len(source) > MAX_SOURCE_BYTES:
            raise SubmissionError(f"{path}: larger than {MAX_SOURCE_BYTES >> 20} MiB; not a lab program")
        try:
            compile(source, str(path), "exec", dont_inherit=True)
        except SyntaxError as exc:
            raise SubmissionError(f"{path}: syntax error at line {exc.lineno}: {exc.msg}") from None
        except ValueError as exc:  # NUL bytes
            raise SubmissionError(f"{path}: not a Python program ({exc})") from None
        programs.append(Program(name, path.resolve(), False))
    return programs[0], programs[1]
