"""The JSON-RPC layer under the server: pygls' LanguageServerProtocol with the gaps that leave a client waiting closed.

- A request whose params do not fit its method's type (a negative line, a string for a number, a missing field) is
  answered with InvalidParams. pygls fails such a message inside json.loads and never answers it: the client waits
  forever. A request or notification without `params` has null params (JSON-RPC allows leaving them out).
- After `shutdown`, requests are answered with InvalidRequest, as the LSP spec says; pygls answers none.
- didOpen / didChange / didClose go straight to the server's handlers. The server keeps its own documents, so pygls'
  copy of each one only cost memory and time per keystroke, and its KeyError on a change to a document that is not
  open kept the server's own handler from running.
- A didChange whose params cannot be read is handed to the server (`change_not_applied`): the document no longer
  matches the editor's, and the in-flight fill for it must not be answered.
- A notification's handler leaves nothing behind once it has run (pygls kept every one's future).
- Positions are UTF-16 code units whatever the client offers: the server's documents (infill.document) count them.
  pygls takes the client's first choice (Neovim offers UTF-8 first), and every position on a line with a non-ASCII
  character then meant something else to each side.
"""

from __future__ import annotations

import logging
from typing import Any

import cattrs
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcInvalidRequest
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

log = logging.getLogger("diffusion_ls")


class Unreadable:
    """A message whose params (or id / method) do not fit the JSON-RPC or LSP types."""

    jsonrpc = "2.0"

    def __init__(self, data: dict, error: JsonRpcException) -> None:
        self.data = data
        self.id = data.get("id")
        self.method = data.get("method")
        cause = error.__cause__
        try:
            details = cattrs.transform_error(cause) if isinstance(cause, cattrs.BaseValidationError) else []
        except Exception:  # the error text is only for the message
            details = []
        self.why = "; ".join(details) or (str(cause) if cause else error.message)


class DiffusionProtocol(LanguageServerProtocol):
    """LanguageServerProtocol that answers every request, and leaves documents to the server."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        """json.loads' object_hook: one message (or a nested object, passed through) into its type."""
        if "jsonrpc" in data and "method" in data and "params" not in data:
            data = {**data, "params": None}
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if "jsonrpc" in data and "method" in data:
                return Unreadable(data, exc)
            raise

    def handle_message(self, message: Any) -> None:
        method = getattr(message, "method", None)
        is_request = method is not None and getattr(message, "id", None) is not None
        if isinstance(message, Unreadable):
            self._unreadable(message)
        elif self._shutdown and is_request and method != types.EXIT:
            self._send_response(message.id, error=JsonRpcInvalidRequest(
                message=f"the server is shutting down: {method} is not served after `shutdown`").to_response_error())
        else:
            super().handle_message(message)

    def _execute_handler(self, msg_id: Any, handler: Any, callback: Any, args: Any = None, kwargs: Any = None) -> None:
        """pygls keeps the future of a notification's coroutine or generator handler by a fresh uuid, and only a
        response ever removes one: each didChange left a future behind (10,000 keystrokes: 10,000 futures)."""
        if callback == self._check_handler_result:
            check = callback

            def callback(future: Any) -> None:
                self._request_futures.pop(msg_id, None)
                check(future)

        super()._execute_handler(msg_id, handler, callback, args, kwargs)

    def _unreadable(self, msg: Unreadable) -> None:
        if msg.id is not None:  # a request: answer it
            error = JsonRpcInvalidParams if isinstance(msg.method, str) else JsonRpcInvalidRequest
            self._send_response(msg.id if isinstance(msg.id, (int, str)) else None, error=error(
                message=f"invalid params for {msg.method}: {msg.why}").to_response_error())
            return
        log.warning("ignored %s: its params do not fit (%s)", msg.method, msg.why)
        if msg.method == types.TEXT_DOCUMENT_DID_CHANGE:
            hook = getattr(self._server, "change_not_applied", None)
            params = msg.data.get("params")
            doc = params.get("textDocument") if isinstance(params, dict) else None
            if hook is not None and isinstance(doc, dict):
                hook(doc.get("uri"), doc.get("version"), msg.why)

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams) -> Any:
        general = params.capabilities.general
        if general is not None and general.position_encodings is not None:  # UTF-16: the one every client supports
            general.position_encodings = [types.PositionEncodingKind.Utf16]
        return (yield from super().lsp_initialize(params))

    # -- documents: the server's handlers only (no pygls workspace copy) ---------------------------------------------

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None
