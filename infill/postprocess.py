"""Cleaning a fill before it reaches the editor: each rule a pure function, `finalize` chains them."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from infill import _syntax
from infill.holes import PLACEHOLDER

_OPENERS = {")": "(", "]": "[", "}": "{"}
_TRAILING_PUNCT = set(")]};,:'\"`")
_BLANK_LINES = re.compile(r"(?:[ \t]*\r?\n)+")


def trim_pads(ids: Sequence[int], pad: int, eos: int | None = None, mask: int | None = None) -> list[int]:
    """ids without pad (and leftover mask) slots, cut at the first end-of-text token."""
    out = []
    for tid in ids:
        if eos is not None and tid == eos:
            break
        if tid != pad and (mask is None or tid != mask):
            out.append(tid)
    return out


def trim_trailing_whitespace(fill: str, suffix: str) -> str:
    """Drop whitespace at the end of fill when the suffix starts a new line (or is empty): no blank lines pile up."""
    if not suffix or suffix[0] in "\r\n":
        return fill.rstrip()
    return fill


def _excess_closers(text: str) -> dict[str, int]:
    """Per closing bracket, how many more closers than openers text has."""
    return {c: text.count(c) - text.count(o) for c, o in _OPENERS.items()}


def dedupe_suffix(fill: str, suffix: str, max_lines: int = 3) -> str:
    """Remove the end of fill that repeats the start of the suffix (all of it when it is the suffix's start again).

    Whole lines: the fill's last lines equal (ignoring indentation) the suffix's next non-blank lines. Within the
    line: the fill ends with the first chars of the suffix's line when they are closing punctuation the fill does not
    need (a closing bracket only when the fill has more closers than openers).
    """
    # All of it: a one-line fill that is the text right after the cursor again (asked for inside a word, the model
    # writes the word's rest, which is there already: accepted, it would be doubled)
    once = fill.strip()
    if once and "\n" not in once and suffix.split("\n", 1)[0].lstrip(" \t").startswith(once):
        return ""
    # Whole lines.
    fill_lines = fill.rstrip().split("\n")
    suffix_lines = [ln.strip() for ln in suffix.split("\n") if ln.strip()][:max_lines]
    for n in range(min(max_lines, len(fill_lines) - 1, len(suffix_lines)), 0, -1):
        tail = [ln.strip() for ln in fill_lines[-n:]]
        if tail == suffix_lines[:n]:
            return "\n".join(fill_lines[:-n]).rstrip(" \t")
    # Within the line.
    rest = suffix.split("\n", 1)[0].strip()
    stripped = fill.rstrip(" \t")
    excess = _excess_closers(stripped)
    for k in range(min(len(rest), 8), 0, -1):
        tail = rest[:k]
        if not stripped.endswith(tail) or not set(tail) <= _TRAILING_PUNCT:
            continue
        if all(excess.get(c, 0) >= tail.count(c) for c in _OPENERS if c in tail):
            return stripped[: len(stripped) - k]
    return fill


def _leading(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def normalize_indent(fill: str, line_prefix: str, indent: str, unit: str = "    ") -> str:
    """Re-base the fill's later lines on the enclosing block's indentation.

    line_prefix is the cursor line's text before the hole; indent the block indentation the hole's lines belong to.
    A fill on an empty line gets the missing indentation on its first line; later lines are shifted together so the
    first of them sits at indent (one unit deeper when the first line opens a block), unless the first line continues
    onto them (open brackets); leading tabs become unit when unit is spaces.
    """
    lines = fill.split("\n")
    if "\t" not in unit and unit:
        lines = [_leading(ln).replace("\t", unit) + ln.lstrip(" \t") for ln in lines]
    if not line_prefix.strip() and len(line_prefix) < len(indent) and lines[0].strip():
        lines[0] = indent[len(line_prefix) :] + lines[0].lstrip(" \t")
    later = [ln for ln in lines[1:] if ln.strip()]
    first = lines[0].split("#")[0].rstrip()
    if (
        not later
        or any(v < 0 for v in _excess_closers(first).values())
        or sum(first.count(o) for o in "([{") > sum(first.count(c) for c in ")]}") + first.endswith("{")
    ):
        return "\n".join(lines)  # no later lines, or the first line continues onto them (open brackets)
    # The model's frame: where it put the first later line says where it thinks the first line starts.
    base = len(_leading(later[0])) - (len(unit) if first.endswith((":", "{")) else 0)
    delta = len(indent) - base
    if delta == 0:
        return "\n".join(lines)
    out = [lines[0]]
    for ln in lines[1:]:
        if not ln.strip():
            out.append(ln)
        elif delta > 0:
            out.append(indent[:delta] if len(indent) >= delta else " " * delta)
            out[-1] += ln
        else:
            lead = _leading(ln)
            out.append(lead[: max(0, len(lead) + delta)] + ln.lstrip(" \t"))
    return "\n".join(out)


def truncate_to_syntax(prefix: str, fill: str, suffix: str, lang: str | None) -> str:
    """Drop trailing lines of fill until the file has no more ERROR/MISSING nodes than with a placeholder (SAFIM).

    If no truncation gets there, the least broken one (fewest errors, then fewest bytes in errors, the candidate's own
    bytes not counted: a line broken before the fill, `debug('hy` with the editor's `'` after it, holds any fill in its
    error, and the empty fill won there every time; longest on ties).
    """
    if lang is None or not fill:
        return fill
    target = _syntax.count_errors(prefix + PLACEHOLDER + suffix, lang)
    lines = fill.split("\n")
    best, best_cost = fill, None
    for n in range(len(lines), -1, -1):
        candidate = "\n".join(lines[:n]).rstrip(" \t") if n < len(lines) else fill
        count, size = _syntax.brokenness(prefix + candidate + suffix, lang)
        cost = (count, max(0, size - len(_syntax.encode(candidate))))
        if cost[0] <= target:
            return candidate
        if best_cost is None or cost < best_cost:
            best, best_cost = candidate, cost
    return best


_PY_HEADER = re.compile(r"^[ \t]*(?:if|elif|while|for|with|def|class|async[ \t]+(?:def|for|with)|except)\b")


def close_line(prefix: str, fill: str, suffix: str, lang: str | None) -> str:
    """A one-line fill that ends its line with the line's brackets still open (or, in Python, a compound statement's
    header without its `:`), given what it lacks when that leaves the file no more broken than without the line.
    The model ends the line early: `tch)` for `return iter((self.major, self.minor, self.pa` left `iter(` open, and
    `data)` for `if len(` left the `if` without its colon; the line is the user's own, half typed, so it was broken
    before and the fill passed as no worse."""
    if lang is None or not fill.strip() or "\n" in fill or suffix.split("\n", 1)[0].strip():
        return fill
    line = prefix[prefix.rfind("\n") + 1 :] + fill
    missing = _syntax.unclosed(line)
    if missing is None:
        return fill
    header = lang == "python" and _PY_HEADER.match(line) is not None and not line.rstrip().endswith(":")
    candidates = [c for c in dict.fromkeys([missing, missing + ":" if header else "", ":" if header else ""]) if c]
    if not candidates:
        return fill
    # what the file has apart from this line: the fill is to leave the line no worse than not there at all
    target = _syntax.count_errors(prefix[: prefix.rfind("\n") + 1] + suffix.split("\n", 1)[-1], lang)
    if _syntax.count_errors(prefix + fill + suffix, lang) <= target:
        return fill
    body = fill.rstrip()
    tries = [body + extra for extra in candidates]
    if body.endswith(";") and missing:  # `x / 1000;`: the closers go before the statement's end
        tries.append(body[:-1] + missing + ";")
    for closed in tries:
        if _syntax.count_errors(prefix + closed + suffix, lang) <= target:
            return closed
    return fill


_EMPTY_STATEMENTS = re.compile(r";{2,}(?=[ \t]*(?://[^\n]*)?$)", re.M)  # `x = 0;;;;` at a line's end: one `;`
_AUTO_CLOSED = frozenset(")]}'\"`;,")  # what an editor's auto-pairs leave after the cursor (and a statement's end)


def meet_closers(prefix: str, fill: str, suffix: str, lang: str | None) -> str:
    """A one-line fill before what an editor closed already on the line (`debug('hy` + an auto-closed `')`): where the
    fill writes that closer itself and goes on (`perr trim', range)`), inserted whole it leaves the line broken
    (`debug('hyperr trim', range)')`) or, ending in a line break, pushes the closers to a line of their own. It is cut
    where it meets the first closer, when the file then parses better: `debug('hyperr trim')` (a VS Code trial)."""
    rest = suffix.split("\n", 1)[0].strip()
    line = prefix[prefix.rfind("\n") + 1 :]
    if lang is None or not rest or set(rest) - _AUTO_CLOSED or not line.strip():
        return fill
    body = fill.rstrip(" \t\r\n")  # a line break here would move the closers to a line of their own
    if "\n" in body or not body:
        return fill
    q = rest[0]
    if q in "'\"`":
        # inside a string the line opened with it (an odd count before the cursor), the fill's own closing quote
        # makes the editor's one open another string: cut there (tree-sitter's recovery may count that as better)
        # A fill that starts with it (`', range)` offered right after `perr trim` was accepted before the editor's
        # `'`) would go on past the editor's quote: nothing of it fits here, until the user types over that quote
        k = body.find(q)
        if k < 0 or not line.count(q) % 2:
            return body
        return body[:k] if body[:k].strip() else ""
    worst = _syntax.count_errors(prefix + body + suffix, lang)
    for k, c in enumerate(body):
        if c == q and _syntax.count_errors(prefix + body[:k] + suffix, lang) < worst:
            return body[:k]
    return body


_BARE_END = re.compile(r"[\w)\]'\"`]$")  # a line that could end a statement without its `;`
_ASI_HAZARD = re.compile(r"[ \t]*[(\[`+\-/]")  # a next line that would join the statement without it
SEMICOLON_LESS_LINES = 8  # lines that end a statement without `;` (and none with one) before a file counts as such


def match_semicolons(prefix: str, fill: str, suffix: str, lang: str | None) -> str:
    """A JavaScript/TypeScript fill's `;` at the ends of its lines dropped where the file around it writes its
    statements without them (standard style: a trial's `return testC` + `omparator.value;` in semver), unless the
    next line starts with what would join the two statements without it (`(`, `[`, a template, an operator)."""
    if lang not in ("javascript", "typescript", "tsx") or ";" not in fill:
        return fill
    code = [ln.strip() for ln in (prefix + suffix).split("\n")]
    code = [ln for ln in code if ln and not ln.startswith(("//", "/*", "*"))]
    if any(ln.endswith(";") and not ln.startswith("for") for ln in code) or \
            sum(1 for ln in code if _BARE_END.search(ln)) < SEMICOLON_LESS_LINES:
        return fill
    lines = fill.split("\n")
    after = suffix.split("\n", 1)
    for i, line in enumerate(lines):
        body = line.rstrip()
        # (a `;` alone after the line's code too: offered after an accepted `return this.formatted`, a VS Code trial)
        if not body.endswith(";") or body.lstrip().startswith("for"):
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else (after[1].split("\n", 1)[0] if len(after) > 1 else "")
        rest = "" if i + 1 < len(lines) else after[0]  # the last line: what follows the fill on its line
        if rest.strip() or _ASI_HAZARD.match(nxt):
            continue
        lines[i] = body[:-1] + line[len(body) :]
    return "\n".join(lines)



def finalize(
    prefix: str, fill: str, suffix: str, lang: str | None, situation: str, indent: str | None = None, unit: str = "    "
) -> str:
    """The fill to insert between prefix and suffix: deduplicated, re-indented (python), syntax-truncated.

    Never leaves the file with more ERROR/MISSING nodes than the empty fill: then "" is returned.
    """
    start, end = _syntax.window(prefix + suffix, len(prefix))  # a big file: only the part around the hole is parsed
    prefix, suffix = prefix[start:], suffix[: end - len(prefix)]
    line_prefix = prefix[max(prefix.rfind("\n"), prefix.rfind("\r")) + 1 :]
    fill = trim_trailing_whitespace(fill, suffix)
    fill = dedupe_suffix(fill, suffix)
    fill = meet_closers(prefix, fill, suffix, lang)
    if line_prefix and not line_prefix.strip():
        # after the line's indentation, blank lines first would leave the line blank (a re-check's fill of a `...` body
        # kept a line of four spaces above its code): the fill starts at its first line of text, indented from here
        blank = _BLANK_LINES.match(fill)
        if blank:
            fill = fill[blank.end() :]
            fill = fill[len(os.path.commonprefix([_leading(fill), line_prefix])) :]
        # after the line's indentation, a lead shorter than one indent unit is a token's space (` var`), not a level
        lead = len(fill) - len(fill.lstrip(" \t"))
        if 0 < lead < len(unit):
            fill = fill[lead:]
    if lang == "python" and situation not in ("comment", "rest_of_line", "expression", "arguments", "control_header"):
        fill = normalize_indent(fill, line_prefix, line_prefix if indent is None else indent, unit)
    if lang is not None and lang != "python":
        fill = match_semicolons(prefix, _EMPTY_STATEMENTS.sub(";", fill), suffix, lang)
    fill = truncate_to_syntax(prefix, fill, suffix, lang)
    fill = trim_trailing_whitespace(fill, suffix)
    fill = close_line(prefix, fill, suffix, lang)
    if lang is not None and fill:
        if _syntax.count_errors(prefix + fill + suffix, lang) > _syntax.count_errors(prefix + suffix, lang):
            return ""
    return fill
