"""DiffusionGemma through vLLM: in process (`vllm.LLM`) or on a shared server (`vllm serve`, OpenAI-compatible).

vLLM runs the model's whole denoising loop itself (batched with other requests, tensor parallel across GPUs) and
hands back one chunk per committed canvas, never the drafts in between. So these backends are not steppable: they
have no prefill/denoise/commit, and an editor sees a fill appear canvas by canvas (for an editor-sized fill: all at
once). `complete` streams the chunks of one request; `infill` and `rewrite` build the chat prompt and the canvas.

Canvas control per request (vLLM's `extra_args`; `vllm_xargs` on the server), used here:
    diffusion_canvas_length  the request's canvas width (<= the served one): a fill's capacity, not 256 slots
    diffusion_seed_canvas    the initial canvas (exactly that many ids): a rewrite starts from the selection
    diffusion_pinned         canvas positions held at their seed: the start of the suffix, pinned after the hole
    diffusion_max_steps      denoising steps per canvas at most
    diffusion_read_only      emit the argmax canvas once the step cap is reached and end the request (one canvas)
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.backend import Capabilities, Seam
from engine.backends.prompting import TURN_CLOSE, ChatPrompter, HFTokenizer, PromptConfig
from engine.model import ModelLoadError
from engine.sampler import Cancelled, is_cancelled
from engine.tokenizer import SpecialIds

DEFAULT_CANVAS = 256  # DiffusionGemma's canvas; set it to the server's --diffusion-config canvas_length
GEMMA_VOCAB = 262_144  # the model's vocabulary: random seed-canvas ids are drawn below it
_CONTROL = ("<|turn>", TURN_CLOSE, "<|channel>", "<channel|>")  # chat control tokens, never part of a fill


class VLLMError(RuntimeError):
    """The vLLM server refused or failed a request (its message included), or could not be reached."""


@dataclass
class Chunk:
    """What vLLM sends per committed canvas."""

    text: str  # this canvas's text
    token_ids: list[int] | None  # its ids (None when the server does not return them)
    canvas: int  # 0, 1, ...: canvases of this request so far
    fill: str  # the fill so far, the answer's closing fence and what follows it cut off
    finish_reason: str | None = None  # "stop" (the model ended) or "length" (max_tokens reached) on the last chunk
    done: bool = False


@dataclass
class CanvasRequest:
    """One completion request: the prompt ids and the canvas options."""

    prompt_ids: list[int]
    max_tokens: int
    canvas_length: int | None = None
    seed_canvas: list[int] | None = None
    pinned: list[int] | None = None
    max_steps: int | None = None
    read_only: bool = False
    seed: int | None = None
    cut: int | None = None  # the fill is the first `cut` canvas tokens (the rest is pinned suffix and after)

    def xargs(self) -> dict[str, Any]:
        x: dict[str, Any] = {}
        if self.canvas_length is not None:
            x["diffusion_canvas_length"] = self.canvas_length
        if self.seed_canvas is not None:
            x["diffusion_seed_canvas"] = list(self.seed_canvas)
        if self.pinned:
            x["diffusion_pinned"] = list(self.pinned)
        if self.max_steps is not None:
            x["diffusion_max_steps"] = self.max_steps
        if self.read_only:
            x["diffusion_read_only"] = True
        return x


class _VLLMBase(Seam):
    """Prompting and canvases shared by the in-process and the remote backend."""

    name = "vllm"
    # vLLM hands back committed canvases only
    capabilities = Capabilities(streams=False, instructions=True, mask_token=False, native_infill=False)

    def __init__(self, tokenizer: Any, prompter: ChatPrompter, canvas_length: int = DEFAULT_CANVAS,
                 vocab_size: int = GEMMA_VOCAB, pin_suffix: int = 0, max_steps: int | None = None,
                 narrow_canvas: bool = True, device: str = "remote", model_name: str = "") -> None:
        self.tokenizer = tokenizer
        self.prompter = prompter
        self.canvas_length = canvas_length  # the served canvas: a request's canvas is at most this wide
        self.vocab_size = vocab_size  # random seed-canvas ids are drawn below it
        self.pin_suffix = pin_suffix  # suffix tokens pinned right after the hole (0: the suffix is only in the prompt)
        self.max_steps = max_steps  # None: the server's max_denoising_steps
        # a canvas as wide as the fill, not 256 slots (fewer slots per forward); vLLM needs its async scheduler for
        # that (chosen automatically); a server running synchronously takes full-width canvases only: set False
        self.narrow_canvas = narrow_canvas
        self.device = device
        self.model_name = model_name
        self._rng = random.Random(0)

    @property
    def special(self) -> SpecialIds:
        return self.tokenizer.special

    def infill_request(self, prompt_ids: Sequence[int], suffix: str, capacity: int) -> CanvasRequest:
        """The hole as a canvas of `capacity` slots; with `pin_suffix`, the suffix's first tokens pinned after it."""
        pins = self.tokenizer.encode(suffix)[: self.pin_suffix] if self.pin_suffix and suffix else []
        if not pins:
            return CanvasRequest(list(prompt_ids), capacity, canvas_length=self._width(capacity),
                                 max_steps=self.max_steps)
        width = self._width(capacity + len(pins)) or self.canvas_length
        hole = width - len(pins)
        return CanvasRequest(list(prompt_ids), width, canvas_length=self._width(width),
                             seed_canvas=self._noise(hole) + pins, pinned=list(range(hole, width)),
                             max_steps=self.max_steps, cut=hole)

    def rewrite_request(self, prompt_ids: Sequence[int], selection: str, capacity: int) -> CanvasRequest:
        """A canvas seeded with the selection (then the answer's end), so denoising starts from the original code."""
        close = "\n```" if self.prompter.cfg.fence else ""
        turn_close = self.tokenizer.token_id(TURN_CLOSE)
        start = self.tokenizer.encode(selection + close) + ([turn_close] if turn_close is not None else [])
        width = self._width(max(capacity, len(start))) or self.canvas_length
        return CanvasRequest(list(prompt_ids), capacity, canvas_length=self._width(width),
                             seed_canvas=(start + self._noise(width))[:width], max_steps=self.max_steps)

    def _width(self, n: int) -> int | None:
        """The request's canvas width: n slots (at most the served canvas), or None (the served one) when the server
        takes full-width canvases only."""
        return min(n, self.canvas_length) if self.narrow_canvas else None

    def infill(self, prefix: str, suffix: str, capacity: int, language: str | None = None, budget: int | None = None,
               cancel: Callable[[], bool] | object | None = None) -> Iterator[Chunk]:
        ids = self.prompter.infill(prefix, suffix, language, budget)
        return self.complete(self.infill_request(ids, suffix, capacity), cancel)

    def rewrite(self, prefix: str, selection: str, suffix: str, capacity: int, instruction: str = "",
                language: str | None = None, budget: int | None = None,
                cancel: Callable[[], bool] | object | None = None) -> Iterator[Chunk]:
        ids = self.prompter.rewrite(prefix, selection, suffix, instruction, language, budget)
        return self.complete(self.rewrite_request(ids, selection, capacity), cancel)

    def complete(self, req: CanvasRequest, cancel: Callable[[], bool] | object | None = None) -> Iterator[Chunk]:
        raise NotImplementedError

    def _chunks(self, req: CanvasRequest, parts: Iterator[tuple[str, list[int] | None, str | None]]
                ) -> Iterator[Chunk]:
        """A Chunk per (text, ids, finish_reason) as it arrives; the fill cut at `req.cut` tokens and the closing
        fence. The last chunk has done=True."""
        text, ids_all, n = "", [], 0
        for part, ids, finish in parts:
            text += part
            ids_all += ids or []
            fill = self.tokenizer.decode(ids_all[: req.cut]) if req.cut is not None and ids is not None else text
            yield Chunk(part, ids, n, self.prompter.finish(fill), finish, done=finish is not None)
            n += 1
            if finish is not None:
                return
        if n == 0:
            raise VLLMError("the server closed the stream without a completion")
        yield Chunk("", [], n, self.prompter.finish(text), None, done=True)  # a stream that ended unannounced

    def _noise(self, n: int) -> list[int]:
        return [self._rng.randrange(self.vocab_size) for _ in range(n)]

    # The Backend seam's stepping methods: vLLM runs the denoising loop itself.
    def _no_steps(self, *_: Any) -> Any:
        raise NotImplementedError(f"{self.name} is not steppable: vLLM runs the whole denoising loop; "
                                  "use complete() / infill() / rewrite()")

    prefill = denoise = commit = next_token_logits = _no_steps

    def drop_session(self, session: str) -> None:
        """Nothing to drop: vLLM's prefix cache is shared and managed by vLLM."""


