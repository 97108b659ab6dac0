"""Server settings: one validated model, every field defaulted; a bad value is reported and replaced by its default.

Settings come from `initializationOptions` and `workspace/didChangeConfiguration`, either flat or under a
`"diffusion"` section (VS Code sends `{"diffusion": {...}}`; Neovim passes what the user wrote). Keys are camelCase
on the wire (`maxTokens`); snake_case is accepted too.

API keys are read from the environment, never from settings (settings end up in editor config files and logs): a remote
vLLM server's from `DIFFUSION_LS_API_KEY`, Inception's (the mercury backend) from `INCEPTION_API_KEY`.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from engine.sampler import STRATEGIES, SamplerConfig

SECTION = "diffusion"  # the settings namespace clients use
API_KEY_ENV = "DIFFUSION_LS_API_KEY"  # the remote vLLM server's API key (sent as a bearer token)
MERCURY_KEY_ENV = "INCEPTION_API_KEY"  # Inception's API key: the name its own docs and other clients use
NATIVE = "native"  # strategy: the model's own denoising loop (transformers backend only)
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")
_SAMPLER = SamplerConfig()
Strategy = Literal["confidence", "margin", "entropy", "threshold", "eb", "lossless", "learned", "native"]


class Settings(BaseModel):
    """Everything a user can set. Defaults suit the embedded model on a laptop CPU."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    # embedded: the shipped model; transformers: DiffusionGemma from modelPath; vllm: DiffusionGemma in vLLM in this
    # process (modelPath); vllm-remote: a shared `vllm serve` at serverUrl; mercury: Inception's hosted API;
    # masked-diffusion: a Dream/LLaDA-family checkpoint from modelPath (prefix, masks, suffix in one canvas)
    backend: Literal["embedded", "transformers", "vllm", "vllm-remote", "mercury", "masked-diffusion"] = "embedded"
    model_path: str | None = None  # embedded: None = the shipped model; transformers / vllm: a local checkpoint dir
    device: str = "cpu"  # "cpu", "cuda", "cuda:N" or "mps"
    # the weights' dtype; auto: the embedded model's products in int8 on an x86 CPU with AVX2 (bfloat16 or float32 under
    # `lossless`, whose batches must be exact), the rest in bfloat16 where the device multiplies it natively; others
    # as stored
    dtype: Literal["auto", "float32", "bfloat16", "float16", "int8"] = "auto"
    # transformers: how the weights are quantized. "experts-int4" / "experts-int8" quantize DiffusionGemma's fused
    # experts (88% of it) weight-only (engine.quant): the 26B then fits one 24 GB GPU with int4. transformers' own
    # quantizers (bnb-*, quanto-*, torchao-*) convert only nn.Linear modules whose weights are not shared, so they
    # leave the experts and the shared weights in bf16 (measured: tools/moe_memory.py); the backend refuses each with
    # that reason. "none" loads the checkpoint as it is.
    quantization: Literal["none", "experts-int4", "experts-int8", "bnb-4bit", "bnb-8bit", "quanto-int8",
                          "quanto-int4", "torchao-int8", "torchao-int4"] = "none"
    server_url: str | None = None  # vllm-remote: the server's base URL, e.g. http://gpu-box:8000; mercury: the API's
    # vllm-remote: the served model's name (None: the server's first); mercury: the model for every request (None:
    # mercury-edit-2 for fills, mercury-2 for rewrites)
    server_model: str | None = None
    pin_suffix: int = Field(0, ge=0, le=64)  # vllm: the suffix's first tokens pinned after the hole (0: prompt only)
    # masked-diffusion: run the Python files a checkpoint ships (Dream's and LLaDA's model code); off: transformers'
    # own classes only (Open-dCoder's Qwen2), since that code runs with the server's rights
    trust_remote_code: bool = False
    # masked-diffusion: Fast-dLLM's dual cache (only the canvas runs after a block's first forward); off by default:
    # it is approximate for bidirectional models (the cached keys saw the canvas as it was)
    dual_cache: bool = False
    mask_token_id: int | None = Field(None, ge=0)  # masked-diffusion: None = the checkpoint's (config, tokenizer)
    logit_shift: bool | None = None  # masked-diffusion: the logit at i predicts i + 1; None = the family's (Dream: yes)
    # "native": the model's own loop (transformers; the embedded model uses "eb", with a warning; vLLM always runs its
    # own loop, whatever the strategy)
    # the sampler's defaults are engine.sampler.SamplerConfig's (one place to change them)
    strategy: Strategy = _SAMPLER.strategy  # type: ignore[assignment]  # SamplerConfig's is a plain str
    steps: int = Field(_SAMPLER.steps, ge=1, le=1024)  # forwards per block at most (32: at least one token a forward)
    threshold: float = Field(_SAMPLER.threshold, gt=0.0, le=1.0)  # `threshold` strategy: finalize slots this confident
    block_size: int = Field(_SAMPLER.block_size, ge=1, le=1024)  # long holes are denoised block by block
    # a cursor hole's first canvas, doubled while the model writes up to its last slot; 0: the sized capacity;
    # None: the backend's default (the embedded model: 8; DiffusionGemma: 0, its canvas is not a length hint)
    canvas_start: int | None = Field(None, ge=0, le=1024)
    max_tokens: int = Field(_SAMPLER.max_new, ge=1, le=4096)  # hard cap on one fill (a full canvas grows up to this)
    context_budget: int = Field(384, ge=16, le=65536)  # tokens of file context around the hole
    # tokens of other files' chunks before the SPM context (server.workspace selects them; 0: off, nothing indexed).
    # None: the backend's (capabilities.repo_context): what its model was trained to read, 0 for one never trained so
    repo_context_budget: int | None = Field(None, ge=0, le=65536)
    # completion as you type: a fill with a token the model finalized below this probability is not shown (asked for,
    # it is); 0: show every fill. The shipped model's such fills are rarely right (README, confidence gate)
    min_confidence: float = Field(0.4, ge=0.0, le=1.0)
    # completion as you type: a fill the model has not finished after this many forwards is given up, not shown
    # (asked for, it runs to its end); 0: no limit. Such fills are rarely shown and make the slowest keystrokes
    typing_forwards: int = Field(7, ge=0, le=1024)
    debounce_ms: int = Field(75, ge=0, le=10_000)  # for clients: wait this long after a keystroke before asking
    # hold every intermediate canvas this long before the next forward: a denoising slow enough to watch (demos,
    # screen recordings, editor tests that must see an intermediate canvas); 0: off, as fast as the model goes
    canvas_delay_ms: int = Field(0, ge=0, le=10_000)
    languages: list[str] | None = None  # allow-list of languageIds / language names; None: every language
    # completion as you type in a language the model is weak at (its languages.json): "explicit" asks for a request
    # the user made (a weak model's guesses while typing are mostly noise), "automatic" completes anyway, "off" never
    weak_languages: Literal["explicit", "automatic", "off"] = "explicit"
    log_level: Literal["error", "warning", "info", "debug"] = "info"  # window/logMessage verbosity
    log_file: str | None = None  # also append logs to this file
    threads: int | None = Field(None, ge=1, le=256)  # torch CPU threads; None: half the cores, at most 4

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not _DEVICE.match(v):
            raise ValueError("must be 'cpu', 'cuda', 'cuda:N' or 'mps'")
        return v

    @field_validator("languages")
    @classmethod
    def _languages(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [s.strip().lower() for s in v]

    @field_validator("server_url")
    @classmethod
    def _server_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("must be an http:// or https:// URL")
        return v

    def as_you_type(self) -> dict[str, Any]:
        """fill.run's limits for a completion as you type (an automatic request): what is not shown, nor spent on."""
        return {"min_confidence": self.min_confidence, "max_forwards": self.typing_forwards}

    def sampler(self, seed: int = 0, backend: Any = None) -> SamplerConfig:
        """The sampler settings for one fill; a backend with `sampler_config` (DiffusionGemma) supplies what the
        settings do not name (its noise, entropy bound), and any backend its noise kind. "native" runs engine.sampler's
        loop as "eb" (the closest strategy) where the model's own loop is not used."""
        opts: dict[str, Any] = dict(strategy="eb" if self.strategy == NATIVE else self.strategy, steps=self.steps,
                                    threshold=self.threshold, block_size=self.block_size, max_new=self.max_tokens,
                                    seed=seed)
        if self.canvas_start is not None:
            opts["start"] = self.canvas_start
        make = getattr(backend, "sampler_config", None)
        if make is not None:
            return make(**opts)
        if backend is not None:
            opts["noise"] = getattr(backend, "noise", "mask")
        return SamplerConfig(**opts)

    def limits(self, backend: Any) -> tuple[int, int, int]:
        """(context budget, max tokens, model positions): the settings cut so context + fill + one canvas block fit
        the backend's positions (a budget larger than the model can take would fail every request in a big file);
        positions 0 when the backend does not say."""
        room = int(getattr(backend, "max_context", 0) or 0)
        if room <= 0:
            return self.context_budget, self.max_tokens, 0
        max_tokens = max(1, min(self.max_tokens, room // 2))
        return max(16, min(self.context_budget, room - max_tokens - self.block_size - 8)), max_tokens, room

    def repo_wanted(self, backend: Any) -> int:
        """repoContextBudget, or where it is not set the backend's (none before one is loaded)."""
        if self.repo_context_budget is not None:
            return self.repo_context_budget
        return backend.capabilities.repo_context if backend is not None else 0

    def repo_budget(self, backend: Any) -> int:
        """The repository context's tokens for a fill: repo_wanted cut to what the model's positions leave after the
        file context, a fill and a block."""
        budget, max_tokens, room = self.limits(backend)
        want = self.repo_wanted(backend)
        if room <= 0:
            return want
        return max(0, min(want, room - budget - max_tokens - self.block_size - 8))

    def backend_key(self) -> tuple:
        """What the loaded backend depends on: a change means loading it again."""
        return (self.backend, self.model_path, self.device, self.threads, self.dtype, self.exact_batches(),
                self.server_url, self.server_model, self.pin_suffix, self.trust_remote_code, self.dual_cache,
                self.mask_token_id, self.logit_shift, self.quantization)

    def exact_batches(self) -> bool:
        """Whether the embedded model must decode a batch of canvases exactly as each alone: `lossless` checks its
        drafts so, and dtype `auto` then keeps a floating-point format instead of int8."""
        return self.backend == "embedded" and self.strategy == "lossless"

    def backend_options(self) -> dict[str, Any]:
        """engine.backends.load_backend's options for `backend`; raises ValueError when a required setting is missing.
        """
        if self.backend == "embedded":
            return {"model_dir": self.model_path, "device": self.device, "threads": self.threads, "dtype": self.dtype,
                    "exact_batches": self.exact_batches()}
        if self.dtype == "int8":
            raise ValueError("dtype int8 is the embedded model's (8-bit products on the CPU); a checkpoint's "
                             "weights are quantized with `quantization`")
        if self.backend == "transformers":
            if not self.model_path:
                raise ValueError("the transformers backend needs `modelPath`: a local DiffusionGemma checkpoint "
                                 "directory (config.json, model.safetensors, tokenizer files)")
            return {"model_path": self.model_path, "device": self.device, "dtype": self.dtype,
                    "threads": self.threads,
                    **({"quantization": self.quantization} if self.quantization != "none" else {})}
        if self.backend == "masked-diffusion":
            if not self.model_path:
                raise ValueError("the masked-diffusion backend needs `modelPath`: a local Dream/LLaDA-family "
                                 "checkpoint directory (config.json, safetensors weights, tokenizer files)")
            return {"model_path": self.model_path, "device": self.device, "dtype": self.dtype, "threads": self.threads,
                    "trust_remote_code": self.trust_remote_code, "dual_cache": self.dual_cache,
                    "mask_token_id": self.mask_token_id, "logit_shift": self.logit_shift}
        if self.backend == "mercury":
            return {"api_key": os.environ.get(MERCURY_KEY_ENV) or None, "url": self.server_url,
                    "model": self.server_model}
        if self.backend == "vllm":
            if not self.model_path:
                raise ValueError("the vllm backend needs `modelPath`: a local DiffusionGemma checkpoint directory")
            return {"model_path": self.model_path, "pin_suffix": self.pin_suffix}
        if not self.server_url:
            raise ValueError("the vllm-remote backend needs `serverUrl`: the vLLM server's base URL "
                             "(e.g. http://gpu-box:8000)")
        return {"url": self.server_url, "model": self.server_model, "api_key": os.environ.get(API_KEY_ENV) or None,
                "pin_suffix": self.pin_suffix}

    def notes(self) -> list[str]:
        """Settings that are valid but do not apply to the chosen backend (said once, when they are adopted)."""
        out = []
        if self.quantization != "none" and self.backend != "transformers":
            out.append(f"quantization {self.quantization!r} is for the transformers backend; the {self.backend} "
                       "backend ignores it (vllm: give a pre-quantized checkpoint directory as modelPath)")
        if self.strategy == NATIVE and self.backend in ("embedded", "masked-diffusion"):  # vLLM: always its own loop
            out.append(f"strategy 'native' (the model's own loop) is for the transformers backend; the {self.backend} "
                       "model uses 'eb' instead")
        if self.strategy == "lossless" and self.backend in ("transformers", "masked-diffusion"):  # exact_batches
            out.append(f"strategy 'lossless' checks its drafts in batches on the embedded model only; the "
                       f"{self.backend} backend decodes the same text one token per forward")
        if self.strategy == "learned" and self.backend != "embedded":  # engine.finalizer: one model's classifier
            out.append(f"strategy 'learned' needs a finalizer trained on the model (the embedded model's "
                       f"finalizer.safetensors); the {self.backend} backend has none: its fills fail until another "
                       "strategy is chosen")
        return out

    def allows(self, language_id: str | None, language: str | None) -> bool:
        """Whether completion is enabled for a document with this languageId / our language name."""
        if self.languages is None:
            return True
        return any(x and x.lower() in self.languages for x in (language_id, language))


assert set(Settings.model_fields["strategy"].annotation.__args__) == {*STRATEGIES, NATIVE}  # type: ignore[union-attr]


def _section(raw: Any) -> Any:
    if isinstance(raw, dict) and SECTION in raw:
        return raw[SECTION] or {}
    return raw


def parse_settings(raw: Any, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """(settings, problems) from client options; every invalid field falls back to its default, named in problems.

    `base` (the current settings) supplies the fields `raw` leaves out: a partial update changes only what it names.
    """
    raw = _section(raw)
    problems: list[str] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return Settings(), [f"settings must be an object, got {type(raw).__name__}; using the defaults"]
    data: dict[str, Any] = dict(base.model_dump(by_alias=True)) if base is not None else {}
    known = {f: name for name, fi in Settings.model_fields.items() for f in (name, fi.alias)}
    for key, value in raw.items():
        if key in known:
            data.pop(Settings.model_fields[known[key]].alias or key, None)
            if value is not None:  # null resets a setting to its default
                data[key] = value
    unknown = sorted(k for k in raw if k not in known)
    if unknown:
        problems.append(f"unknown setting{'s' if len(unknown) > 1 else ''} ignored: {', '.join(unknown)}")
    while True:
        try:
            return Settings.model_validate(data), problems
        except ValidationError as exc:
            bad = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
            if not bad:  # cannot happen with a dict of fields; guard against a loop
                return Settings(), problems + [f"invalid settings ({exc.error_count()} errors); using the defaults"]
            for err in exc.errors():
                key = str(err["loc"][0]) if err["loc"] else "?"
                if key in data:
                    default = Settings.model_fields[known[key]].default
                    why = str(err["msg"]).removeprefix("Value error, ")  # pydantic's prefix for a validator's message
                    # a default of None means "what the model or the machine says": no value to show
                    problems.append(f"invalid setting {key}={data[key]!r} ({why}); using the default"
                                    + ("" if default is None else f" {default!r}"))
                    data.pop(key)
