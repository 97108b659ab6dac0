"""`diffusion-ls bench`: speed, on the same holes, side by side. Quality lives in `diffusion-ls eval`.

    diffusion-ls bench [--quick] [--json] [--plot DIR]

1. engine only: every hole's canvas decoded by the default sampler, by one-token-per-forward (confidence order), by
   `lossless` (one token per forward's text, several steps checked per batched forward) and by the autoregressive
   next-token head through the cache; the canvas never grows here, so all four fill the same slots -> nfe, tokens
   per forward, ms per fill, `speedup_vs_one_per_forward`, `speedup_vs_ar` (decoding time; each fill starts from a
   fresh session, so prefill is the same for all and reported apart), and for `lossless` its steps per forward, its
   speedup over one token per forward and how many of its fills differ from one token per forward in the arithmetic
   of batches (`lossless_mismatches`: 0; that run is `one_per_forward_exact`); a model run in another format than
   float32 also has its autoregressive head timed in float32 (`speedup_vs_ar_float32`);
2. per keystroke: typing a line into files of ~512 / ~2k / ~8k tokens, one character at a time, each keystroke the
   server's own pipeline (hole, context, prefill, denoise, post-process) with the per-document context cache and
   with it dropped before every keystroke -> p50/p95, `context_scaling_8k_over_512`, `cache_speedup`;
3. through the real server over stdio: lines typed at several places of the sources (each file opened as the editor
   holds it) as didChange + textDocument/inlineCompletion; request -> first `diffusion/canvas` and -> result (p50,
   p95, max: the tail), against the server's own time for the same requests (the done canvas's
   `ms`) -> `lsp_overhead_ratio`, and against the same pipeline in this process -> `engine_reference_ratio` (a
   looser figure: that pipeline's fills differ from the server's now and then, and with them their forwards).

Holes and files come from Python's standard library sources (present on every install, the same for one Python
version), so a fresh clone needs no data. Times are wall-clock on a possibly busy machine: the load average is
reported next to them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import random
import re
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from server.config import Settings

SIZES = (512, 2048, 8192)  # file sizes in tokens for the per-keystroke leg
SOURCES = ("shlex.py", "textwrap.py", "difflib.py", "argparse.py", "configparser.py", "inspect.py")
HOLE_KINDS = ("rest_of_line", "statement", "arguments", "expression", "control_header")
_TOP_DEF = re.compile(r"(def|class) \w")  # a top-level definition's first line
_MEMBER = re.compile(r"( {4})?(def \w|class \w|@)")  # ... or a class member's (decorators first)
_CODE_LINE = re.compile(r"^ {4,}(return |if |for |self\.\w+ = |[a-z_]\w* = )\S.{12,}")  # indented code, not prose
MAX_HOLE_CAPACITY = 64  # engine-only holes: one-token-per-forward pays one forward per slot, pads included


@dataclass(frozen=True)
class Plan:
    """How much of each leg a run does."""

    holes: int  # engine-only holes
    keystrokes: int  # typed characters per file size and cache mode
    lsp_places: int  # lines typed through the server (and the in-process reference), each in its own file
    lsp_keystrokes: int  # typed characters of each of those lines at most
    frontier_records: int  # humaneval-single records per sampler setting for the quality/speed plot
    max_tokens: int  # the server's maxTokens for the typing legs (a fill that never ends stops here)


FULL = Plan(holes=120, keystrokes=24, lsp_places=8, lsp_keystrokes=48, frontier_records=40,
            max_tokens=Settings().max_tokens)
QUICK = Plan(holes=4, keystrokes=4, lsp_places=1, lsp_keystrokes=4, frontier_records=5, max_tokens=24)
FRONTIER = ("one-per-forward", "threshold:0.99", "threshold:0.9", "threshold:0.7", "threshold:0.5", "threshold:0.3")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="a small run (a couple of minutes on a laptop CPU)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="DIR", help="write PNG plots (denoising, quality frontier, latency) to DIR")
    p.add_argument("--model", help="model directory (default: the shipped model)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads, here and in the server (default: torch's)")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "int8"),
                   help="the embedded model's weights, here and in the server (default auto: bfloat16 where the "
                        "device multiplies it natively)")
    p.add_argument("--budget", type=int, default=Settings().context_budget, help="context tokens around the hole")
    p.add_argument("--max-tokens", type=int, help="cap on one fill while typing (default: the server's; --quick: 24)")
    p.add_argument("--holes", type=int, help="engine-only holes")
    p.add_argument("--keystrokes", type=int,
                   help="typed characters per file size and cache mode (also caps those through the server)")
    p.add_argument("--places", type=int, help="lines typed through the server, each in its own file (default 8; "
                   "--quick: 1)")
    p.add_argument("--no-lsp", action="store_true", help="skip the leg through the language server")
    p.add_argument("--repo-context", type=int, metavar="TOKENS",
                   help="the server leg's repoContextBudget (default: the model's; its chunks come from the documents "
                        "typed in, as no workspace folder is given)")
    p.add_argument("--typing-forwards", type=int, metavar="N",
                   help="typingForwards, here and in the server (default: the server's; 0: no limit)")
    p.add_argument("--data", help="evaluation data folder for the quality plot (default: ../shared/data)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


# -- numbers ----------------------------------------------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of xs, rounded to 0.1."""
    if not xs:
        return None
    s = sorted(xs)
    return round(s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))], 1)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def spread(num: list[float], den: list[float], n: int = 1000, seed: int = 0) -> list[float] | None:
    """A 90% interval of sum(num) / sum(den) over the holes, by resampling them (the bootstrap): how much the ratio
    would move on other holes of the same kinds. num and den are per-hole figures of the same holes."""
    if len(num) != len(den) or len(num) < 2:
        return None
    rng = random.Random(seed)
    k = len(num)
    out = []
    for _ in range(n):
        idx = [rng.randrange(k) for _ in range(k)]
        d = sum(den[i] for i in idx)
        if d:
            out.append(sum(num[i] for i in idx) / d)
    out.sort()
    return [round(out[int(0.05 * len(out))], 3), round(out[int(0.95 * len(out)) - 1], 3)] if out else None


