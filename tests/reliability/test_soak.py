"""A short soak (`python -m server.soak` with few requests): typing through the real server into a few documents,
with type-ahead cancels, rewrites and infills, and a stream of fresh documents (more than the engine keeps context
caches for). Memory is asserted loosely (RSS at the end within 1.5x of after the warm-up), the context caches within
the LRU's bound; latency is only reported (tests check behaviour; `python -m server.soak --requests 10000` measures).
"""

from __future__ import annotations

import asyncio

from server.soak import Soak
from tests.reliability.harness import count

REQUESTS = 100


def test_a_short_soak_keeps_memory_and_caches_bounded():
    r = asyncio.run(Soak(REQUESTS, documents=3, churn=10, keep_open=2, seed=1).run())
    count("soak", requests=r["requests"], crashes=r["crashes"], stale=r["stale"], rss_warm_kib=r["rss_warm_kib"],
          rss_end_kib=r["rss_end_kib"], rss_ratio=r["rss_ratio"], p95_drift=r["latency_ms"]["p95_drift"],
          cache_sessions_max=r["cache"]["sessions_max"], cache_limit=r["cache"]["limit_sessions"])

    assert r["exit_code"] == 0 and r["crashes"] == 0 and r["unanswered"] == 0 and r["stale"] == 0, r
    assert r["requests"] >= REQUESTS and r["results"] > REQUESTS // 2, r
    assert set(r["errors"]) <= {"-32800", "-32801", "-32802"}, r["errors"]  # cancelled / superseded, nothing else
    assert r["rss_ratio"] is not None and r["rss_ratio"] <= 1.5, r
    cache = r["cache"]
    assert r["documents_opened"] > cache["limit_sessions"]  # more documents than caches: the LRU had to evict
    assert cache["within_bounds"] is True and 1 <= cache["sessions_max"] <= cache["limit_sessions"], cache
    assert cache["bytes_max"] <= cache["limit_sessions"] * cache["session_bytes"], cache


def test_the_rss_curve_is_drawn(tmp_path):
    from server.bench_plots import plot_rss

    soak = {"requests": 1000, "rss_series_kib": [[500, 600_000], [1000, 610_000]], "rss_warm_kib": 600_000,
            "rss_ratio": 1.017, "model": "m", "load_avg_1m": 1.0}
    out = tmp_path / "rss.png"
    plot_rss(out, soak)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5_000
