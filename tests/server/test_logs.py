"""The server's logging: expected races and error answers stay out of the editor's error log."""

from __future__ import annotations

import logging

from server.logs import _ExpectedErrors


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("pygls.protocol.json_rpc", logging.WARNING, __file__, 1, msg, args, None)


def test_a_cancel_that_arrives_after_the_answer_is_not_logged():
    # Neovim cancels the completion in flight on each keystroke; one answered just before shows up in pygls as
    # "Cancel notification for unknown message id", which lsp.log recorded as an [ERROR] line per race
    quiet = _ExpectedErrors()
    assert not quiet.filter(_record('Cancel notification for unknown message id "%s"', 4))
    assert quiet.filter(_record("Unknown method %s", "foo/bar"))