def machine(backend) -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu or platform.machine(),
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "device": backend.device,
        "dtype": backend.memory_format,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "os": platform.system(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "model": backend.model_name,
        "params_m": round(sum(p.numel() for p in backend.model.parameters()) / 1e6, 2)
        if hasattr(backend, "model") else None,
    }


# -- sources ----------------------------------------------------------------------------------------------------------


def source_files() -> list[tuple[str, str]]:
    """(name, text) of the standard-library files holes and typed files come from (this repo's as a fallback)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = [(n, (stdlib / n).read_text(encoding="utf-8")) for n in SOURCES if (stdlib / n).is_file()]
    if not out:
        root = Path(__file__).resolve().parents[1]
        out = [(str(p.relative_to(root)), p.read_text(encoding="utf-8")) for p in sorted(root.glob("*/*.py"))]
    return out


@dataclass
class Hole:
    name: str
    prefix: str
    suffix: str
    context: list[int]
    capacity: int


def engine_holes(tok, n: int, budget: int) -> list[Hole]:
    """n holes cut by tree-sitter spans from the sources, sized as the server sizes them (capped for fairness)."""
    from infill.canvas import spm_context
    from infill.holes import find_hole
    from infill.sizing import pick_spans
    from infill.spans import syntax_spans

    pool = []
    files = source_files()
    per_kind = max(2, math.ceil(n / (len(files) * len(HOLE_KINDS))))  # enough candidates for n holes
    for name, text in files:
        for s in pick_spans(text, syntax_spans(text, "python"), HOLE_KINDS, per_kind):
            pool.append((name, text, s))
    from infill.evaluate import spread

    holes = []
    for name, text, s in spread(pool, n):
        prefix, suffix = text[: s.start], text[s.end :]
        cap = min(find_hole(prefix + suffix, len(prefix), "python", tok).capacity, MAX_HOLE_CAPACITY)
        holes.append(Hole(f"{name}:{s.start}:{s.kind}", prefix, suffix, spm_context(prefix, suffix, tok, budget), cap))
    return holes


def typed_file(tok, target: int, base: int = SIZES[0]) -> tuple[str, int, str]:
    """A file of about `target` tokens (whole lines of the sources), a cursor at the start of a line's code, and that
    line's code (to be typed): (text without the line's code, cursor offset, code).

    Every size holds the same `base`-token file around the same line, with other code added half before and half
    after it: the keystrokes and the context window near the cursor are the same, only the file's size changes, so
    the sizes' ratio measures what the size costs rather than which line happened to be typed.
    """
    files = [text.splitlines(keepends=True) for _, text in source_files()]
    files = [f[:-1] + [f[-1] + "\n"] if f and not f[-1].endswith("\n") else f for f in files]
    lines = [ln for f in files for ln in f]  # the first file, then the others: whole files, so strings stay closed
    counts = [len(ids) for ids in tok.encode_batch(lines[: (target + base) * 2])]

    def take(start: int, want: int) -> int:  # the end of the lines from start holding about `want` tokens
        total, n = 0, start
        while n < len(counts) and total < want:
            total += counts[n]
            n += 1
        return n

    n = take(0, base)
    core = lines[:n]
    # the line to type: an indented statement past 60% of the file, long enough to type a few keystrokes
    order = list(range(int(len(core) * 0.6), len(core))) + list(range(int(len(core) * 0.6)))
    i = next((k for k in order if _CODE_LINE.match(core[k]) and len(core[k].strip()) < 90), order[0])
    # other code before and after, cut where a top-level definition starts (never inside a string or a block)
    extra = max(0, target - base)
    end = take(n, extra // 2)
    while extra and end < len(lines) and not _MEMBER.match(lines[end]):
        end += 1
    tail = lines[n:end] if extra else []
    head: list[str] = []
    want = extra - extra // 2
    for f in files[1:]:
        if want <= 0:
            break
        c = [len(ids) for ids in tok.encode_batch(f)]
        if sum(c) <= want:
            head, want = f + head, want - sum(c)
            continue
        k, got = len(f), 0  # the file's last definitions holding about `want` tokens
        while k > 0 and (got < want or not _TOP_DEF.match(f[k])):
            k -= 1
            got += c[k]
        head, want = f[k:] + head, 0
    lead, code, rest = _split_code(core[i])
    before = "".join(head + core[:i]) + lead
    after = rest + "".join(core[i + 1 :] + tail)
    return before + after, len(before), code


def typing_places(n: int, keystrokes: int) -> list[tuple[str, str, int, str]]:
    """n lines to type through the server, spread over the source files: (name, the file without the line's code,
    the cursor at the line's indentation, the code, at most `keystrokes` characters of it). Whole files, as an editor
    holds them; one line typed is a handful of keystrokes, so the latency's tail needs several lines to show."""
    per_file = []
    for name, text in source_files():
        lines = text.splitlines(keepends=True)
        found = [i for i, ln in enumerate(lines) if _CODE_LINE.match(ln) and len(ln.strip()) < 70]
        step = max(1, len(found) // 3)
        per_file.append([(name, lines, i) for i in found[::step][:3]])
    out = []
    for rank in range(3):  # round robin: every file's first line, then every file's second, ...
        for places in per_file:
            if rank < len(places) and len(out) < n:
                name, lines, i = places[rank]
                lead, code, rest = _split_code(lines[i])
                before = "".join(lines[:i]) + lead
                out.append((f"{name}:{i + 1}", before + rest + "".join(lines[i + 1:]), len(before), code[:keystrokes]))
    return out


def _split_code(line: str) -> tuple[str, str, str]:
    """A line as (its indentation, its code, what follows the code): the code is what a typing leg types."""
    indent = len(line) - len(line.lstrip())
    code = line.strip()
    return line[:indent], code, line[indent + len(code):]


# -- leg 1: engine only -----------------------------------------------------------------------------------------------


def engine_leg(backend, holes: list[Hole], cfg, progress: bool, ar_float32=None) -> tuple[dict, list]:
    """Each hole decoded five ways from a fresh session; returns (summary, states of the first default fill).

    One token per forward runs twice: as a user would run it (the speed reference), and in the arithmetic of batches
    (`exact`), whose text `lossless` must give token for token (small canvases cost more in it). `ar_float32`: the
    same weights in float32, whose next-token head is also timed when the model runs in another format (a one-row
    product gains less from bfloat16 than a canvas does, so the autoregressive baseline is also taken at its best)."""
    from tqdm import tqdm

    from engine.sampler import CanvasSpec, autoregressive, fill
    from infill.evaluate import lossless, one_per_forward

    mask = backend.special.mask
    fast = replace(cfg, grow=False)
    one = one_per_forward(fast)
    variants = (("default", fast), ("one_per_forward", one), ("lossless", lossless(fast)),
                ("one_per_forward_exact", one_per_forward(fast, exact=True)))
    ar_keys = ("ar", "ar_float32") if ar_float32 is not None else ("ar",)
    rows: dict[str, list[tuple[int, int, float, float]]] = {k: [] for k in (*(v[0] for v in variants), *ar_keys)}
    steps, canvases, nfes, mismatches = 0, 0, 0, 0  # lossless's
    demo: list = []
    for i, h in enumerate(tqdm(holes, desc="engine", unit="hole", disable=not progress, leave=False)):
        ids: dict[str, list[int]] = {}
        for key, c in variants[i % 4:] + variants[: i % 4]:  # each variant goes first on a quarter of the holes
            backend.drop_session("bench")
            t0 = time.perf_counter()
            ids[key], st, states = fill(backend, h.context, CanvasSpec.single(h.capacity, mask), c, session="bench")
            total = (time.perf_counter() - t0) * 1e3
            rows[key].append((st.nfe, st.tokens, total - st.prefill_ms, st.prefill_ms))
            if key == "default" and (not demo or len(states) > len(demo)):
                demo = states
            if key == "lossless":
                steps, canvases, nfes = steps + st.steps, canvases + st.canvases, nfes + st.nfe
        mismatches += ids["lossless"] != ids["one_per_forward_exact"]
        for key, b in zip(ar_keys, (backend, ar_float32), strict=False):
            b.drop_session("bench")
            t0 = time.perf_counter()
            _, st = autoregressive(b, h.context, h.capacity, session="bench")
            total = (time.perf_counter() - t0) * 1e3
            rows[key].append((st.nfe, st.tokens, total - st.prefill_ms, st.prefill_ms))
            b.drop_session("bench")
    backend.drop_session("bench")

    def summary(r: list[tuple[int, int, float, float]]) -> dict:
        nfe, tokens = sum(x[0] for x in r), sum(x[1] for x in r)
        return {
            "nfe": round(nfe / len(r), 2),
            "tokens": round(tokens / len(r), 2),
            "tokens_per_forward": round(tokens / nfe, 3) if nfe else None,
            "decode_ms_p50": pct([x[2] for x in r], 0.5),
            "decode_ms_mean": round(sum(x[2] for x in r) / len(r), 1),
            "prefill_ms_p50": pct([x[3] for x in r], 0.5),
            "fill_ms_p50": pct([x[2] + x[3] for x in r], 0.5),
            "ms_per_forward": round(sum(x[2] for x in r) / nfe, 2) if nfe else None,
        }

    out: dict = {k: summary(v) for k, v in rows.items()}
    out["holes"] = len(holes)
    out["capacity_mean"] = round(sum(h.capacity for h in holes) / len(holes), 1)
    out["context_tokens_mean"] = round(sum(len(h.context) for h in holes) / len(holes), 1)
    d, o, a, ll = out["default"], out["one_per_forward"], out["ar"], out["lossless"]
    out["speedup_vs_one_per_forward"] = ratio(o["decode_ms_mean"], d["decode_ms_mean"])
    out["speedup_vs_ar"] = ratio(a["decode_ms_mean"], d["decode_ms_mean"])
    ms = {k: [x[2] for x in v] for k, v in rows.items()}  # per hole, the same holes in every variant
    out["spread"] = {  # 90% bootstrap intervals over the holes, next to each ratio
        "speedup_vs_one_per_forward": spread(ms["one_per_forward"], ms["default"]),
        "speedup_vs_ar": spread(ms["ar"], ms["default"]),
        "lossless_speedup_vs_one_per_forward": spread(ms["one_per_forward"], ms["lossless"]),
        "lossless_speedup_vs_ar": spread(ms["ar"], ms["lossless"]),
        "lossless_nfe_ratio_vs_one_per_forward": spread([x[0] for x in rows["one_per_forward"]],
                                                        [x[0] for x in rows["lossless"]]),
    }
    out["nfe_ratio_vs_one_per_forward"] = ratio(o["nfe"], d["nfe"])
    out["nfe_ratio_vs_ar"] = ratio(a["nfe"], d["nfe"])
    ll["steps_per_forward"] = ratio(steps, nfes)  # one token per forward's steps taken per (batched) forward
    ll["canvases_per_forward"] = ratio(canvases, nfes)  # the batch size, on average
    out["lossless_draft"] = lossless(fast).draft
    out["lossless_mismatches"] = mismatches  # fills that differ from one token per forward's (exact): 0, or a bug
    ox = out["one_per_forward_exact"]
    out["lossless_speedup_vs_one_per_forward_exact"] = ratio(ox["decode_ms_mean"], ll["decode_ms_mean"])
    out["exact_cost"] = ratio(ox["decode_ms_mean"], o["decode_ms_mean"])  # one per forward, exact / as run
    out["lossless_speedup_vs_one_per_forward"] = ratio(o["decode_ms_mean"], ll["decode_ms_mean"])
    out["lossless_speedup_vs_ar"] = ratio(a["decode_ms_mean"], ll["decode_ms_mean"])
    out["lossless_speedup_vs_default"] = ratio(d["decode_ms_mean"], ll["decode_ms_mean"])
    out["lossless_nfe_ratio_vs_one_per_forward"] = ratio(o["nfe"], ll["nfe"])
    if ar_float32 is not None:
        a32 = out["ar_float32"]
        out["speedup_vs_ar_float32"] = ratio(a32["decode_ms_mean"], d["decode_ms_mean"])
        out["lossless_speedup_vs_ar_float32"] = ratio(a32["decode_ms_mean"], ll["decode_ms_mean"])
        out["spread"]["speedup_vs_ar_float32"] = spread(ms["ar_float32"], ms["default"])
        out["spread"]["lossless_speedup_vs_ar_float32"] = spread(ms["ar_float32"], ms["lossless"])
    return out, demo


# -- leg 2: per keystroke ---------------------------------------------------------------------------------------------


def keystroke_leg(backend, settings: Settings, plan: Plan, progress: bool, sizes=SIZES) -> dict:
    """Type a line into files of each size; every keystroke runs the server's pipeline, with the document's cached
    context and from an empty cache, alternately (so both see the same machine load)."""
    from tqdm import tqdm

    from server import fill

    tok = backend.tokenizer
    cfg = settings.sampler()
    out: dict = {}
    bar = tqdm(total=len(sizes) * 2 * plan.keystrokes, desc="keystrokes", unit="key", disable=not progress,
               leave=False)
    for size in sizes:
        text, cursor, code = typed_file(tok, size)
        sessions = {"cache": f"bench-type-{size}", "no_cache": f"bench-type-{size}-cold"}
        runs: dict[str, dict[str, list[float]]] = {m: {"ms": [], "plan": [], "prefill": [], "nfe": []}
                                                   for m in sessions}
        # warm-up: the file as it is, before typing (not timed): the cache holds its context
        fill.run(backend, fill.plan_cursor(text, cursor, "python", tok, settings.context_budget, settings.max_tokens),
                 cfg, sessions["cache"])
        for k in range(1, plan.keystrokes + 1):
            doc = text[:cursor] + code[:k] + text[cursor:]
            for mode, session in sessions.items():
                if mode == "no_cache":
                    backend.drop_session(session)
                t0 = time.perf_counter()
                p = fill.plan_cursor(doc, cursor + k, "python", tok, settings.context_budget, settings.max_tokens)
                t1 = time.perf_counter()
                o = fill.run(backend, p, cfg, session, **settings.as_you_type())
                r = runs[mode]
                r["ms"].append((time.perf_counter() - t0) * 1e3)
                r["plan"].append((t1 - t0) * 1e3)
                r["prefill"].append(o.stats.prefill_ms)
                r["nfe"].append(o.stats.nfe)
                bar.update()
        for session in sessions.values():
            backend.drop_session(session)
        entry: dict = {"file_tokens": len(tok.encode(text)), "typed": code[: plan.keystrokes]}
        for mode, r in runs.items():
            entry[mode] = {
                "p50_ms": pct(r["ms"], 0.5), "p95_ms": pct(r["ms"], 0.95), "prefill_ms_p50": pct(r["prefill"], 0.5),
                "plan_ms_p50": pct(r["plan"], 0.5),  # hole finding and sizing (tree-sitter) + context: not the engine
                "nfe_mean": round(sum(r["nfe"]) / len(r["nfe"]), 2),
                "nfe_max": max(r["nfe"]), "max_ms": round(max(r["ms"]), 1),  # the worst keystroke: runaways show here
            }
        out[str(size)] = entry
    bar.close()
    small, big = out[str(sizes[0])], out[str(sizes[-1])]
    return {
        "files": out,
        "context_scaling_8k_over_512": ratio(big["cache"]["p50_ms"], small["cache"]["p50_ms"]),
        "context_scaling_no_cache": ratio(big["no_cache"]["p50_ms"], small["no_cache"]["p50_ms"]),
        "cache_speedup": ratio(big["no_cache"]["p50_ms"], big["cache"]["p50_ms"]),
        "cache_prefill_speedup": ratio(big["no_cache"]["prefill_ms_p50"], big["cache"]["prefill_ms_p50"]),
    }


# -- leg 3: through the language server -------------------------------------------------------------------------------


class RpcClient:
    """Just enough JSON-RPC over a subprocess' stdio to time a language server: requests, notifications, and a
    timestamp for every notification received."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self._next = 0
        self._pending: dict[int, asyncio.Future] = {}
        self.notes: list[tuple[float, str, dict]] = []  # (perf_counter at arrival, method, params)
        self._note_event = asyncio.Event()
        self._reader: asyncio.Task | None = None

    async def start(self, cmd: list[str], cwd: str, env: dict, stderr) -> None:
        self.proc = await asyncio.create_subprocess_exec(*cmd, cwd=cwd, env=env, stdin=asyncio.subprocess.PIPE,
                                                         stdout=asyncio.subprocess.PIPE, stderr=stderr)
        self._reader = asyncio.create_task(self._read())

    def _send(self, msg: dict) -> None:
        body = json.dumps(msg).encode("utf-8")
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    async def request(self, method: str, params: object, timeout: float = 300) -> object:
        self._next += 1
        fut = asyncio.get_running_loop().create_future()
        self._pending[self._next] = fut
        self._send({"jsonrpc": "2.0", "id": self._next, "method": method, "params": params})
        return await asyncio.wait_for(fut, timeout)

    @property
    def last_id(self) -> int:
        return self._next

    def notify(self, method: str, params: object) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        while True:
            length = 0
            while True:
                line = await stdout.readline()
                if not line:
                    for fut in self._pending.values():
                        if not fut.done():
                            fut.set_exception(ConnectionError("the server exited"))
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            msg = json.loads(await stdout.readexactly(length))
            now = time.perf_counter()
            if "method" not in msg:  # a response
                pending: asyncio.Future | None = self._pending.pop(msg.get("id"), None)  # type: ignore[arg-type]
                if pending is not None and not pending.done():
                    if "error" in msg:
                        err = msg["error"]
                        pending.set_exception(RuntimeError(f"{err.get('message')} ({err.get('code')})"))
                    else:
                        pending.set_result(msg.get("result"))
            elif "id" in msg:  # a request from the server: configuration gets empty sections, the rest null
                items = (msg.get("params") or {}).get("items", [])
                result = [None] * len(items) if msg["method"] == "workspace/configuration" else None
                self._send({"jsonrpc": "2.0", "id": msg["id"], "result": result})
            else:
                self.notes.append((now, msg["method"], msg.get("params") or {}))
                self._note_event.set()

    async def stop(self) -> None:
        if self.proc is None:
            return
        try:
            await self.request("shutdown", None, timeout=10)
            self.notify("exit", None)
            await asyncio.wait_for(self.proc.wait(), 10)
        except (Exception, asyncio.CancelledError):
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()


def _position(text: str, offset: int) -> dict:
    """LSP position of a char offset (the typed text is ASCII: UTF-16 units = chars)."""
    line = text.count("\n", 0, offset)
    return {"line": line, "character": offset - (text.rfind("\n", 0, offset) + 1)}


def keystroke(text: str, cursor: int, code: str, k: int) -> tuple[dict, dict]:
    """The k-th keystroke of typing `code` at `cursor`: (where its character goes, the cursor after it), as LSP
    positions in the document as typed so far (in the untyped text, an offset past the cursor's line end would land
    on the next line)."""
    before = text[:cursor] + code[: k - 1] + text[cursor:]
    after = text[:cursor] + code[:k] + text[cursor:]
    return _position(before, cursor + k - 1), _position(after, cursor + k)


async def _lsp_typing(options: dict, places: list[tuple[str, str, int, str]]) -> list[dict]:
    """One server over stdio; each place opened as its own file, warmed up (its first request, not timed), then its
    line typed: didChange + inlineCompletion per keystroke. Per keystroke: the client's wait (`final`), the first
    canvas's arrival (`first`), the server's own time and forwards (the done canvas's `ms`, `nfe`), and whether it was
    answered from the last completion (`reused`: the keystroke typed the start of what was shown, no forward)."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    client = RpcClient()
    out: list[dict] = []
    with tempfile.TemporaryFile() as err:
        try:
            await client.start([sys.executable, "-m", "server.cli", "serve"], str(root), env, err)
            await client.request("initialize", {"processId": os.getpid(), "rootUri": None, "capabilities": {},
                                                "initializationOptions": options})
            client.notify("initialized", {})
            gc.collect()  # this client's own collector pauses (a full pass took 70 ms) are not the server's latency
            gc.freeze()
            for j, (_name, text, cursor, code) in enumerate(places):
                uri = f"file:///bench/typing{j}.py"
                client.notify("textDocument/didOpen", {"textDocument": {
                    "uri": uri, "languageId": "python", "version": 1, "text": text}})
                doc_pos = {"textDocument": {"uri": uri}, "context": {"triggerKind": 2}}
                await client.request("textDocument/inlineCompletion", {**doc_pos, "position": _position(text, cursor)})
                for k in range(1, len(code) + 1):
                    pos, at = keystroke(text, cursor, code, k)
                    client.notify("textDocument/didChange", {
                        "textDocument": {"uri": uri, "version": 1 + k},
                        "contentChanges": [{"range": {"start": pos, "end": pos}, "text": code[k - 1]}]})
                    seen = len(client.notes)
                    t0 = time.perf_counter()
                    await client.request("textDocument/inlineCompletion", {**doc_pos, "position": at})
                    t1 = time.perf_counter()
                    rid = client.last_id
                    notes = [(t, p) for t, m, p in client.notes[seen:]
                             if m == "diffusion/canvas" and p.get("id") == rid]
                    done = notes[-1][1] if notes and notes[-1][1].get("done") else {}
                    out.append({"place": j, "k": k, "final": (t1 - t0) * 1e3,
                                "first": (notes[0][0] - t0) * 1e3 if notes else None,
                                "reused": done.get("nfe") == 0, "served": done.get("ms"), "nfe": done.get("nfe")})
        except Exception as exc:
            err.seek(0)
            tail = err.read()[-2000:].decode("utf-8", "replace")
            raise RuntimeError(f"{exc}; server stderr: {tail.strip()}") from exc
        finally:
            gc.unfreeze()
            await client.stop()
    return out


def lsp_leg(backend, settings: Settings, options: dict, plan: Plan) -> dict:
    """Typing through the server vs. the same pipeline in this process; ratio of the p50 final latencies, and the
    spread of a keystroke's wait over several lines typed (the tail target: p95 within 2x p50)."""
    from server import fill

    tok = backend.tokenizer
    places = typing_places(plan.lsp_places, plan.lsp_keystrokes)
    lsp = asyncio.run(_lsp_typing(options, places))
    cfg = settings.sampler()
    eng_first: list[float] = []
    eng_final: list[float] = []
    seen: list[float] = []  # when each partial canvas of the current keystroke came out

    def on_partial(_partial: object) -> None:
        seen.append(time.perf_counter())

    for j, (_name, text, cursor, code) in enumerate(places):
        session = f"bench-lsp-reference-{j}"
        fill.run(backend, fill.plan_cursor(text, cursor, "python", tok, settings.context_budget,
                                           settings.max_tokens), cfg, session, **settings.as_you_type())
        for k in range(1, len(code) + 1):
            doc = text[:cursor] + code[:k] + text[cursor:]
            seen.clear()
            t0 = time.perf_counter()
            p = fill.plan_cursor(doc, cursor + k, "python", tok, settings.context_budget, settings.max_tokens)
            fill.run(backend, p, cfg, session, on_partial=on_partial, **settings.as_you_type())
            t1 = time.perf_counter()
            eng_final.append((t1 - t0) * 1e3)
            eng_first.append(((seen[0] if seen else t1) - t0) * 1e3)
        backend.drop_session(session)
    # keystrokes the server answered from its last completion are left out of every figure: the engine reference
    # denoises each one, so they would only measure that shortcut (counted in `typed_ahead`)
    kept = [i for i, r in enumerate(lsp) if not r["reused"]]
    lsp_first = [f for i in kept if (f := lsp[i]["first"]) is not None]
    lsp_final = [lsp[i]["final"] for i in kept]
    out: dict = {
        "places": [name for name, *_ in places],
        "keystrokes": len(lsp),
        "typed_ahead": len(lsp) - len(kept),
        "first_state_ms_p50": pct(lsp_first, 0.5),
        "first_state_ms_p95": pct(lsp_first, 0.95),
        "final_ms_p50": pct(lsp_final, 0.5),
        "final_ms_p95": pct(lsp_final, 0.95),
        "final_ms_max": round(max(lsp_final), 1) if lsp_final else None,
        "nfe_p50": pct([n for i in kept if (n := lsp[i]["nfe"]) is not None], 0.5),
        "nfe_p95": pct([n for i in kept if (n := lsp[i]["nfe"]) is not None], 0.95),
        "engine_first_state_ms_p50": pct([eng_first[i] for i in kept], 0.5),
        "engine_final_ms_p50": pct([eng_final[i] for i in kept], 0.5),
        # the server's own time for the same requests (the done canvas's `ms`): the same fills the client waited for
        "server_ms_p50": pct([ms for i in kept if (ms := lsp[i]["served"]) is not None], 0.5),
    }
    out["final_p95_over_p50"] = ratio(out["final_ms_p95"], out["final_ms_p50"])
    # what going through the server adds, on the same fills: the in-process reference re-denoises each keystroke
    # from its own cache state, and its fills (so its forwards) differ from the server's often enough to swamp it
    out["lsp_overhead_ratio"] = ratio(out["final_ms_p50"], out["server_ms_p50"])
    out["engine_reference_ratio"] = ratio(out["final_ms_p50"], out["engine_final_ms_p50"])
    return out


# -- quality vs speed (for the plot) ----------------------------------------------------------------------------------


def frontier(backend, data: str | None, budget: int, n: int, base_cfg, progress: bool) -> dict:
    """Quality and tokens per forward across sampler settings on a small humaneval-single subset (oracle sizing, so
    only the sampler differs); without the data, held-out holes from the sources with exact match."""
    from infill import evaluate as ev

    try:
        tasks = ev.load_suite("humaneval-single", data, limit=n)
        metric = "pass@1"
    except ev.EvalError:
        with tempfile.TemporaryDirectory() as d:
            for name, text in source_files()[:3]:
                Path(d, name).write_text(text, encoding="utf-8")
            tasks = ev.spread(ev.heldout_tasks(d), n)
        metric = "exact_match"
    sizing = ev.parse_sizing("oracle")
    points = []
    for spec in FRONTIER:
        sampler = ev.parse_sampler(spec, base_cfg)
        r = ev.evaluate(backend, tasks, sizing, sampler, budget, progress=progress)
        points.append({"sampler": spec, "tokens_per_forward": r["tokens_per_forward"], "nfe": r["nfe"],
                       metric: r[metric], "exact_match": r["exact_match"], "edit_similarity": r["edit_similarity"]})
    return {"suite": tasks[0].suite if tasks else None, "n": len(tasks), "metric": metric, "sizing": "oracle",
            "points": points}


# -- main -------------------------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    from engine.backend import EmbeddedBackend
    from engine.model import ModelLoadError

    plan = QUICK if args.quick else FULL
    plan = replace(plan, holes=args.holes or plan.holes, keystrokes=args.keystrokes or plan.keystrokes,
                   lsp_keystrokes=min(plan.lsp_keystrokes, args.keystrokes or plan.lsp_keystrokes),
                   lsp_places=args.places or plan.lsp_places,
                   max_tokens=args.max_tokens or plan.max_tokens)
    progress = not args.no_progress and sys.stderr.isatty()
    t_start = time.perf_counter()
    try:
        backend = EmbeddedBackend(args.model, device=args.device, threads=args.threads, dtype=args.dtype)
    except ModelLoadError as exc:
        print(f"diffusion-ls bench: {exc}", file=sys.stderr)
        return 2
    options = {"contextBudget": args.budget, "maxTokens": plan.max_tokens, "device": args.device, "dtype": args.dtype}
    if args.model:
        options["modelPath"] = str(Path(args.model).resolve())
    import torch

    options["threads"] = torch.get_num_threads()
    if args.repo_context is not None:
        options["repoContextBudget"] = args.repo_context
    if args.typing_forwards is not None:
        options["typingForwards"] = args.typing_forwards
    settings = Settings.model_validate(options)
    result: dict = {"machine": machine(backend), "quick": bool(args.quick), "settings": {
        "context_budget": settings.context_budget, "max_tokens": settings.max_tokens,
        "repo_context_budget": settings.repo_wanted(backend), "typing_forwards": settings.typing_forwards,
        "sampler": asdict(settings.sampler())}}

    legs = result["leg_seconds"] = {"load": round(time.perf_counter() - t_start, 1)}
    t0 = time.perf_counter()
    holes = engine_holes(backend.tokenizer, plan.holes, args.budget)
    # the samplers side by side in one arithmetic, the one lossless needs: `auto`'s int8 batches are not exact, so
    # there the engine leg runs the format `auto` keeps under lossless (the other legs run what a user gets)
    decoder = backend
    if args.dtype == "auto" and not backend.capabilities.exact_batches:
        decoder = EmbeddedBackend(args.model, device=args.device, threads=args.threads, exact_batches=True)
        result["machine"]["engine_dtype"] = decoder.memory_format
    ar_float32 = None
    if decoder.dtype != torch.float32:
        ar_float32 = EmbeddedBackend(args.model, device=args.device, threads=args.threads, dtype="float32")
    engine, demo = engine_leg(decoder, holes, settings.sampler(), progress, ar_float32)
    del ar_float32, decoder
    result["engine"] = engine
    legs["engine"], t0 = round(time.perf_counter() - t0, 1), time.perf_counter()
    keys = keystroke_leg(backend, settings, plan, progress)
    result["keystroke"] = keys
    legs["keystroke"], t0 = round(time.perf_counter() - t0, 1), time.perf_counter()
    if args.no_lsp:
        result["lsp"] = None
    else:
        try:
            result["lsp"] = lsp_leg(backend, settings, options, plan)
        except Exception as exc:  # the server is a separate program: say why its leg is missing, keep the rest
            result["lsp"] = {"error": str(exc)[:2000]}
        legs["lsp"] = round(time.perf_counter() - t0, 1)
    lsp = result["lsp"] or {}
    result.update({
        "tokens_per_forward": engine["default"]["tokens_per_forward"],
        "speedup_vs_one_per_forward": engine["speedup_vs_one_per_forward"],
        "speedup_vs_ar": engine["speedup_vs_ar"],
        "speedup_vs_ar_float32": engine.get("speedup_vs_ar_float32"),
        "lossless_speedup_vs_one_per_forward": engine["lossless_speedup_vs_one_per_forward"],
        "lossless_mismatches": engine["lossless_mismatches"],
        "context_scaling_8k_over_512": keys["context_scaling_8k_over_512"],
        "cache_speedup": keys["cache_speedup"],
        "lsp_overhead_ratio": lsp.get("lsp_overhead_ratio"),
        "first_state_ms_p50": lsp.get("first_state_ms_p50"),
        "final_ms_p50": lsp.get("final_ms_p50"),
    })
    if args.plot:
        from server import bench_plots

        t0 = time.perf_counter()
        result["frontier"] = frontier(backend, args.data, args.budget, plan.frontier_records, settings.sampler(),
                                      progress)
        legs["frontier"] = round(time.perf_counter() - t0, 1)
        result["plots"] = bench_plots.write_all(Path(args.plot), demo, backend.tokenizer, result)
    result["machine"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    result["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(result) if args.json else report(result))
    return 0


def report(r: dict) -> str:
    m, e, k, lsp = r["machine"], r["engine"], r["keystroke"], r["lsp"] or {}
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} with {m['torch_threads']} threads, "
        f"device {m['device']} ({m.get('dtype')}"
        + (f"; engine leg {m['engine_dtype']}, the arithmetic lossless needs" if m.get("engine_dtype") else "")
        + f"), load {m['load_avg_1m']} -> {m['load_avg_1m_end']}; model {m['model']} "
        f"({m['params_m']}M params)",
        f"engine ({e['holes']} holes, mean capacity {e['capacity_mean']}, context {e['context_tokens_mean']} tokens):",
    ]
    for key in ("default", "one_per_forward", "one_per_forward_exact", "lossless", "ar", "ar_float32"):
        s = e.get(key)
        if s is None:  # a result from before that leg
            continue
        lines.append(f"  {key:<21} nfe {s['nfe']:>6}  tokens/forward {s['tokens_per_forward']!s:>6}  decode p50 "
                     f"{s['decode_ms_p50']} ms  ({s['ms_per_forward']} ms/forward)  "
                     f"prefill p50 {s['prefill_ms_p50']} ms")
    lines.append(f"  speedup vs one-per-forward {e['speedup_vs_one_per_forward']}x, vs autoregressive "
                 f"{e['speedup_vs_ar']}x (decoding time)"
                 + (f", vs autoregressive in float32 {e['speedup_vs_ar_float32']}x" if "ar_float32" in e else ""))
    ll = e["lossless"]
    lines.append(f"  lossless (draft {e['lossless_draft']}): {ll['steps_per_forward']} steps and "
                 f"{ll['canvases_per_forward']} canvases per forward, {e['lossless_mismatches']} fills differ from "
                 f"one-per-forward (exact); speedup vs one-per-forward {e['lossless_speedup_vs_one_per_forward']}x, vs "
                 f"autoregressive {e['lossless_speedup_vs_ar']}x, vs default {e['lossless_speedup_vs_default']}x")
    lines.append("per keystroke (p50 / p95 ms):")
    for size, f in k["files"].items():
        lines.append(f"  ~{size:>5} tokens ({f['file_tokens']}): cache {f['cache']['p50_ms']} / {f['cache']['p95_ms']}"
                     f"   no cache {f['no_cache']['p50_ms']} / {f['no_cache']['p95_ms']}")
    lines.append(f"  8k / 512 with cache {k['context_scaling_8k_over_512']}x; cache speedup at 8k "
                 f"{k['cache_speedup']}x (prefill alone {k['cache_prefill_speedup']}x)")
    if "error" in lsp:
        lines.append(f"lsp: failed: {lsp['error']}")
    elif lsp:
        lines.append(f"lsp ({len(lsp.get('places', [])) or 1} lines, {lsp['keystrokes']} keystrokes, "
                     f"{lsp.get('typed_ahead', 0)} answered from the last completion and left out): first canvas p50 "
                     f"{lsp['first_state_ms_p50']} ms, result p50 / p95 / max {lsp['final_ms_p50']} / "
                     f"{lsp['final_ms_p95']} / {lsp['final_ms_max']} ms (p95 {lsp.get('final_p95_over_p50')}x p50; "
                     f"forwards p50 {lsp.get('nfe_p50')}, p95 {lsp.get('nfe_p95')}); the server's own "
                     f"{lsp['server_ms_p50']} ms -> overhead {lsp['lsp_overhead_ratio']}x (in-process pipeline "
                     f"{lsp['engine_final_ms_p50']} ms)")
    if r.get("plots"):
        lines.append("plots: " + ", ".join(r["plots"]))
    lines.append(f"({r['elapsed_s']} s)")
    return "\n".join(lines)
