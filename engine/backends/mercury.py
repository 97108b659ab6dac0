"""Inception's Mercury, a hosted diffusion model, through its OpenAI-compatible API: no weights, no GPU, a network.

    infill   POST {base}/fim/completions        {model, prompt: prefix, suffix, max_tokens, stream: true}
             streamed `choices[0].text` deltas, appended             (mercury-edit-2, the code FIM model)
    rewrite  POST {base}/chat/completions       {model, messages, max_tokens, stream: true, diffusing: true}
             streamed `choices[0].delta.content`: each is the WHOLE current draft, replacing the one before
             (mercury-2, the chat model; the instruction goes in the user turn)

The model runs its own denoising loop on Inception's servers; what comes back is text, never token ids, so this
backend is not steppable: server/fill.py's `_run_requests` sends one diffusion/canvas notification per Chunk, i.e. per
draft the API streams. The diffusing stream's format is taken from third-party clients, not a published reference,
so every frame is read defensively: a frame marked `diffusion_meta.diffusion_content` (on the chunk, the choice or
the delta) replaces the text, an unmarked one replaces it too once the stream has sent snapshots and appends
otherwise (a server that ignored `diffusing` streams deltas), an empty delta changes nothing, `[DONE]` or a
`finish_reason` ends it, and a frame that is not JSON fails the request with what came back.

The API key comes from the environment (INCEPTION_API_KEY, see server/config.py), never from settings. Errors
(401, 429 with Retry-After, 5xx, timeouts, a broken stream) raise MercuryError with what to do; the language server
turns that into a failed request and stays up.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

from engine.backend import Capabilities, Seam
from engine.backends.prompting import DEFAULT_TASK, REWRITE_INSTRUCTION
from engine.backends.vllm import Chunk
from engine.model import ModelLoadError
from engine.sampler import Cancelled, is_cancelled
from engine.tokenizer import SpecialIds

DEFAULT_URL = "https://api.inceptionlabs.ai/v1"  # the public API's base URL (OpenAI-style paths below it)
FIM_MODEL = "mercury-edit-2"  # Inception's code model for fill-in-the-middle (32K context)
CHAT_MODEL = "mercury-2"  # Inception's chat model: follows a rewrite instruction (128K context)
FIM_CONTEXT = 32_000  # mercury-edit-2's context in tokens: the server cuts the context budget to fit it
BYTES_PER_TOKEN = 3.5  # infill/holes.py's estimate: the prompt is cut by characters, there is no local tokenizer
EMPTY_SUFFIX = "<|endoftext|>"  # sent for a blank suffix, as Continue's Inception client does (the API wants one)
_FENCE_OPEN = re.compile(r"```[^\n`]*\n")
_FENCE_CLOSE = re.compile(r"(^|\n)[ \t]*```")


class MercuryError(RuntimeError):
    """The Inception API refused or failed a request, or could not be reached; the message says what to do."""


class _TextOnly:
    """Mercury takes and returns text: no token ids. The server reads `remote` (size holes with infill's character
    estimate) and `special.pad` (never in a Chunk: Chunks carry no ids); nothing else is asked of it."""

    remote = True
    vocab_size = 0
    special = SpecialIds(pad=-1, mask=-2, eos=-3, fim_prefix=-4, fim_middle=-5, fim_suffix=-6, file_sep=-7,
                         rewrite=-8)


class MercuryBackend(Seam):
    """The hosted Mercury models: `infill` on the FIM endpoint, `rewrite` on diffusing chat completions."""

    name = "mercury"
    # streams=False: the API streams its drafts, not every forward; one Chunk per draft
    capabilities = Capabilities(streams=False, instructions=True, mask_token=False, native_infill=True)
    prompter = None  # no chat prompt around a fill: the FIM endpoint takes prefix and suffix as they are
    tokenizer = _TextOnly()
    device = "remote"

    def __init__(self, api_key: str | None, url: str | None = None, model: str | None = None,
                 fim_model: str | None = None, chat_model: str | None = None, timeout: float = 30.0,
                 reasoning_effort: str | None = "instant") -> None:
        try:
            import httpx
        except ImportError as exc:
            raise ModelLoadError("the mercury backend needs httpx: pip install 'diffusion-ls[remote]'") from exc
        if not api_key:
            raise ModelLoadError("the mercury backend needs an Inception API key in the INCEPTION_API_KEY "
                                 "environment variable (create one in the Inception platform's dashboard)")
        self.url = (url or DEFAULT_URL).rstrip("/")
        self.fim_model = fim_model or model or FIM_MODEL
        self.chat_model = chat_model or model or CHAT_MODEL
        self.model_name = self.fim_model if self.fim_model == self.chat_model else \
            f"{self.fim_model} + {self.chat_model}"
        self.max_context = FIM_CONTEXT
        self.timeout = timeout
        # mercury-2 reasons before it answers; "instant" skips that for an editor's latency (None: the API's default)
        self.reasoning_effort = reasoning_effort
        self._http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {api_key}"},
                                  timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))

    @property
    def special(self) -> SpecialIds:
        return self.tokenizer.special

    def close(self) -> None:
        self._http.close()

    def drop_session(self, session: str) -> None:
        """Nothing to drop: no state is kept between requests."""

    def _no_steps(self, *_: Any) -> Any:
        raise NotImplementedError("mercury is not steppable: the hosted model runs the whole denoising loop; "
                                  "use infill() / rewrite()")

    prefill = denoise = commit = next_token_logits = _no_steps

    # -- requests -----------------------------------------------------------------------------------------------------

    def infill(self, prefix: str, suffix: str, capacity: int, language: str | None = None, budget: int | None = None,
               cancel: Callable[[], bool] | object | None = None) -> Iterator[Chunk]:
        """The text between prefix and suffix, at most `capacity` tokens; a Chunk per streamed piece."""
        prefix, suffix = trim(prefix, suffix, budget)
        body = {"model": self.fim_model, "prompt": prefix, "suffix": suffix if suffix.strip() else EMPTY_SUFFIX,
                "max_tokens": capacity, "stream": True}
        return self._chunks(self._stream("/fim/completions", body, cancel), finish=lambda t: t)

    def rewrite(self, prefix: str, selection: str, suffix: str, capacity: int, instruction: str = "",
                language: str | None = None, budget: int | None = None,
                cancel: Callable[[], bool] | object | None = None) -> Iterator[Chunk]:
        """The selection rewritten (following `instruction`); a Chunk per draft of the diffusing stream."""
        prefix, suffix = trim(prefix, suffix, budget)
        user = (REWRITE_INSTRUCTION.format(language=language or "source", task=instruction.strip() or DEFAULT_TASK)
                + "\n\nCode before the selection:\n" + _block(prefix, language)
                + "\n\nSelected code:\n" + _block(selection, language)
                + "\n\nCode after the selection:\n" + _block(suffix, language))
        # the answer is a code block around the new text: a few tokens more than the selection's capacity
        body: dict[str, Any] = {"model": self.chat_model, "messages": [{"role": "user", "content": user}],
                                "max_tokens": capacity + 16, "stream": True, "diffusing": True}
        if self.reasoning_effort:
            body["reasoning_effort"] = self.reasoning_effort
        return self._chunks(self._stream("/chat/completions", body, cancel), finish=code_block)

    # -- the stream ---------------------------------------------------------------------------------------------------

    def _chunks(self, frames: Iterator[tuple[str, str | None]], finish: Callable[[str], str]) -> Iterator[Chunk]:
        """A Chunk per change of the text (the fill so far, `finish` applied); the last has done=True."""
        n, last = 0, None
        for text, reason in frames:
            if reason is None and text == (last or ""):
                continue  # a role-only opening frame, an empty delta: nothing new to show
            last = text
            yield Chunk(text, None, n, finish(text), reason, done=reason is not None)
            n += 1
            if reason is not None:
                return
        if last is None:
            raise MercuryError("the Inception API closed the stream without a completion; try again")
        yield Chunk("", None, n, finish(last), None, done=True)  # [DONE] without a finish_reason

    def _stream(self, path: str, body: dict, cancel: Callable[[], bool] | object | None
                ) -> Iterator[tuple[str, str | None]]:
        """(text so far, finish_reason) per frame of a server-sent-events stream; see the module docstring."""
        import httpx

        if is_cancelled(cancel):
            raise Cancelled()
        where = f"{self.url}{path}"
        try:
            with self._http.stream("POST", path, json=body) as r:
                if r.status_code >= 400:
                    raise MercuryError(error_message(r.status_code, r.read().decode("utf-8", "replace"), r.headers))
                text, snapshots = "", False
                for line in r.iter_lines():
                    if is_cancelled(cancel):
                        raise Cancelled()  # leaving the `with` closes the connection: the API stops the request
                    if not line.startswith("data:"):
                        continue  # blank lines, comments (": keep-alive"), event names
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        msg = json.loads(data)
                    except ValueError:
                        raise MercuryError(f"the Inception API sent a malformed stream from {where} "
                                           f"(not JSON: {data[:200]!r}); try again") from None
                    if not isinstance(msg, dict):
                        raise MercuryError(f"the Inception API sent a malformed stream from {where}: {data[:200]!r}")
                    if "error" in msg:
                        raise MercuryError(error_message(200, data, r.headers))
                    choices = msg.get("choices") or []
                    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
                    raw_delta = choice.get("delta")
                    delta: dict = raw_delta if isinstance(raw_delta, dict) else {}
                    piece = delta.get("content") if "delta" in choice else choice.get("text")
                    snapshot = _is_snapshot(msg, choice, delta)
                    if isinstance(piece, str) and piece:
                        if snapshot or (snapshot is None and snapshots):
                            text, snapshots = piece, True  # the whole draft: it replaces the one before
                        else:
                            text += piece  # a delta
                    reason = choice.get("finish_reason")
                    yield text, str(reason) if reason else None
        except httpx.TimeoutException as exc:
            raise MercuryError(f"the Inception API did not answer within {self.timeout:g} s ({where}: "
                               f"{type(exc).__name__}); check the network, or try again") from exc
        except httpx.HTTPError as exc:
            raise MercuryError(f"cannot reach the Inception API at {where}: {exc}; check the network and "
                               "`serverUrl`") from exc


def _is_snapshot(msg: dict, choice: dict, delta: dict) -> bool | None:
    """True: this frame's text is the whole draft; False: a delta; None: the frame does not say."""
    for holder in (delta, choice, msg):
        meta = holder.get("diffusion_meta")
        if isinstance(meta, dict) and "diffusion_content" in meta:
            return bool(meta["diffusion_content"])
    return None


