"""Server settings: one validated model, every field defaulted; a bad value is reported and replaced by its default.

Settings come from `initializationOptions` and `workspace/didChangeConfiguration`, either flat or under a
`"diffusion"` section (VS Code sends `{"diffusion": {...}}`; Neovim passes what the user wrote). Keys are camelCase
on the wire (`maxTokens`); snake_case is accepted too.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from engine.sampler import STRATEGIES, SamplerConfig

SECTION = "diffusion"  # the settings namespace clients use
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


class Settings(BaseModel):
    """Everything a user can set. Defaults suit the embedded model on a laptop CPU."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    backend: Literal["embedded"] = "embedded"  # the only backend shipped so far; remote ones plug in behind it
    model_path: str | None = None  # None: the model shipped in engine/assets/model
    device: str = "cpu"  # "cpu", "cuda", "cuda:N" or "mps"
    strategy: Literal["confidence", "margin", "entropy", "threshold", "eb"] = "threshold"  # Fast-dLLM: few forwards
    steps: int = Field(16, ge=1, le=1024)  # forwards per block at most
    threshold: float = Field(0.7, gt=0.0, le=1.0)  # `threshold` strategy: finalize slots at least this confident
    block_size: int = Field(32, ge=1, le=1024)  # long holes are denoised block by block
    max_tokens: int = Field(256, ge=1, le=4096)  # hard cap on one fill (a full canvas grows up to this)
    context_budget: int = Field(384, ge=16, le=65536)  # tokens of file context around the hole
    debounce_ms: int = Field(75, ge=0, le=10_000)  # for clients: wait this long after a keystroke before asking
    languages: list[str] | None = None  # allow-list of languageIds / language names; None: every language
    log_level: Literal["error", "warning", "info", "debug"] = "info"  # window/logMessage verbosity
    log_file: str | None = None  # also append logs to this file
    threads: int | None = Field(None, ge=1, le=256)  # torch CPU threads; None: torch's default

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

    def sampler(self, seed: int = 0) -> SamplerConfig:
        """The sampler settings for one fill."""
        return SamplerConfig(strategy=self.strategy, steps=self.steps, threshold=self.threshold,
                             block_size=self.block_size, max_new=self.max_tokens, seed=seed)

    def backend_key(self) -> tuple:
        """What the loaded backend depends on: a change means loading it again."""
        return (self.backend, self.model_path, self.device, self.threads)

    def allows(self, language_id: str | None, language: str | None) -> bool:
        """Whether completion is enabled for a document with this languageId / our language name."""
        if self.languages is None:
            return True
        return any(x and x.lower() in self.languages for x in (language_id, language))


assert set(Settings.model_fields["strategy"].annotation.__args__) == set(STRATEGIES)  # type: ignore[union-attr]


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
                    problems.append(f"invalid setting {key}={data[key]!r} ({err['msg']}); using the default "
                                    f"{default!r}")
                    data.pop(key)