class RemoteTokenizer:
    """The server's own tokenizer and chat template, through vLLM's /tokenize and /detokenize endpoints."""

    remote = True  # every call is a round trip: callers size holes with a local estimate instead

    def __init__(self, post: Callable[[str, dict], dict], model: str, vocab_size: int = GEMMA_VOCAB) -> None:
        self._post = post
        self.model = model
        self.vocab_size = vocab_size
        self._ids: dict[str, int | None] = {}
        self._special: SpecialIds | None = None

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        return list(self._post("/tokenize", {"model": self.model, "prompt": text, "add_special_tokens": False})
                    ["tokens"])

    def decode(self, ids: Sequence[int]) -> str:
        """Text of the ids; special and control tokens are dropped."""
        control = self.special.all | {i for i in map(self.token_id, _CONTROL) if i is not None}
        keep = [int(i) for i in ids if int(i) not in control]
        return str(self._post("/detokenize", {"model": self.model, "tokens": keep})["prompt"]) if keep else ""

    def chat_ids(self, messages: list[dict], add_generation_prompt: bool = True, **template_kwargs: Any) -> list[int]:
        body = {"model": self.model, "messages": messages, "add_generation_prompt": add_generation_prompt,
                "add_special_tokens": False, "chat_template_kwargs": template_kwargs}
        return list(self._post("/tokenize", body)["tokens"])

    def token_id(self, token: str) -> int | None:
        if token not in self._ids:
            ids = self.encode(token)
            self._ids[token] = ids[0] if len(ids) == 1 else None
        return self._ids[token]

    @property
    def special(self) -> SpecialIds:
        if self._special is None:
            t = self.token_id
            pad = t("<pad>")
            eos = t("<eos>")
            bos = t("<bos>")
            if pad is None or eos is None or bos is None:
                raise VLLMError("the server's tokenizer has no <pad>/<eos>/<bos>: is it serving DiffusionGemma?")
            self._special = SpecialIds(pad=pad, mask=t("<mask>") or pad, eos=eos, fim_prefix=bos,
                                       fim_middle=t(TURN_CLOSE) or eos, fim_suffix=t("<|turn>") or bos,
                                       file_sep=eos, rewrite=t("<|channel>") or bos)
        return self._special


