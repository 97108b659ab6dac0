"""Engine timings for the default model config: forward time of a canvas over a cached context, and the prefill
time saved by prefix reuse after a one-character edit.

    python tools/engine_timings.py [--context 2048] [--threads 1] [--dim 256 --layers 8 --heads 4 --ffn 704]

Speed does not depend on the weights, so a randomly initialised model of the default architecture is timed (its
positions table is sized for the context asked for); the shipped tokenizer gives realistic ids.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

import torch

from engine import DEFAULT_MODEL_DIR
from engine.cache import KVCache
from engine.model import DiffusionLM, ModelConfig
from engine.tokenizer import Tokenizer


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    xs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        xs.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--dim", type=int, help="time another size than the shipped one (with --layers/--heads/--ffn)")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--ffn", type=int)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tok = Tokenizer.from_file(DEFAULT_MODEL_DIR / "tokenizer.json")
    sizes = {"dim": args.dim, "n_layers": args.layers, "n_heads": args.heads, "ffn_dim": args.ffn}
    cfg = replace(ModelConfig(vocab_size=tok.vocab_size), max_seq_len=args.context + 256,
                  **{k: v for k, v in sizes.items() if v is not None})
    model = DiffusionLM(cfg)
    model.init_weights(0)
    model.eval()
    import sysconfig
    from pathlib import Path

    text = (Path(sysconfig.get_paths()["stdlib"]) / "argparse.py").read_text()
    ids = tok.encode(text)[: args.context]
    cache = KVCache(cfg.n_layers, cfg.n_heads, cfg.head_dim, cfg.max_seq_len)
    x = torch.tensor([ids])
    full_ms = timed(lambda: model.encode(x, cache, 0), args.repeat)
    out = {"params": model.num_params(), "config": cfg.__dict__, "context_tokens": len(ids), "threads": args.threads,
           "prefill_full_ms": round(full_ms, 1)}
    for C in (32, 128):
        canvas = torch.full((1, C), tok.special.mask)
        out[f"canvas{C}_forward_ms"] = round(timed(lambda c=canvas: model.decode(c, cache, len(ids)), args.repeat), 1)
    # one-character edit near the cursor: the SPM layout puts the cursor at the end, so only the tail is recomputed
    edited = tok.encode(text[: len(tok.decode(ids)) - 1] + "x")[: args.context]
    lcp = next((i for i, (a, b) in enumerate(zip(ids, edited)) if a != b),
                                                    min(len(ids), len(edited)))
    tail = torch.tensor([edited[lcp:]])
    out["edit_recomputed_tokens"] = len(edited) - lcp
    out["prefill_after_edit_ms"] = round(timed(lambda: model.encode(tail, cache, lcp), args.repeat), 1)
    out["prefill_saved_ms"] = round(out["prefill_full_ms"] - out["prefill_after_edit_ms"], 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
