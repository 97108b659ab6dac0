"""The `diffusion-ls` command: one entry point, subcommands in their own modules (imported only when used)."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module with configure(parser) and main(args), one-line help)
COMMANDS = {
    "serve": ("server.serve_cli", "run the language server (stdio by default)"),
    "complete": ("server.complete_cli", "fill the hole at FILE:LINE:COL and print it (--stream shows the canvas)"),
    "train": ("server.train_cli", "train or fine-tune the embedded model on a corpus"),
    "train-finalizer": ("server.finalizer_cli", "learn which slots to finalize (the 'learned' strategy) from the "
                                                "model's own decoding traces"),
    "sizing": ("infill.sizing", "measure hole sizing against true span lengths"),
    "eval": ("server.eval_cli", "quality on infilling benchmarks (pass@1 by execution)"),
    "bench": ("server.bench", "speed: tokens per forward, latency, cache, LSP overhead"),
    "safety": ("server.safety", "rewrites and fills on real code: edits returned, refusals and why, violations"),
    "soak": ("server.soak", "type through the server for N requests: memory, latency drift, cache bounds"),
    "doctor": ("server.doctor", "what this machine can run (GPU, extras, models, servers) and the settings to use"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv and not sys.stdin.isatty():  # an editor started it without `serve`: it is a language server it wants
        print("diffusion-ls: no command given and stdin is not a terminal: serving LSP over stdio "
              "(`diffusion-ls serve`)", file=sys.stderr)
        argv = ["serve"]
    parser = argparse.ArgumentParser(prog="diffusion-ls", description="Diffusion language model language server.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser.print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    if not hasattr(module, "configure"):  # a module with its own argument parsing: main(argv)
        return int(module.main(argv[1:]) or 0)
    sp = argparse.ArgumentParser(prog=f"diffusion-ls {name}", description=COMMANDS[name][1])
    module.configure(sp)
    args = sp.parse_args(argv[1:])
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