class VLLMRemoteBackend(_VLLMBase):
    """A shared `vllm serve` (OpenAI-compatible) server: many diffusion-ls instances, one vLLM batching them."""

    name = "vllm-remote"

    def __init__(self, url: str, model: str | None = None, api_key: str | None = None, timeout: float = 60.0,
                 tokenizer_path: str | Path | None = None, prompt: PromptConfig | None = None,
                 canvas_length: int = DEFAULT_CANVAS, vocab_size: int = GEMMA_VOCAB, pin_suffix: int = 0,
                 max_steps: int | None = None, narrow_canvas: bool = True) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise ModelLoadError("the remote vLLM backend needs httpx: pip install httpx") from exc
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers,
                                  timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))
        self.url = url
        try:  # fail at load, not at the first keystroke: the server must answer and serve the model
            served = self._models()
            model = model or next(iter(served))
            if model not in served:
                raise VLLMError(f"the vLLM server at {url} serves {', '.join(served)}, not {model!r}")
            tok = (HFTokenizer.from_dir(tokenizer_path) if tokenizer_path
                   else RemoteTokenizer(self._post, model, vocab_size))
            super().__init__(tok, ChatPrompter(tok, prompt), canvas_length, vocab_size, pin_suffix, max_steps,
                             narrow_canvas, model_name=model)
            _ = self.special  # resolves the special ids now
        except VLLMError as exc:
            self._http.close()
            raise ModelLoadError(str(exc)) from exc
        self.max_context = served[model] or 8192

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: dict) -> dict:
        import httpx

        try:
            r = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise VLLMError(f"cannot reach the vLLM server at {self.url}: {exc}") from exc
        if r.status_code >= 400:
            raise VLLMError(_error_message(r.status_code, r.text))
        return r.json()

    def _models(self) -> dict[str, int | None]:
        """The served models and their max_model_len (GET /v1/models)."""
        import httpx

        try:
            r = self._http.get("/v1/models")
        except httpx.HTTPError as exc:
            raise VLLMError(f"cannot reach the vLLM server at {self.url}: {exc}") from exc
        if r.status_code >= 400:
            raise VLLMError(_error_message(r.status_code, r.text))
        served = {str(m["id"]): m.get("max_model_len") for m in r.json().get("data") or []}
        if not served:
            raise VLLMError(f"the vLLM server at {self.url} serves no model")
        return served

    def complete(self, req: CanvasRequest, cancel: Callable[[], bool] | object | None = None) -> Iterator[Chunk]:
        """Stream one completion: a Chunk per committed canvas. Cancellation is checked before the request and
        between chunks; it closes the stream, and vLLM aborts a request whose client went away."""
        body: dict[str, Any] = {"model": self.model_name, "prompt": req.prompt_ids, "max_tokens": req.max_tokens,
                                "stream": True, "return_token_ids": True, "skip_special_tokens": True}
        if req.seed is not None:
            body["seed"] = req.seed
        if req.xargs():
            body["vllm_xargs"] = req.xargs()
        return self._chunks(req, self._stream(body, cancel))

    def _stream(self, body: dict, cancel: Callable[[], bool] | object | None
                ) -> Iterator[tuple[str, list[int] | None, str | None]]:
        import httpx

        if is_cancelled(cancel):
            raise Cancelled()
        try:
            with self._http.stream("POST", "/v1/completions", json=body) as r:
                if r.status_code >= 400:
                    raise VLLMError(_error_message(r.status_code, r.read().decode("utf-8", "replace")))
                for line in r.iter_lines():
                    if is_cancelled(cancel):
                        raise Cancelled()  # leaving the `with` closes the connection
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    msg = json.loads(data)
                    if "error" in msg or msg.get("object") == "error":
                        raise VLLMError(_error_message(200, data))
                    for choice in msg.get("choices") or []:
                        yield choice.get("text", ""), choice.get("token_ids"), choice.get("finish_reason")
                        if is_cancelled(cancel):
                            raise Cancelled()
        except httpx.HTTPError as exc:
            raise VLLMError(f"vLLM stream from {self.url} failed: {exc}") from exc


