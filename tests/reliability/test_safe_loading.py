"""Safe loading, audited over the source of engine/, infill/ and server/ (by syntax tree, not by grep: a word in a
string or comment is not a call), and checked on the running server:

- weights load with safetensors; `torch.load` is never called without `weights_only=True`; transformers loads with
  `use_safetensors=True` and never `trust_remote_code=True` (the masked-diffusion backend passes the user's own
  `trustRemoteCode` setting, off by default); nothing imports pickle (or dill, joblib, marshal, shelve);
- nothing calls eval / exec / compile (settings and model configs are data, validated, never run); the evaluation
  runner executes candidate programs in a sandboxed subprocess, from a string it writes there, not in this process;
  the one `compile` is the edit guard's check that Python code still compiles (infill/_syntax.py), whose code object
  is thrown away unrun (the call is a statement of its own);
- no network library is imported outside the remote backends (vLLM, Mercury), `diffusion-ls doctor` (which asks a
  vLLM server the user names) and the sandbox (whose socket use is the code that switches networking off inside it);
  the running server, after a fill, holds no internet socket.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from tests.reliability.harness import Server

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "infill", "server")
UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "joblib", "marshal", "shelve", "cloudpickle"}
NETWORK = {"socket", "ssl", "urllib", "urllib3", "requests", "httpx", "http", "aiohttp", "websockets", "websocket",
           "ftplib", "smtplib", "telnetlib", "xmlrpc", "grpc"}
NETWORK_ALLOWED = {
    "engine/backends/vllm.py",  # the remote backend: talking to a vLLM server is its job
    "engine/backends/mercury.py",  # the hosted diffusion API: talking to it is its job
    "server/doctor.py",  # asks the vLLM server the user names whether it is up; never the public internet
}
# trust_remote_code only as the user's own setting (trustRemoteCode, off by default, logged when on), never True
REMOTE_CODE_SETTING = {"engine/backends/masked.py"}
RUNNERS = {"eval", "exec", "compile", "__import__"}
DATA_LOADERS = {"AutoConfig", "AutoTokenizer", "GenerationConfig"}  # JSON / tokenizer files, no weights


def sources() -> list[tuple[str, ast.Module]]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            out.append((rel, ast.parse(path.read_text(encoding="utf-8"), rel)))
    return out


SOURCES = sources()


def imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, top-level module) of every import, at any depth (imports inside functions count too)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


def calls(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return ""


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value.value if isinstance(k.value, ast.Constant) else "<expr>"
    return None


def test_the_audit_reads_the_real_tree():
    names = {rel for rel, _ in SOURCES}
    assert {"engine/model.py", "engine/backend.py", "server/server.py", "infill/sandbox.py"} <= names


def test_torch_load_only_with_weights_only():
    bad = [f"{rel}:{c.lineno}" for rel, tree in SOURCES for c in calls(tree)
           if _name(c.func).endswith("torch.load") and _kw(c, "weights_only") is not True]
    assert not bad, f"torch.load without weights_only=True: {bad}"


def test_nothing_imports_an_unpickler():
    bad = [f"{rel}:{line} {mod}" for rel, tree in SOURCES for line, mod in imports(tree) if mod in UNPICKLERS]
    assert not bad, bad


def test_weights_load_with_safetensors():
    model = dict(SOURCES)["engine/model.py"]
    loader = next(n for n in ast.walk(model) if isinstance(n, ast.FunctionDef) and n.name == "load_model")
    used = {_name(c.func) for c in calls(loader)}
    assert "load_file" in used  # safetensors.torch.load_file
    assert any(mod == "safetensors" for _, mod in imports(model))
    for rel, tree in SOURCES:  # every from_pretrained of weights insists on safetensors; no remote code
        for c in calls(tree):
            name = _name(c.func)
            if name.endswith(".from_pretrained"):
                allowed = (None, False, "<expr>") if rel in REMOTE_CODE_SETTING else (None, False)
                assert _kw(c, "trust_remote_code") in allowed, f"{rel}:{c.lineno} runs the model's code"
                if name.split(".")[-2] not in DATA_LOADERS:
                    assert _kw(c, "use_safetensors") is True, f"{rel}:{c.lineno} {name} may unpickle weights"


COMPILE_TO_CHECK = {"infill/_syntax.py"}  # python_compiles: compiled to see whether it compiles, never run


def test_nothing_is_evaluated_or_executed():
    def discarded(tree: ast.AST) -> set[int]:  # calls whose result no code can reach: `compile(...)` as a statement
        return {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)}

    bad = [f"{rel}:{c.lineno} {_name(c.func)}" for rel, tree in SOURCES for c in calls(tree)
           if isinstance(c.func, ast.Name) and c.func.id in RUNNERS
           and not (c.func.id == "compile" and rel in COMPILE_TO_CHECK and id(c) in discarded(tree))]
    assert not bad, f"eval/exec/compile in the server's code: {bad}"


def test_candidate_programs_run_only_in_the_sandboxed_subprocess():
    """The evaluation runner's exec lives in the prelude it writes for a separate interpreter, with networking off."""
    from infill import sandbox

    assert "exec(_code" in sandbox._PRELUDE and "_deny" in sandbox._PRELUDE
    tree = dict(SOURCES)["infill/sandbox.py"]
    spawned = [_name(c.func) for c in calls(tree) if _name(c.func).startswith("subprocess.")]
    assert "subprocess.Popen" in spawned


def test_no_network_library_outside_the_remote_backend():
    bad = [f"{rel}:{line} {mod}" for rel, tree in SOURCES for line, mod in imports(tree)
           if mod in NETWORK and rel not in NETWORK_ALLOWED]
    assert not bad, f"network imports at run time: {bad}"


def _inet_inodes(pid: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6"):
        try:
            with open(f"/proc/{pid}/net/{table}", encoding="ascii") as f:
                next(f)
                inodes |= {line.split()[9] for line in f if len(line.split()) > 9}
        except OSError:
            continue
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[len("socket:[") : -1])
    return out


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")
def test_the_running_server_holds_no_internet_socket(shared_server: Server):
    uri = "file:///loading/net.py"
    shared_server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                                   "text": "def f(x):\n    \n"}})
    got = shared_server.call("textDocument/inlineCompletion", {"textDocument": {"uri": uri}, "context": {
        "triggerKind": 2}, "position": {"line": 1, "character": 4}})
    assert "result" in got, got
    pid = shared_server.wire.pid
    sockets = _socket_inodes(pid)  # asyncio's self-pipe is a Unix socket pair: allowed
    assert not sockets & _inet_inodes(pid), "the server opened an internet socket"
    shared_server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