def trim(prefix: str, suffix: str, budget: int | None, suffix_share: float = 0.25) -> tuple[str, str]:
    """Whole lines nearest the cursor within `budget` tokens (estimated from bytes: no tokenizer here); the suffix gets
    its share, the prefix the rest, as the chat prompts do (engine.backends.prompting.PromptConfig.suffix_share)."""
    if budget is None:
        return prefix, suffix
    suffix = _keep_lines(suffix, int(budget * suffix_share), from_end=False)
    prefix = _keep_lines(prefix, budget - _tokens(suffix), from_end=True)
    return prefix, suffix


def _tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


def _keep_lines(text: str, cap: int, from_end: bool) -> str:
    if cap <= 0 or not text:
        return ""
    lines = text.splitlines(keepends=True)
    order = lines[::-1] if from_end else lines
    kept, total = [], 0
    for line in order:
        if total + _tokens(line) > cap:
            break
        kept.append(line)
        total += _tokens(line)
    if not kept:  # the cursor's own line is over the cap: its part nearest the cursor
        chars = int(cap * BYTES_PER_TOKEN)
        return order[0][-chars:] if from_end else order[0][:chars]
    return "".join(kept[::-1] if from_end else kept)


def code_block(text: str) -> str:
    """The rewrite from a chat answer: the inside of its (first) code block, a block still being written included;
    an answer with no fence is taken whole."""
    m = _FENCE_OPEN.search(text)
    if m is None:
        return text.strip("\n") if "```" not in text else text[: text.index("```")].rstrip("\n")
    body = text[m.end():]
    end = _FENCE_CLOSE.search(body)
    return body[: end.start()] if end else body


