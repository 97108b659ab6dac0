"""The JSON-RPC layer in process (server.protocol): what it keeps per message."""

from __future__ import annotations

import asyncio

from server.server import create_server


async def test_notifications_leave_no_futures_behind():
    """pygls kept each notification's future by a fresh uuid (10,000 keystrokes, 10,000 futures): the soak's growth."""
    ls = create_server()
    uri = "file:///tmp/leak.py"
    messages = [{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": "x = 1\n"}}}]
    messages += [{"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
        "textDocument": {"uri": uri, "version": v}, "contentChanges": [{"text": f"x = {v}\n"}]}} for v in range(2, 52)]
    for m in messages:
        ls.protocol.handle_message(ls.protocol.structure_message(m))
    await asyncio.sleep(0.1)  # a coroutine handler's future is done on the loop
    assert ls.documents.get(uri) is not None and ls.documents[uri].version == 51
    assert len(ls.protocol._request_futures) == 0
