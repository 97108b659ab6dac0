"""The learned strategy over the wire: the shipped finalizer fills as in process; a model without one fails the
request with the reason, and the server goes on."""

from __future__ import annotations

import pytest
from pygls.exceptions import JsonRpcException

from tests.server.conftest import SHORT, Session, check_inline

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_learned_fills_and_a_model_without_a_finalizer_fails_only_its_request(neovim: Session, reference,
                                                                                    tmp_path):
    from engine import DEFAULT_MODEL_DIR
    from engine.finalizer import FILE

    session = neovim  # the strategy is the engine's business: one client profile is enough
    settings = {**SHORT, "strategy": "learned"}
    text = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return \n"
    at = text.index("return \n") + len("return ")
    model = tmp_path / "model"  # the shipped model without its finalizer
    model.mkdir()
    for f in DEFAULT_MODEL_DIR.iterdir():
        if f.name != FILE:
            (model / f.name).symlink_to(f)
    session.configure(settings)
    try:
        uri = session.open(text)
        fut, _ = session.inline(uri, 5, 11, msg_id="learned-1", invoked=True)
        result = await fut
        assert check_inline(session.notes("learned-1"), result, (5, 11), version=1) == reference(text, at, settings)

        session.configure({**settings, "modelPath": str(model)})
        fut, _ = session.inline(uri, 5, 11, msg_id="learned-missing", invoked=True)
        with pytest.raises(JsonRpcException, match="no finalizer at .*train-finalizer"):
            await fut

        session.configure({**settings, "strategy": "threshold"})  # the same model, another strategy: it fills
        fut, _ = session.inline(uri, 5, 11, msg_id="learned-after", invoked=True)
        result = await fut
        check_inline(session.notes("learned-after"), result, (5, 11), version=1)
    finally:
        session.configure({"strategy": None, "modelPath": None})
