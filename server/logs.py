"""Logging: `diffusion_ls` records go to the client (window/logMessage), stderr (warnings) and an optional file."""

from __future__ import annotations

import asyncio
import logging
import os

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer

log = logging.getLogger("diffusion_ls")

_LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}
_file_handler: logging.FileHandler | None = None
FORCED_LEVEL: str | None = None  # `serve --log-level` wins over the logLevel setting


class _ExpectedErrors(logging.Filter):
    """pygls logs every error response with a traceback; cancellations and bad params are answers, not faults."""

    QUIET = {-32800, -32801, -32802, -32803, -32602}
    # a client cancels on every keystroke; a request answered a moment before its $/cancelRequest arrived is not a
    # fault, but pygls warns on stderr, which editors log as errors (Neovim's lsp.log: one [ERROR] per race)
    QUIET_MESSAGES = ("Cancel notification for unknown message id",)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, JsonRpcException) and exc.code in self.QUIET:
            return False
        return not (isinstance(record.msg, str) and record.msg.startswith(self.QUIET_MESSAGES))


class LspLogHandler(logging.Handler):
    """Sends `diffusion_ls` log records to the client as window/logMessage (from any thread)."""

    def __init__(self, ls: LanguageServer) -> None:
        super().__init__()
        self.ls = ls
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        kind = (types.MessageType.Error if record.levelno >= logging.ERROR else types.MessageType.Warning
                if record.levelno >= logging.WARNING else types.MessageType.Info if record.levelno >= logging.INFO
                else types.MessageType.Log)
        params = types.LogMessageParams(kind, self.format(record))
        loop = getattr(self.ls, "loop", None)
        try:
            if loop is not None and loop.is_running() and _off_loop(loop):
                loop.call_soon_threadsafe(self.ls.window_log_message, params)
            elif self.ls.protocol.writer is not None:
                self.ls.window_log_message(params)
        except Exception:  # logging must never take the server down
            self.handleError(record)


def _off_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is not loop
    except RuntimeError:
        return True


def set_level(level: str, log_file: str | None = None) -> None:
    """The `diffusion_ls` logger's level, and the log file (`serve --log-file` or the logFile setting)."""
    global _file_handler
    log.setLevel(_LEVELS.get(FORCED_LEVEL or level, logging.INFO))
    if not log_file or (_file_handler is not None and _file_handler.baseFilename == os.path.abspath(log_file)):
        return
    try:
        handler = logging.FileHandler(log_file, encoding="utf-8")
    except OSError as exc:
        log.warning("cannot open log file %s: %s", log_file, exc)
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    if _file_handler is not None:
        root.removeHandler(_file_handler)
        _file_handler.close()
    _file_handler = handler
    root.addHandler(handler)


def attach(ls: LanguageServer) -> None:
    """Send `diffusion_ls` records to ls's client; keep expected error answers out of pygls' error log."""
    log.handlers = [h for h in log.handlers if not isinstance(h, LspLogHandler)]
    log.addHandler(LspLogHandler(ls))
    logging.getLogger("pygls.protocol.json_rpc").addFilter(_ExpectedErrors())