class VLLMLocalBackend(_VLLMBase):
    """vLLM in this process (`vllm.LLM`, the `vllm` extra): one GPU box, vLLM's kernels, no server to run.

    The offline `LLM.generate` returns a request's whole output at once: one Chunk, no streaming at all.
    """

    name = "vllm"

    def __init__(self, model_path: str | Path, diffusion_config: dict | None = None, prompt: PromptConfig | None = None,
                 pin_suffix: int = 0, max_steps: int | None = None, narrow_canvas: bool = True,
                 **llm_kwargs: Any) -> None:
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ModelLoadError("the in-process vLLM backend needs vllm >= 0.33 on a GPU machine: "
                                 "pip install 'diffusion-ls[vllm]'") from exc
        d = Path(model_path).expanduser()
        if not (d / "config.json").is_file():
            raise ModelLoadError(f"{d} is not a model directory (no config.json)")
        # what the checkpoint's weights take, computed from its config.json (shapes and quantization format) for
        # diffusion/status; a format engine.memory does not know leaves it out rather than refusing the checkpoint
        self.memory_format: str | None = None
        self.memory_estimate_bytes: float | None = None
        try:
            from engine import memory

            self.memory_format, self.memory_estimate_bytes = memory.checkpoint_estimate(d)
        except (ValueError, TypeError, OSError, ImportError):
            pass
        dc = {"canvas_length": DEFAULT_CANVAS, **(diffusion_config or {})}
        opts = {"max_num_seqs": 4, "generation_config": "vllm", **llm_kwargs}  # the recipe's settings
        self.llm = LLM(model=str(d), tokenizer=str(d), diffusion_config=dc, **opts)
        tok = HFTokenizer(self.llm.get_tokenizer())
        self.max_context = int(getattr(self.llm.llm_engine.model_config, "max_model_len", 0) or 8192)
        super().__init__(tok, ChatPrompter(tok, prompt), int(dc["canvas_length"]), tok.vocab_size, pin_suffix,
                         max_steps, narrow_canvas, device="cuda", model_name=d.name)

    def complete(self, req: CanvasRequest, cancel: Callable[[], bool] | object | None = None) -> Iterator[Chunk]:
        from vllm import SamplingParams

        def one() -> Iterator[tuple[str, list[int] | None, str | None]]:
            if is_cancelled(cancel):
                raise Cancelled()
            params = SamplingParams(max_tokens=req.max_tokens, seed=req.seed, extra_args=req.xargs() or None,
                                    skip_special_tokens=True)
            out = self.llm.generate([{"prompt_token_ids": req.prompt_ids}], params, use_tqdm=False)[0].outputs[0]
            yield out.text, list(out.token_ids), out.finish_reason or "stop"

        return self._chunks(req, one())


def _error_message(status: int, text: str) -> str:
    """vLLM's error body ({"error": {"message"}} or {"message"}) as one line."""
    try:
        body = json.loads(text)
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else str(err)
    except (ValueError, AttributeError):
        msg = text
    return f"vLLM server error {status}: {str(msg or text).strip()[:500]}"


def make_backend(kind: str, **opts: Any) -> _VLLMBase:
    """'vllm-remote' (url, model, api_key, tokenizer_path, ...) or 'vllm' (model_path, diffusion_config, ...)."""
    if kind == "vllm-remote":
        return VLLMRemoteBackend(**opts)
    if kind == "vllm":
        return VLLMLocalBackend(**opts)
    raise ValueError(f"unknown vLLM backend {kind!r}; 'vllm' (in process) or 'vllm-remote'")

