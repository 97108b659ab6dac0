"""Backends: every model sits behind the same seam (engine.backend.Backend)."""
