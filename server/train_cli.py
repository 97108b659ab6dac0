"""`diffusion-ls train`: train the embedded model from scratch on a corpus, or fine-tune it on your own code.

    diffusion-ls train --corpus build/corpus/train.jsonl --out build/run1 --minutes 120      # from scratch
    diffusion-ls train --corpus ~/src/myproject --minutes 10                                 # fine-tune on a repo
    diffusion-ls train --export build/run1 --to engine/assets/model                          # ship a checkpoint

A directory corpus is walked for source files of the languages infill/ knows; a .jsonl corpus holds one
{"text", "lang"} object per line (tools/build_corpus.py writes one). Fine-tuning starts from the shipped model and
writes to a user directory; point the server at it with the `modelPath` setting.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from engine import DEFAULT_MODEL_DIR

SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", "build", "dist", "target", ".tox"}


def user_model_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "diffusion-ls" / "models" / "finetuned"


def read_corpus(path: Path, max_bytes: int = 200_000, limit: int | None = None) -> list:
    from infill.languages import language_for
    from infill.training import SourceFile

    files: list[SourceFile] = []
    if path.is_file() and path.suffix == ".jsonl":
        with path.open() as fh:
            for line in fh:
                rec = json.loads(line)
                files.append(SourceFile(rec["text"], rec.get("lang", "python"), rec.get("path", ""),
                                        rec.get("package", "")))
                if limit and len(files) >= limit:
                    break
        return files
    if not path.is_dir():
        raise SystemExit(f"corpus {path} is neither a directory nor a .jsonl file")
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(names):
            p = Path(root) / name
            lang = language_for(str(p))
            if lang is None:
                continue
            try:
                if p.stat().st_size > max_bytes:
                    continue
                text = p.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if "\0" not in text and text.strip():  # a directory is one repository: its files are each other's context
                files.append(SourceFile(text, lang, p.relative_to(path).as_posix()))
            if limit and len(files) >= limit:
                return files
    return files


def export(ckpt_dir: Path, to: Path, dtype: str = "bf16") -> None:
    """Copy a checkpoint's weights (cast for size), config and tokenizer into a self-contained model directory."""
    import torch

    from engine.model import load_config, load_model, save_model

    src = ckpt_dir / "ckpt" if (ckpt_dir / "ckpt").is_dir() else ckpt_dir
    model = load_model(src)
    cfg = load_config(src)
    extra = {k: v for k, v in cfg.items() if k != "model"}
    save_model(model, to, dtype={"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype],
               extra_config=extra)
    tok = src / "tokenizer.json"
    if not tok.exists():
        tok = ckpt_dir / "tokenizer.json"
    shutil.copyfile(tok, to / "tokenizer.json")
    print(f"exported {src} -> {to}")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", type=Path, help="a source tree, or a .jsonl corpus from tools/build_corpus.py")
    p.add_argument("--out", type=Path, default=None, help="output/checkpoint directory (default: a user directory)")
    p.add_argument("--scratch", action="store_true", help="train from scratch instead of fine-tuning the shipped model")
    p.add_argument("--init", type=Path, default=None, help="start from this model directory's weights")
    p.add_argument("--tokenizer", type=Path, default=None, help="tokenizer.json (default: the shipped model's)")
    p.add_argument("--minutes", type=float, default=None, help="stop after this many minutes (resume later)")
    p.add_argument("--steps", type=int, default=None, help="stop after this many steps")
    p.add_argument("--total-steps", type=int, default=None, help="cosine schedule horizon")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--warmup", type=int, default=None, help="steps of linear warm-up")
    p.add_argument("--certainty", type=float, default=None,
                   help="weight of certainty forcing (entropy of the slots the model gets right; default 0)")
    p.add_argument("--free-capacity", type=float, default=None,
                   help="share of canvases whose capacity is drawn independently of the fill's length (default 0.5)")
    p.add_argument("--ckpt-every", type=int, default=None, help="steps between checkpoints")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--workers", type=int, default=None,
                   help="processes building examples (default: 0 on cpu, all cores but two on cuda)")
    p.add_argument("--total-minutes", type=float, default=None,
                   help="cosine schedule horizon in minutes of training time (instead of --total-steps)")
    p.add_argument("--dim", type=int, default=None)
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--heads", type=int, default=None)
    p.add_argument("--ffn", type=int, default=None)
    p.add_argument("--max-budget", type=int, default=None, help="largest context budget in tokens")
    p.add_argument("--repo-context", type=float, default=None,
                   help="share of examples given repository context (chunks of other files of their package, as the "
                        "server chooses them for repoContextBudget; default: the share the initial model was trained "
                        "with, 0 from scratch)")
    p.add_argument("--repo-budget", type=int, default=None, help="largest repository context budget in tokens")
    p.add_argument("--mix", type=Path, default=None,
                   help="fine-tuning: also draw examples from this general corpus (a .jsonl or a tree), so the model "
                        "keeps what it knew of other code")
    p.add_argument("--mix-share", type=float, default=0.5, help="with --mix: the share of examples drawn from it")
    p.add_argument("--limit-files", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", type=Path, default=None, help="export this run directory's checkpoint and exit")
    p.add_argument("--to", type=Path, default=None, help="with --export: the model directory to write")


def main(args: argparse.Namespace) -> int:
    from dataclasses import replace

    if args.export is not None:
        export(args.export, args.to or DEFAULT_MODEL_DIR)
        return 0
    if args.corpus is None:
        print("diffusion-ls train: --corpus is required", file=sys.stderr)
        return 2
    from engine.model import ModelConfig, load_config
    from engine.tokenizer import Tokenizer
    from engine.train import Example, TrainConfig, set_threads, train
    from infill.training import ExampleConfig, ExampleStream, MixedStream

    set_threads()
    init_from = args.init or (None if args.scratch else DEFAULT_MODEL_DIR)
    init_cfg = load_config(Path(init_from)) if init_from is not None else {}
    tok_path = args.tokenizer or (DEFAULT_MODEL_DIR / "tokenizer.json")
    tok = Tokenizer.from_file(tok_path)
    out = args.out or user_model_dir()
    files = read_corpus(args.corpus, limit=args.limit_files)
    if not files:
        print(f"diffusion-ls train: no source files found in {args.corpus}", file=sys.stderr)
        return 2
    print(f"{len(files)} files, {sum(len(f.text) for f in files) / 1e6:.1f} MB of text", file=sys.stderr)
    mcfg = ModelConfig(vocab_size=tok.vocab_size)
    overrides = {"dim": args.dim, "n_layers": args.layers, "n_heads": args.heads, "ffn_dim": args.ffn}
    mcfg = replace(mcfg, **{k: v for k, v in overrides.items() if v is not None})
    tcfg = TrainConfig(device=args.device, seed=args.seed)
    if init_from is not None and args.init is None:  # fine-tuning the shipped model: gentler and shorter
        tcfg = replace(tcfg, lr=3e-4, warmup=10, total_steps=args.steps or 200, batch_size=8, ckpt_every=25)
    workers = args.workers if args.workers is not None else (
        max(1, (os.cpu_count() or 4) - 2) if args.device.startswith("cuda") else 0)
    t_over = {"total_steps": args.total_steps, "batch_size": args.batch_size, "lr": args.lr,
              "total_minutes": args.total_minutes, "workers": workers, "warmup": args.warmup,
              "ckpt_every": args.ckpt_every, "certainty": args.certainty}
    tcfg = replace(tcfg, **{k: v for k, v in t_over.items() if v is not None})
    ecfg = ExampleConfig()
    if args.max_budget:
        ecfg = replace(ecfg, max_budget=args.max_budget)
    if args.free_capacity is not None:
        ecfg = replace(ecfg, free_capacity_p=args.free_capacity)
    if args.repo_context is not None:
        ecfg = replace(ecfg, repo_p=args.repo_context)
    elif init_from is not None:  # fine-tuning keeps the share of repository examples the model was trained with
        trained = init_cfg.get("examples", {})
        ecfg = replace(ecfg, repo_p=float(trained.get("repo_p", 0.0)),
                       repo_budget=int(trained.get("repo_budget", ecfg.repo_budget)))
    if args.repo_budget is not None:
        ecfg = replace(ecfg, repo_budget=args.repo_budget)

    mix = read_corpus(args.mix) if args.mix is not None and args.mix_share > 0 else []
    if args.mix is not None and args.mix_share > 0 and not mix:
        print(f"diffusion-ls train: no source files found in {args.mix}", file=sys.stderr)
        return 2

    def make_examples(seed: int) -> Iterator[Example]:
        own = ExampleStream(files, tok, ecfg, seed=seed)
        return MixedStream(own, ExampleStream(mix, tok, ecfg, seed=seed + 1), args.mix_share, seed=seed) if mix else own

    out.mkdir(parents=True, exist_ok=True)
    if Path(tok_path).resolve() != (out / "tokenizer.json").resolve():
        shutil.copyfile(tok_path, out / "tokenizer.json")
    extra: dict = {"examples": ecfg.__dict__}
    if init_cfg.get("serving"):  # a fine-tune reads what its model was trained to read (the default repoContextBudget)
        extra["serving"] = init_cfg["serving"]
    if mix:
        extra["mix"] = {"files": len(mix), "share": args.mix_share}
    state = train(mcfg, tcfg, make_examples, tok.special, out, max_steps=args.steps, max_minutes=args.minutes,
                  init_from=init_from, extra_config=extra)
    ckpt = out / "ckpt"
    shutil.copyfile(tok_path, ckpt / "tokenizer.json")
    print(f"trained to step {state.step} ({state.tokens} tokens, {state.seconds / 60:.1f} min); "
          f"model directory: {ckpt}", file=sys.stderr)
    return 0
