"""infill/: text <-> canvases. Documents, syntax spans, holes and their capacities, canvases, post-processing."""

from infill.canvas import Canvas, build_canvas, canvas_to_text, render_partial, spm_context
from infill.document import Document, Position, PositionError
from infill.holes import Hole, find_hole, find_placeholders, holes_at, rewrite_hole, token_counter
from infill.languages import LANGUAGES, language_for, parser_for
from infill.postprocess import finalize
from infill.spans import KINDS, Span, syntax_spans

__all__ = [
    "KINDS",
    "LANGUAGES",
    "Canvas",
    "Document",
    "Hole",
    "Position",
    "PositionError",
    "Span",
    "build_canvas",
    "canvas_to_text",
    "finalize",
    "find_hole",
    "find_placeholders",
    "holes_at",
    "language_for",
    "parser_for",
    "render_partial",
    "rewrite_hole",
    "spm_context",
    "syntax_spans",
    "token_counter",
]
