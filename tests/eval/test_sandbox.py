"""The sandbox runs programs in a separate limited process: timeout, memory limit, temporary cwd, no network."""

from __future__ import annotations

import os
import socket

import pytest

from infill import sandbox


def test_runs_a_program_with_stdin_and_reports_its_output():
    r = sandbox.run_python("import sys\nprint(sys.stdin.read().upper(), end='')\n", stdin="abc\n")
    assert r.ok and r.returncode == 0 and not r.timed_out
    assert r.stdout == "ABC\n"


def test_a_failing_program_is_not_ok():
    r = sandbox.run_python("assert 1 == 2, 'nope'\n")
    assert not r.ok and r.returncode == 1
    assert "AssertionError: nope" in r.stderr


def test_an_infinite_loop_is_killed_at_the_timeout():
    r = sandbox.run_python("while True:\n    pass\n", timeout=0.5)
    assert r.timed_out and not r.ok and r.returncode is None
    assert r.elapsed_ms < 30_000  # killed, not left to run (the bound only guards against a hang)


def test_children_die_with_the_program():
    code = "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n" \
           "print('started', flush=True)\nwhile True: pass\n"
    r = sandbox.run_python(code, timeout=1.0)
    assert r.timed_out and r.stdout == "started\n"


def test_memory_is_limited():
    r = sandbox.run_python("x = bytearray(3 << 30)\nprint('allocated')\n", memory_mb=512)
    assert not r.ok and "MemoryError" in r.stderr and "allocated" not in r.stdout


def test_runs_in_a_temporary_directory_that_is_removed():
    r = sandbox.run_python("import os\nopen('left.txt', 'w').write('x')\nprint(os.getcwd())\n")
    cwd = r.stdout.strip()
    assert r.ok and cwd != os.getcwd() and os.path.basename(cwd).startswith("dls-sandbox-")
    assert not os.path.exists(cwd)


def test_network_is_forbidden():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.setblocking(False)
        port = server.getsockname()[1]
        code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')\n"
        r = sandbox.run_python(code)
        assert not r.ok and "connected" not in r.stdout
        assert sandbox.NETWORK_DENIED in r.stderr
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody came through


def test_network_is_cut_below_the_socket_module_where_namespaces_exist():
    if sandbox.network_isolation() != "netns":
        pytest.skip("no network namespaces here: only the socket guard applies")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.setblocking(False)
        port = server.getsockname()[1]
        code = f"import _socket\ns = _socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\n" \
               "print('connected')\n"
        r = sandbox.run_python(code)
        assert not r.ok and "connected" not in r.stdout
        with pytest.raises(BlockingIOError):
            server.accept()
