#!/usr/bin/env python3
"""What a big file costs a keystroke, through the server over stdio.

    python tools/big_file.py [--lines 110000] [--keys 8] [--json]

Opens a generated JavaScript file of --lines functions (110,000: 5.3 MB), asks for a completion at its end, then types
--keys characters, each a didChange and an inline completion (Invoked, so every fill is shown); prints the open + first
answer time and each keystroke's. Then, in process, the planning of a fill right after a minified line of 375,000
chars (sizing, context and guard must not read the whole line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.bench import RpcClient, _position  # noqa: E402


async def typing(text: str, keys: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    c = RpcClient()
    with tempfile.TemporaryFile() as err:
        await c.start([sys.executable, "-m", "server.cli", "serve"], str(ROOT), env, err)
        await c.request("initialize", {"processId": os.getpid(), "rootUri": None, "capabilities": {},
                                       "initializationOptions": {"threads": 1}})
        c.notify("initialized", {})
        uri = "file:///big/big.js"
        pos = {"textDocument": {"uri": uri}, "context": {"triggerKind": 1}}
        t = time.perf_counter()
        c.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "javascript", "version": 1,
                                                           "text": text}})
        await c.request("textDocument/inlineCompletion", {**pos, "position": _position(text, len(text))})
        first = time.perf_counter() - t
        times = []
        for k, ch in enumerate(keys):
            p = _position(text, len(text))
            c.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2 + k},
                                                "contentChanges": [{"range": {"start": p, "end": p}, "text": ch}]})
            text += ch
            t = time.perf_counter()
            await c.request("textDocument/inlineCompletion", {**pos, "position": _position(text, len(text))})
            times.append(round((time.perf_counter() - t) * 1e3, 1))
        await c.stop()
    return {"open_and_first_ms": round(first * 1e3, 1), "keystroke_ms": times}


def minified_plan_ms() -> list[float]:
    from engine.backend import EmbeddedBackend
    from server import fill
    from server.config import Settings

    tok, s = EmbeddedBackend(threads=1).tokenizer, Settings()
    line = "var x=" + "a.b(c,d)+e[f]*g-h;" * 20_833 + "\n"
    out = []
    for text, offset in ((line + "var b = a +", len(line) + 11), ("var b = a +\n" + line, 11)):
        t = time.perf_counter()
        fill.plan_cursor(text, offset, "javascript", tok, s.context_budget, s.max_tokens)
        out.append(round((time.perf_counter() - t) * 1e3, 1))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=110_000)
    ap.add_argument("--keys", default="f1(2, 3)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    text = "".join(f"function f{i}(a, b) {{ return a + b * {i}; }}\n" for i in range(a.lines)) + "var total = "
    out = {"file_mb": round(len(text.encode()) / 1e6, 1), **asyncio.run(typing(text, a.keys)),
           "minified_line_plan_ms": minified_plan_ms()}
    print(json.dumps(out, indent=1) if a.json else out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