def _block(code: str, language: str | None) -> str:
    return f"```{language or ''}\n{code}\n```"


def error_message(status: int, text: str, headers: Any = None) -> str:
    """The API's error ({"error": {"message", "type"}}, OpenAI's envelope) as one line that says what to do."""
    try:
        body = json.loads(text)
        err = body.get("error", body) if isinstance(body, dict) else body
        msg = err.get("message") if isinstance(err, dict) else str(err)
    except ValueError:
        msg = text
    msg = str(msg or text or "").strip()[:300]
    said = f": {msg}" if msg else ""
    if status in (401, 403):
        return (f"the Inception API refused the API key ({status}{said}); put a valid key in the INCEPTION_API_KEY "
                "environment variable of the editor that starts diffusion-ls, then restart the server")
    if status == 429:
        wait = (headers or {}).get("retry-after") if headers is not None else None
        when = f"retry after {wait} s" if wait else "wait a little and retry"
        return f"rate limited by the Inception API (429{said}); {when}"
    if status >= 500:
        return f"the Inception API failed ({status}{said}); the service is overloaded or down, try again shortly"
    if status == 200:
        return f"the Inception API reported an error mid-stream{said}"
    return f"the Inception API rejected the request ({status}{said}); check `serverModel` and `serverUrl`"


def make_backend(kind: str = "mercury", **opts: Any) -> MercuryBackend:
    """The mercury backend from settings: api_key (from the environment), url, model, timeout."""
    if kind != "mercury":
        raise ValueError(f"engine.backends.mercury makes the 'mercury' backend, not {kind!r}")
    return MercuryBackend(**opts)
