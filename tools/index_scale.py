#!/usr/bin/env python3
"""How the workspace index scales: index a large source tree in the background thread, as the server does, while
selecting context for a cursor every 50 ms; report files, windows, definitions, time, memory, and the selections'
latency while indexing ran.

    python tools/index_scale.py DIR [--json]

DIR should be real code with thousands of files (e.g. an installed site-packages: 12,000 Python files).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.workspace import Workspace  # noqa: E402


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    root = Path(args.root).resolve()
    probe = next(root.rglob("*.py"), None)
    text = probe.read_text(encoding="utf-8", errors="replace") if probe else "x = 1\n"
    ws = Workspace()
    done = threading.Event()
    ws.on_progress = lambda phase, n, total: done.set() if phase == "end" else None
    before = rss_kib()
    t0 = time.perf_counter()
    ws.add_root(root)
    ws.start()
    lat = []
    while not done.is_set():  # a completion's context selection, as the engine thread asks for it while indexing
        t = time.perf_counter()
        ws.select(probe or root / "probe.py", text, len(text) // 2)
        lat.append((time.perf_counter() - t) * 1e3)
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    lat.sort()
    # a full pass of Python's cyclic collector stops every thread while it runs: the index is frozen out of it
    # (server.workspace); unfrozen, the same pass walks every object the index holds
    t = time.perf_counter()
    gc.collect()
    frozen_ms = (time.perf_counter() - t) * 1e3
    gc.unfreeze()
    t = time.perf_counter()
    gc.collect()
    unfrozen_ms = (time.perf_counter() - t) * 1e3
    out = {"root_files_indexed": ws.indexed_files, "index_s": round(elapsed, 1), **ws.index.stats(),
           "rss_before_mib": round(before / 1024, 1), "rss_after_mib": round(rss_kib() / 1024, 1),
           "rss_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "selections_while_indexing": len(lat),
           "select_ms_p50": round(lat[len(lat) // 2], 2) if lat else None,
           "select_ms_max": round(lat[-1], 2) if lat else None,
           "full_collection_ms": round(frozen_ms, 1), "full_collection_unfrozen_ms": round(unfrozen_ms, 1)}
    print(json.dumps(out, indent=1) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
