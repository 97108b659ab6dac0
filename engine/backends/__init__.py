"""Backends: every model sits behind the same seam (engine.backend.Backend)."""

from __future__ import annotations

from typing import Any

BACKENDS = ("embedded", "transformers", "vllm", "vllm-remote", "mercury", "masked-diffusion")


def load_backend(kind: str = "embedded", **opts: Any) -> Any:
    """The backend a config names: embedded, transformers, vllm (in process), vllm-remote, mercury (hosted) or
    masked-diffusion (Dream/LLaDA family)."""
    if kind == "embedded":
        from engine.backend import EmbeddedBackend

        return EmbeddedBackend(**opts)
    if kind == "transformers":
        from engine.backends.transformers import make_backend

        return make_backend(kind, **opts)
    if kind in ("vllm", "vllm-remote"):
        from engine.backends.vllm import make_backend as make_vllm

        return make_vllm(kind, **opts)
    if kind == "mercury":  # Inception's hosted diffusion model
        from engine.backends.mercury import make_backend as make_mercury

        return make_mercury(kind, **opts)
    if kind == "masked-diffusion":  # Dream/LLaDA-family checkpoints: prefix, masks, suffix in one sequence
        from engine.backends.masked import make_backend as make_masked

        return make_masked(kind, **opts)
    raise ValueError(f"unknown backend {kind!r}; one of {', '.join(BACKENDS)}")
