"""Run untrusted Python (benchmark programs with a model's fill in them) in a separate, limited process.

Never in-process: every program runs as `python -I` in a fresh temporary directory (its cwd and HOME), with

- a wall-clock timeout (the whole process group is killed when it expires) and a CPU-time limit,
- an address-space limit (`RLIMIT_AS`), a file-size limit and no core dumps,
- no network: a new, empty network namespace (`unshare -n`, or `unshare -rn` without root) where the system
  allows one, and in every case a prelude that replaces `socket.socket` and the name-resolution functions with
  ones that raise, an environment without proxy variables,
- stdin, stdout and stderr as files (a program printing forever hits the file-size limit, not our memory).
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

TIMEOUT_S = 3.0  # HumanEval-infilling's limit per program; SAFIM's per unit test
MEMORY_MB = 1024  # address space: python + a test's data structures, not a runaway allocation
OUTPUT_BYTES = 8 << 20  # file-size limit for anything the program writes, stdout included
READ_BACK = 1 << 20  # at most this much of stdout / stderr is read back

NETWORK_DENIED = "network access is disabled in the sandbox"

# Runs before the program, in the sandboxed interpreter: socket creation and name resolution raise.
_PRELUDE = f"""
import socket as _s
def _deny(*a, **k):
    raise OSError({NETWORK_DENIED!r})
class _NoSocket(_s.socket):
    def __init__(self, *a, **k):
        _deny()
for _n in ("create_connection", "create_server", "getaddrinfo", "gethostbyname", "gethostbyname_ex",
           "gethostbyaddr", "socketpair", "fromfd"):
    setattr(_s, _n, _deny)
_s.socket = _s.SocketType = _NoSocket
del _s, _n, _NoSocket, _deny
import sys as _sys
_sys.argv = ["main.py"]
with open("main.py", encoding="utf-8") as _f:
    _code = compile(_f.read(), "main.py", "exec")
del _f, _sys
exec(_code, {{"__name__": "__main__", "__file__": "main.py", "__builtins__": __builtins__}})
"""


@dataclass(frozen=True)
class RunResult:
    returncode: int | None  # None when killed at the timeout
    stdout: str
    stderr: str
    timed_out: bool
    elapsed_ms: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


@functools.cache
def network_isolation() -> str:
    """How the sandbox cuts the network here: "netns" (a new network namespace) or "socket-guard" (the prelude only)."""
    return "netns" if _unshare_prefix() else "socket-guard"


@functools.cache
def _unshare_prefix() -> tuple[str, ...]:
    """The command prefix that runs a program in a new, empty network namespace; () where the system forbids it."""
    exe = shutil.which("unshare")
    if exe is None or not sys.platform.startswith("linux"):
        return ()
    for prefix in ((exe, "-n"), (exe, "-rn")) if os.geteuid() == 0 else ((exe, "-rn"),):
        try:
            r = subprocess.run([*prefix, "true"], capture_output=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            continue
        if r.returncode == 0:
            return prefix
    return ()


def _limits(timeout: float, memory_mb: int) -> None:
    """In the child before exec: resource limits (the new session is made by start_new_session)."""
    cpu = int(timeout) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    if memory_mb > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_BYTES, OUTPUT_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _env(home: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "no_proxy": "*",
        "NO_PROXY": "*",
    }


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read(READ_BACK).decode("utf-8", "replace")


def run_python(code: str, stdin: str = "", timeout: float = TIMEOUT_S, memory_mb: int = MEMORY_MB) -> RunResult:
    """Run `code` as a script in the sandbox; stdin is fed from a file. Never raises for what the program does."""
    tmp = tempfile.mkdtemp(prefix="dls-sandbox-")
    try:
        with open(os.path.join(tmp, "main.py"), "w", encoding="utf-8") as f:
            f.write(code)
        with open(os.path.join(tmp, "stdin.txt"), "w", encoding="utf-8") as f:
            f.write(stdin)
        out_path, err_path = os.path.join(tmp, "stdout.txt"), os.path.join(tmp, "stderr.txt")
        cmd = [*_unshare_prefix(), sys.executable, "-I", "-c", _PRELUDE]
        t0 = time.perf_counter()
        timed_out = False
        with open(os.path.join(tmp, "stdin.txt"), "rb") as fin, open(out_path, "wb") as fout, \
                open(err_path, "wb") as ferr:
            proc = subprocess.Popen(cmd, cwd=tmp, env=_env(tmp), stdin=fin, stdout=fout, stderr=ferr,
                                    start_new_session=True, preexec_fn=lambda: _limits(timeout, memory_mb))
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc)
        elapsed = (time.perf_counter() - t0) * 1e3
        return RunResult(None if timed_out else proc.returncode, _read(out_path), _read(err_path), timed_out, elapsed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the program and anything it started (its own session), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
