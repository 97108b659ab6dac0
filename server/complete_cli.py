"""`diffusion-ls complete FILE:LINE:COL`: fill the hole at a position (1-based, as compilers print) and print it.

    diffusion-ls complete src/app.py:12:9
    diffusion-ls complete src/app.py:12:9 --stream --steps 8 --strategy confidence
    diffusion-ls complete src/app.py:12:9 --root . --repo-context 256

--stream redraws the canvas after every forward (masked slots as a dimmed `·` on a terminal, one plain line per
forward otherwise), then prints the fill and `nfe` / tokens per forward. Without it only the fill is printed.

Repository context is the server's: the files under --root (default: the file's own folder) are indexed first, and
the definitions and similar lines the workspace index selects for the cursor go before the file's own context, within
--repo-context tokens (default: the model's, as the server's repoContextBudget; 0: off).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.sampler import STRATEGIES, SamplerConfig

DIM, RESET = "\x1b[2m", "\x1b[0m"
CLI_FILES = 2_000  # files indexed at most for one completion: a command waits for its index (the server does not)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("location", metavar="FILE:LINE:COL", help="1-based line and column of the cursor")
    parser.add_argument("--stream", action="store_true", help="show the canvas denoising, then nfe and tokens/forward")
    d = SamplerConfig()  # the defaults the help states
    parser.add_argument("--steps", type=int, help=f"forwards per block at most (default {d.steps})")
    parser.add_argument("--strategy", choices=STRATEGIES, help=f"token selection strategy (default {d.strategy})")
    parser.add_argument("--threshold", type=float,
                        help=f"confidence a slot needs with --strategy threshold (default {d.threshold:g})")
    parser.add_argument("--max-tokens", type=int, help=f"cap on the fill, in tokens (default {d.max_new})")
    parser.add_argument("--block-size", type=int, help=f"block size for long fills (default {d.block_size})")
    parser.add_argument("--canvas-start", type=int, help="first canvas, in tokens, doubled while the model writes to "
                                                         f"its end (default {d.start}; 0: the size tree-sitter "
                                                         "predicts)")
    parser.add_argument("--model", metavar="DIR", help="model directory (default: the shipped model)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default cpu)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--lang", help="language (default: from the file extension)")
    parser.add_argument("--root", metavar="DIR", help="the repository to index for context (default: the file's "
                                                      f"folder; its first {CLI_FILES} source files, about 5 ms each)")
    parser.add_argument("--repo-context", type=int, metavar="TOKENS",
                        help="repository context tokens (default: the model's; 0: none)")


def parse_location(value: str) -> tuple[Path, int, int]:
    """FILE:LINE:COL -> (path, line, col), 1-based; the file name may itself hold colons."""
    parts = value.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise ValueError(f"expected FILE:LINE:COL (1-based), got {value!r}")
    line, col = int(parts[1]), int(parts[2])
    if line < 1 or col < 1:
        raise ValueError(f"line and column are 1-based, got {line}:{col}")
    return Path(parts[0]), line, col


def offset_of(text: str, line: int, col: int) -> int:
    """Char offset of a 1-based line and column (columns count characters; past the end means the line's end)."""
    lines = text.split("\n")
    if line > len(lines):
        raise ValueError(f"line {line} is past the end of the file ({len(lines)} lines)")
    start = sum(len(ln) + 1 for ln in lines[: line - 1])
    return start + min(col - 1, len(lines[line - 1].rstrip("\r")))


class Canvas:
    """Draws successive canvases: redrawn in place on a terminal, one line each otherwise."""

    def __init__(self, out, tty: bool) -> None:
        self.out, self.tty, self.lines = out, tty, 0

    def draw(self, text: str, masks: list[tuple[int, int]], nfe: int) -> None:
        if not self.tty:
            self.out.write(f"[nfe {nfe}] {text!r}\n")
            self.out.flush()
            return
        shown, pos = [], 0
        for a, b in masks:
            shown += [text[pos:a], DIM, text[a:b], RESET]
            pos = b
        shown.append(text[pos:])
        body = "".join(shown)
        if self.lines:
            self.out.write(f"\x1b[{self.lines}F\x1b[J")  # back to the first line drawn, clear below
        self.out.write(body + "\n")
        self.lines = text.count("\n") + 1
        self.out.flush()

    def clear(self) -> None:
        if self.tty and self.lines:
            self.out.write(f"\x1b[{self.lines}F\x1b[J")
            self.lines = 0


def _repo_context(root: Path, path: Path, text: str, offset: int, target, budget: int, repo_budget: int):
    """The server's repository context for a cursor (server.workspace): root indexed (the file itself as `text`), the
    selection laid out within repo_budget tokens: (ids, chunks used, files indexed), ([], [], 0) when it is off."""
    from server.workspace import Workspace

    if repo_budget <= 0:
        return [], [], 0
    ws = Workspace(roots=[root])
    ws.index_root(root, CLI_FILES)
    ws.reindex(path, text)
    _sel, ids, used = ws.context(path, text, offset, {}, target, budget, repo_budget)
    return ids, used, len(ws.index.files)


def main(args: argparse.Namespace) -> int:
    from engine.model import ModelLoadError
    from infill.languages import language_for
    from server import fill
    from server.config import Settings

    try:
        path, line, col = parse_location(args.location)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a UTF-8 text file") from None
        offset = offset_of(text, line, col)
        if args.root and not Path(args.root).is_dir():
            raise ValueError(f"--root {args.root}: not a folder")
    except (ValueError, OSError) as exc:
        print(f"diffusion-ls complete: {exc}", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("steps", args.steps), ("strategy", args.strategy), ("threshold", args.threshold),
                                   ("max_tokens", args.max_tokens), ("block_size", args.block_size),
                                   ("canvas_start", args.canvas_start),
                                   ("repo_context_budget", args.repo_context)) if v is not None}
    try:
        settings = Settings(**overrides)
    except ValueError as exc:
        print(f"diffusion-ls complete: {exc}", file=sys.stderr)
        return 2
    try:
        from engine.backend import EmbeddedBackend

        backend = EmbeddedBackend(args.model, device=args.device, threads=args.threads,
                                  exact_batches=settings.exact_batches())
    except ModelLoadError as exc:
        print(f"diffusion-ls complete: cannot load the model: {exc}", file=sys.stderr)
        return 1
    if settings.strategy == "learned":  # its classifier, checked before any work
        from engine.finalizer import FinalizerError, for_backend

        try:
            for_backend(backend)
        except FinalizerError as exc:
            print(f"diffusion-ls complete: {exc}", file=sys.stderr)
            return 2
    lang = language_for(args.lang) if args.lang else language_for(str(path))
    target = fill.target(backend)
    budget, max_tokens, room = settings.limits(backend)
    root = Path(args.root) if args.root else path.parent
    repo, used, indexed = _repo_context(root, path, text, offset, target, budget, settings.repo_budget(backend))
    plan = fill.fit(fill.plan_cursor(text, offset, lang, target, budget, max_tokens, repo=repo), target, room)
    canvas = Canvas(sys.stdout, sys.stdout.isatty())
    on_partial = (lambda p: canvas.draw(p.text, p.masks, p.nfe)) if args.stream else None
    out = fill.run(backend, plan, settings.sampler(), session=str(path), on_partial=on_partial)
    canvas.clear()
    sys.stdout.write(out.fills[0] + ("\n" if not out.fills[0].endswith("\n") else ""))
    if out.refused(0) is not None:  # the edit guard's reason (infill.guard), as an editor would show it
        print(f"diffusion-ls complete: no completion: {out.refused(0)}", file=sys.stderr)
    if args.stream:
        if repo:
            files = sorted({c.path for c in used})
            plural = {n: "" if n == 1 else "s" for n in (len(used), len(files))}
            print(f"repository context: {len(repo)} tokens, {len(used)} chunk{plural[len(used)]} from {len(files)} "
                  f"file{plural[len(files)]} ({', '.join(Path(f).name for f in files[:4])}"
                  f"{', ...' if len(files) > 4 else ''}; {indexed} files indexed)")
        s = out.stats
        print(f"nfe {s.nfe}, {s.tokens} tokens, {s.tokens_per_forward:.2f} tokens/forward, "
              f"{s.prefill_ms:.0f} ms prefill, {s.elapsed_ms:.0f} ms denoising")
    return 0
