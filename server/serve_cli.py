"""`diffusion-ls serve`: run the language server over stdio (what editors start), or TCP for debugging.

    diffusion-ls serve                          # stdio
    diffusion-ls serve --tcp 127.0.0.1:2087     # connect an editor to it by hand
    diffusion-ls serve --log-file diffusion-ls.log --log-level debug

Logs go to the client as window/logMessage, to stderr (warnings and errors only) and to --log-file if given.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

# oneDNN keeps a compiled primitive, with its scratch memory, per tensor shape (1024 by default): a server meets a new
# context length on most requests, so that cache only grows. Set before torch loads; a user's own value stands
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "32")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)")
    parser.add_argument("--tcp", metavar="HOST:PORT", help="listen on a TCP socket instead of stdio")
    parser.add_argument("--log-file", help="append logs to this file")
    parser.add_argument("--log-level", choices=("error", "warning", "info", "debug"), default=None,
                        help="log level (default: the logLevel setting, info)")


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise SystemExit(f"--tcp wants HOST:PORT, got {value!r}") from None


class ClientOut:
    """The protocol's stdout. An editor that quits with requests in flight closes it before their answers are
    written: those answers are dropped (said once in the log), not raised as the tracebacks pygls logs for them."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.gone = False

    def write(self, data: bytes) -> int:
        if not self.gone:
            try:
                self.raw.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self._closed()
        return len(data)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.raw.flush()
            except (BrokenPipeError, ConnectionResetError):
                self._closed()

    def close(self) -> None:
        try:
            self.raw.close()
        except OSError:
            pass

    def _closed(self) -> None:
        self.gone = True
        logging.getLogger("diffusion_ls").info("the client closed the connection; answers in flight are dropped")


def main(args: argparse.Namespace) -> int:
    from server import logs
    from server.server import create_server

    stderr = logging.StreamHandler(sys.stderr)  # stdout carries the protocol: never log there
    stderr.setLevel(logging.WARNING)
    stderr.setFormatter(logging.Formatter("diffusion-ls %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[stderr])
    logs.FORCED_LEVEL = args.log_level  # the command line wins over the logLevel setting
    logs.set_level(args.log_level or "info", args.log_file)
    ls = create_server()
    if args.tcp:
        host, port = _host_port(args.tcp)
        ls.start_tcp(host, port)
    else:
        ls.start_io(stdout=ClientOut(sys.stdout.buffer))  # returns after `exit`, or when the client closes stdin
    code = 0 if ls.shutdown_requested else 1  # LSP: exit without a shutdown request first is an error
    logging.shutdown()
    os._exit(code)  # skip interpreter teardown: freeing torch and the model takes seconds the editor would wait
