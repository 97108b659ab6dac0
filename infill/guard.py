"""The edit guard: an edit the server returns never makes the user's code worse.

Every fill (a cursor completion, placeholders, a rewrite) passes `check` before it leaves the server. An edit is
refused, and the text it would replace kept, when it

- replaces a non-empty selection or placeholder with nothing (accepting it would delete code without a word),
- equals the text it replaces (nothing would change, yet "Accept" would be offered),
- adds parse errors: the document with the edit applied has more ERROR/MISSING nodes than the document before
  (parsed in the window around the edit, so the cost stays flat in the file's size; an edit that replaces text is
  judged on the whole file when that window is broken already, as one cut inside a docstring is); for Python also when
  the window compiled before and does not after (Python rejects indentation and empty bodies tree-sitter lets through),
- removes a definition the code around it still uses: a name the replaced text assigned or declared, which the text
  around the edit uses and the new text does not have; or removes, renames or moves a function, class or method
  (tree-sitter's definitions),
- reads a name no binding reaches where it is read (Python by symtable and the function's own order of bindings,
  JavaScript and TypeScript by their declarations' scopes), or leaves code that reads one,
- does what a reader sees fails without running it: a call of a module function with the wrong number of arguments,
  an assignment to a const, a key twice in one object, a return left without its value, a string or comment opened
  and left open, and, where Node is installed, JavaScript that Node's parser rejects.

Cheap repairs run before the check, never after it: a missing final newline of a whole-line selection, and closing
brackets the edit opened but did not close. A refused edit carries the reason, for the editor to show.
"""

from __future__ import annotations

import ast
import bisect
import codecs
import functools
import keyword
import re
import shutil
import subprocess
import textwrap
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from infill import _syntax


@dataclass(frozen=True)
class Proposal:
    """An edit as the model proposes it: text for [start, end) of the document."""

    start: int
    end: int
    text: str  # the post-processed fill
    raw: str = ""  # the model's text before post-processing (to say why an empty fill is empty)


@dataclass(frozen=True)
class Verdict:
    text: str  # what goes into [start, end): the (repaired) fill, or the text there now when refused
    reason: str | None = None  # None: the edit passed; else why the document's text was kept
    repair: str = ""  # the repairs applied before the check passed ("newline", "brackets")

    @property
    def ok(self) -> bool:
        return self.reason is None


def _snippet(s: str, n: int = 60) -> str:
    line = next((ln.strip() for ln in s.splitlines() if ln.strip()), "")
    return line if len(line) <= n else line[: n - 1] + "…"


def _close_brackets(text: str, old: str) -> str | None:
    """text with the closing brackets it opened but did not close, when the text it replaces left none open."""
    missing = _syntax.unclosed(text)
    if not missing or _syntax.unclosed(old) != "":
        return None
    body = text.rstrip()
    return body + missing + text[len(body) :]


def _compiles(source: str) -> bool:
    return _syntax.python_compiles(source)


def _as_module(window: str) -> str:
    """Python source of a window: one cut inside a long class starts with an indented method (infill._syntax.window),
    which Python reads only as a class body; read alone it never compiles, and the compile checks were skipped."""
    return "class _:\n" + window if window[:1] in (" ", "\t") else window


class _Errors:
    """Parse-error counts of the document and of edited copies, in the window around the edits."""

    def __init__(self, text: str, lang: str | None) -> None:
        self.text, self.lang = text, lang
        self._before: dict[tuple[int, int], int] = {}
        self._compiles: dict[tuple[int, int], bool] = {}
        self._names: _syntax.PythonNames | None | bool = False  # the file's own bindings (False: it does not parse)
        self._names_read = False
        self._lines: list[int] | None = None  # offsets of the text's line breaks
        self._redeclared: dict[tuple[int, int], set[str]] = {}
        self._unresolved: set[str] | None | bool = False  # names the file itself reads where nothing binds them
        self._module: ast.Module | None | bool = False  # the file, parsed (False: not yet)
        self._prose: dict[int, bool] = {}
        self._edited: dict[tuple[int, int, str], ast.Module | None] = {}  # the file with one edit, parsed
        self._private: Counter[str] | None = None  # the file's own private-name errors (JavaScript, TypeScript)

    def edited_module(self, start: int, end: int, new: str) -> ast.Module | None:
        """The file with [start, end) replaced by new, parsed (None: it does not parse); parsed once per edit for the
        checks that read it (dropped_definition, read_before_set, bad_arity)."""
        key = (start, end, new)
        if key not in self._edited:
            self._edited[key] = _syntax.python_module(self.text[:start] + new + self.text[end:])
        return self._edited[key]

    def window(self, start: int, end: int) -> tuple[int, int]:
        return _syntax.window(self.text, start, end)

    def new_redefinition(self, start: int, end: int, new: str) -> tuple[str, int] | None:
        """(name, line of the other) of a function or class the edit defines where the same body already defines one
        of that name, neither decorated (a setter, an overload, a registered `_` are not redefinitions), when the file
        did not have that pair already; 1-based lines of the file as it is. From a trial: `def _siftup_max(heap,
        pos):` typed as `def _siftup(heap):`, hiding heapq's own `_siftup`. 13 such pairs in 463,204 real definitions
        of installed packages and the standard library, most of them tests."""
        module = self.edited_module(start, end, new)
        if module is None:
            return None
        first = self.line(start)
        last = first + new.count("\n")
        shift = new.count("\n") - self.text.count("\n", start, end)
        pairs = _redefinitions(module)
        mine = [(name, a, b) for name, a, b in pairs if first <= a <= last or first <= b <= last]
        if not mine:
            return None
        before = self.module()
        old = {name for name, _, _ in _redefinitions(before)} if before is not None else set()
        for name, a, b in mine:
            if name not in old:
                other = b if first <= a <= last else a
                return name, other if other < first else other - shift
        return None

    def new_private_error(self, start: int, end: int, new: str) -> str | None:
        """What the edit does wrong with JavaScript's private names that the file did not (private_name_errors, on
        the whole file: a class's declarations may lie far from the edit). From a trial: `this.#syncSchedule` for
        `#syncScheduled`, and a rewrite of `readonly #languageId` as a second `readonly #owner`."""
        base = max(0, start - 200)
        typed = re.search(r"#[\w$]*$", self.text[base:start])  # a private name typed half-way at the cursor
        if self.lang not in ("javascript", "typescript", "tsx") or len(self.text) > WHOLE_FILE_CHARS \
                or "#" not in new and "#" not in self.text[start:end] and typed is None:
            return None
        if self._private is None:
            self._private = _syntax.private_name_errors(self.text, self.lang)
        after = _syntax.private_name_errors(self.text[:start] + new + self.text[end:], self.lang)
        grown = [why for why, n in after.items() if n > self._private[why]]
        if start == end and typed is not None and not re.search(
                re.escape(typed.group()) + r"[\w$]", self.text[: base + typed.start()] + self.text[start:]):
            # a private name of the user's own, typed before its declaration: no name the file has starts so
            grown = [why for why in grown if not why.startswith(f"uses `{typed.group()}")]
        return grown[0] if grown else None

    def new_nonsense(self, start: int, end: int, new: str) -> str | None:
        """The first of _python_nonsense's (or _js_nonsense's) reasons the edit adds, in the window around it."""
        lo, hi = self.text.rfind("\n", 0, start) + 1, self.text.find("\n", end)
        touched = self.text[lo:start] + new + self.text[end : len(self.text) if hi < 0 else hi]  # the edited lines
        if self.lang == "python":
            if not re.search(r"[<>=!]=?|\[|\bre\.", touched):
                return None
            # the edited lines alone (a header given a body): a keystroke's fill costs no parse of the file
            after = _python_nonsense(_lines_module(touched), 1, touched.count("\n") + 1)
            old_lines = touched[: start - lo] + self.text[start:end] + touched[start - lo + len(new) :]
            before = _python_nonsense(_lines_module(old_lines), 1, old_lines.count("\n") + 1) if after \
                else Counter()
        elif self.lang in ("javascript", "typescript", "tsx") and re.search(r"[<>=!]=?|\[", touched):
            win = self.window(start, end)
            after = _js_nonsense(self.edited(win, [(start, end, new)]), self.lang)
            before = _js_nonsense(self.text[win[0] : win[1]], self.lang) if after else Counter()
        else:
            return None
        return next(iter(after - before), None)

    def in_prose(self, at: int) -> bool:
        """Whether offset `at` is inside a comment or a string: words typed there are prose, not names."""
        if at not in self._prose:
            self._prose[at] = self._in_prose(at)
        return self._prose[at]

    def _starts_in_code(self, start: int) -> bool:
        """Whether the file before `start` parses cleanly, so a window from there does not start inside a string or a
        comment. That text stays the same while a line below it is typed: its parse is kept (the whole file's is not,
        and cost a keystroke in a 37 KB file 3 ms)."""
        tree = _syntax.parse(self.text[:start], self.lang)
        return tree is not None and not tree.root_node.has_error

    def _in_prose(self, at: int) -> bool:
        win = self.window(at, at)
        tree = _syntax.parse(self.text[win[0] : win[1]], self.lang)
        if tree is not None and tree.root_node.has_error and win != (0, len(self.text)) \
                and len(self.text) <= WHOLE_FILE_CHARS:
            whole = _syntax.parsed(self.text, self.lang)  # the file's own tree, when a check parsed it already
            if whole is not None:
                win, tree = (0, len(self.text)), whole
            elif not self._starts_in_code(win[0]):
                win = (0, win[1])  # a window cut inside a string reads it inside out: read from the file's start
                tree = _syntax.parse(self.text[: win[1]], self.lang)
        if tree is None:
            return False
        b = len(_syntax.encode(self.text[win[0] : at]))
        node = tree.root_node.descendant_for_byte_range(b, b)
        while node is not None:
            if node.type in _PROSE and node.start_byte < b:
                return True
            node = node.parent
        # the end of a line comment is still the comment (the node there is the next one): `// the only allowed mil`
        last = tree.root_node.descendant_for_byte_range(b - 1, b - 1) if b > 0 else None
        return last is not None and last.type == "comment" and last.end_byte == b \
            and (last.text or b"").startswith((b"//", b"#"))

    def before(self, win: tuple[int, int]) -> tuple[int, int]:
        if win not in self._before:
            self._before[win] = _syntax.brokenness(self.text[win[0] : win[1]], self.lang)
        return self._before[win]

    def edited(self, win: tuple[int, int], edits: Sequence[tuple[int, int, str]]) -> str:
        parts, pos = [], win[0]
        for start, end, new in edits:
            parts += [self.text[pos:start], new]
            pos = end
        parts.append(self.text[pos : win[1]])
        return "".join(parts)

    def spans(self, win: tuple[int, int], edits: Sequence[tuple[int, int, str]], text: str, new: bool
              ) -> list[tuple[int, int]]:
        """Byte spans in `text` (the window, edited when `new`) of each edit's new text, or of the text it replaces,
        without its trailing whitespace."""
        om, out, shift = _syntax.OffsetMap(text), [], -win[0]
        for start, end, repl in edits:
            kept = len((repl if new else self.text[start:end]).rstrip())
            out.append((om.to_byte(start + shift), om.to_byte(start + shift + kept)))
            if new:
                shift += len(repl) - (end - start)
        return out

    def adds_errors(self, edits: Sequence[tuple[int, int, str]]) -> bool:
        if not self._adds_errors(edits):
            return False
        # a Python window cut inside an indented block reads as broken, and an edit can move its errors about (a
        # trial's `print(result)` on the line after a `return` was said to add parse errors): where the window was
        # broken already, the whole edited file compiling says it adds none (checked only here, on a refusal)
        win = self.window(edits[0][0], edits[-1][1])
        if self.lang != "python" or win == (0, len(self.text)) or len(self.text) > WHOLE_FILE_CHARS \
                or not self.before(win)[0]:
            return True
        whole, keep, shift = self.text, [], 0
        for start, end, new in edits:
            lo = whole.count("\n", 0, start + shift)
            keep.append((lo, lo + new.count("\n")))
            whole = whole[: start + shift] + new + whole[end + shift :]
            shift += len(new) - (end - start)
        filled = _syntax.fill_empty_blocks(whole, keep)
        return filled is None or not _compiles(filled)

    def _adds_errors(self, edits: Sequence[tuple[int, int, str]]) -> bool:
        if self.lang is None or not edits:
            return False
        win = self.window(edits[0][0], edits[-1][1])
        replaces = any(start != end for start, end, _ in edits)
        if win != (0, len(self.text)) and len(self.text) <= WHOLE_FILE_CHARS and self.before(win)[0] > 0:
            # a window with no top-level line within reach can start inside a string or a block: broken already, it
            # hides what an edit breaks (a trial accepted a rewrite that stopped a 59 KB file compiling; another, a
            # cursor fill `};` after a finished statement inside dayjs's one big top-level function, which closed it
            # early), and reads words typed in a docstring as code. A cursor fill in a window that starts in code keeps
            # the window's flat cost, unless it has a bracket in a language whose blocks brackets close: a Python
            # window after a prefix that parses has no bracket open before it. One that starts in a string is read
            # from the file's start (which is code) to its own end.
            if replaces or (self.lang != "python" and any(_BRACKET.search(new) for _, _, new in edits)):
                win = (0, len(self.text))
            elif not self._starts_in_code(win[0]):
                win = (0, win[1])
        edited = self.edited(win, edits)
        tree = _syntax.parse(edited, self.lang)
        (n_after, bytes_after), (n_before, bytes_before) = _syntax.tree_brokenness(tree, self.lang), self.before(win)
        if n_after > n_before:
            return True
        # the answer's own tokens do not parse where they stand: `lambda m:: m)` completing a line typed half-way
        # moves the line's error into the answer, and leaves the counts as they were
        inside = _syntax.errors_inside(tree, self.spans(win, edits, edited, new=True))
        if inside and inside > (_syntax.errors_inside(_syntax.parse(self.text[win[0] : win[1]], self.lang),
                                                      self.spans(win, edits, self.text[win[0] : win[1]], new=False))
                                if replaces else 0):
            return True
        # a line half typed breaks the window (`value = os.path.join(` swallows all below it): an answer that closes
        # it and goes on with garbage (`other, str(units)) + ]`) leaves fewer errors than there were. The line, read
        # alone as Python reads a line typed at its prompt, tells: one it could still finish becomes one it cannot
        if n_before and self.lang == "python" and len(edits) == 1 and not replaces \
                and self.breaks_line(edits[0][0], edits[0][2], win[0]):
            return True
        # tree-sitter merges errors: in a text broken already (a window cut mid-class, a buffer being typed) new
        # garbage can join an ERROR node and leave the count as it was, but that node then grows by more than the edit
        grown = sum(len(_syntax.encode(new)) - len(_syntax.encode(self.text[start:end])) for start, end, new in edits)
        if bytes_after > bytes_before + max(0, grown):
            return True
        # a fill in front of code on its line, where a word typed into an expression broke the line at the cursor
        # and nothing else (`if(x!e||`), that leaves it broken at the fill: `if(xn(e)!e||` (a trial, in a minified
        # file). A text broken elsewhere too (a window cut through code, TypeScript the grammar misreads) says nothing
        if n_before and len(edits) == 1 and not replaces and self._mid_line(edits[0][0]):
            start = edits[0][0]
            eol = self.text.find("\n", start)
            line_lo = max(self.text.rfind("\n", 0, start) + 1, start - WORD_REACH)
            line_hi = min(len(self.text) if eol < 0 else eol, start + WORD_REACH)
            at = len(_syntax.encode(self.text[win[0] : start]))
            lo = at - len(_syntax.encode(self.text[line_lo:start]))
            hi = at + len(_syntax.encode(self.text[start:line_hi]))
            size = len(_syntax.encode(edits[0][2]))
            if _syntax.errors_within(_syntax.parse(self.text[win[0] : win[1]], self.lang), lo, hi) and \
                    _syntax.error_near(tree, at, at + size, hi - lo + size) and not self.in_prose(start):
                return True
        # tree-sitter's Python grammar accepts lines indented past their block, a block of only a comment, and two
        # expressions side by side on one line (`data = data.copy() {item: ...}`, a trial's fill in the middle of a
        # line); Python itself does not (a one-line completion at the end of a line, the common case, skips the two
        # extra parses, unless they hold a word only the compiler places: a trial's `break` after a try block, outside
        # any loop, parsed in both grammars)
        if not (self.lang == "python"
                and any("\n" in new or new.lstrip().startswith("#") or start != end or self._mid_line(start)
                        or _FLOW.search(new) for start, end, new in edits)
                and self.compiles(win)):
            return False
        # read past the stubs the file already has (a body of only a comment), not past one the edits leave
        edited, module = self.edited(win, edits), _as_module(self.edited(win, edits))
        shift, keep, pos = module.count("\n") - edited.count("\n"), [], win[0]
        for start, end, new in edits:
            lo = shift + edited.count("\n", 0, start - pos)
            keep.append((lo, lo + new.count("\n")))
            pos += (end - start) - len(new)
        filled = _syntax.fill_empty_blocks(module, keep)
        return filled is None or not _compiles(filled)

    def new_unbound(self, edits: Sequence[tuple[int, int, str]]) -> list[str]:
        """Names the edits' new text reads where no binding reaches them (python_unresolved: nothing in the edited
        file binds them, or only another function does) that the file did not already read so: each a NameError when
        that code runs (Python, files up to WHOLE_FILE_CHARS; a stub body of only a comment is read as `pass`; [] where
        it cannot tell: a file that does not parse, a star import)."""
        if self.lang != "python":
            return []
        words = set(_NAME.findall("".join(new for _, _, new in edits))) - _KEYWORDS - _syntax._BUILTINS
        if len(edits) == 1 and edits[0][0] == edits[0][1]:
            # a name the user began typing and the answer finishes is the answer's guess as much as its own words
            # (`DEF` finished as `DEFAULT_CHARS`, the file's being `DEFAULT_SEPARATOR`): read whole
            at, new = edits[0][0], edits[0][2]
            head = re.match(r"\w+", new)
            typed = re.search(r"(?<![\w.])[A-Za-z_]\w*$", self.text[max(0, at - 80) : at])
            if head and typed:
                words = (words - {head.group()} | {typed.group() + head.group()}) - _KEYWORDS - _syntax._BUILTINS
        if len(self.text) > WHOLE_FILE_CHARS:
            # a file too big to read whole at every keystroke: the names it has nowhere, read in the window around the
            # edit (from a trial: `require('./y')` offered after a 1.4 MB line)
            novel = {w for w in words if not _has_word(self.text, w)}
            win = self.window(edits[0][0], edits[-1][1])
            edited = self.edited(win, edits)
            if not novel or _STAR_IMPORT.search(edited) or self.in_prose(edits[0][0]):
                return []
            after = _syntax.python_unresolved(edited)
            if after is None:  # a window cut inside a long line: the edited lines alone, when they compile so
                lo, at = self.text.rfind("\n", 0, edits[0][0]) + 1, edits[-1][1]
                hi = self.text.find("\n", at)
                lines = self.text[lo : edits[0][0]] + self.edited((edits[0][0], at), edits) + \
                    self.text[at : len(self.text) if hi < 0 else hi]
                after = _syntax.python_unresolved(textwrap.dedent(lines)) if len(lines) < WHOLE_FILE_CHARS else None
            return sorted((after or set()) & novel)
        if all(start == end for start, end, _ in edits):
            # a cursor fill, at every keystroke. Names the file has nowhere else need only the edited file read (the
            # file before, often half typed and not parsing, read none of them); a star import may bind any
            if _STAR_IMPORT.search(self.text) or not words or self.in_prose(edits[0][0]):
                return []
            def unresolved_after() -> set[str]:
                return _syntax.python_unresolved(self.edited((0, len(self.text)), edits), fill_stubs=False) or set()

            novel = {w for w in words if not _has_word(self.text, w)}
            after = None
            if novel:
                # only the answer binds a name the file has nowhere: the function around it, read alone, tells (a
                # symtable of a 100 KB file costs a keystroke 15 ms); the whole file where that does not compile
                around = _function_around(self.edited((0, len(self.text)), edits), edits[0][0])
                local = _syntax.python_unresolved(textwrap.dedent(around), fill_stubs=False) if around else None
                if local is None:
                    local = after = unresolved_after()
                if local & novel:
                    return sorted(local & novel)
            # names the file has elsewhere, maybe only in another function (`inv` read in an `__init__` without it):
            # read by scope below, in files small enough to parse at every keystroke, and only those that neither the
            # function around the cursor binds (by Python's scoping of that function alone: `p` of a generator above
            # is not the function's) nor the module's top level (the file's parse is then not needed)
            words = {w for w in _function_unresolved(self.text, edits[0][0], edits[0][2], words - novel)
                     if not _top_level_binds(self.text, w)}
            if not words:
                return []
            if self.names_around(edits[0][0]) is False:  # a line half typed: the answer, finishing it, lets the
                return sorted((unresolved_after() if after is None else after) & words)  # edited file be read
        fixed_scope = True
        if any(start != end for start, end, _ in edits):
            # a rewrite also leaves the names its edges make with the text around (`r[e]t` rewritten as `et\n` leaves
            # a line `t`), and a line it dedents reads names in another scope than the edit's first line
            for start, end, new in edits:
                touched = _touched(self.text, start, end, new)
                words |= set(_NAME.findall(_NOT_CODE.sub(" ", touched))) - _KEYWORDS - _syntax._BUILTINS
                indents = [len(ln) - len(ln.lstrip()) for ln in touched.split("\n") if ln.strip()]
                fixed_scope &= all(i >= indents[0] for i in indents)
        base = self.names_around(edits[0][0])
        if not words or not isinstance(base, _syntax.PythonNames):
            return []
        # a name bound at module level, or in the function around the edit, on a line no edit touches reaches it: only
        # the others need the edited file read (a fill-all of a big file checked each of its fills on the whole file
        # again, about 50 ms each)
        touched = [(self.line(start), self.line(end)) for start, end, _ in edits]
        at = self.line(edits[0][0])
        words = {w for w in words - base.unbound
                 if not (fixed_scope and base.reaches(w, at, lambda line: any(a <= line <= b for a, b in touched)))}
        if not words:
            return []
        after = _syntax.python_unresolved(self.edited((0, len(self.text)), edits))
        if after is None:
            return []
        if self._unresolved is False:
            self._unresolved = _syntax.python_unresolved(self.text)
        return sorted((after - (self._unresolved or set())) & words)

    def names_around(self, at: int) -> _syntax.PythonNames | None | bool:
        """python_names of the file (False: it does not parse). A big file is read as two parts where it can be: the
        top-level statement around offset `at`, and the rest of the file with that statement's lines left blank,
        whose reading is kept while the keystrokes stay in that statement (a 100 KB file's parse and names cost a
        keystroke about 50 ms); the whole file where the parts do not parse alone (a cut inside a string)."""
        if self._names_read:
            return self._names
        names: _syntax.PythonNames | None | bool = False
        span = _top_statement(self.text, at) if len(self.text) > SPLIT_CHARS else None
        if span is not None:
            lo, hi = span
            first = self.text.count("\n", 0, lo) + 1  # the statement's first line
            rest, spans = _rest_names(self.text[:lo] + "\n" * self.text.count("\n", lo, hi) + self.text[hi:])
            # the cut is sound where no statement of the rest runs across the blank lines (a string that holds
            # unindented lines would: the statement was part of it)
            whole = rest is not False and not any(a < first <= b for a, b in spans)
            module = _syntax.python_module("\n" * (first - 1) + self.text[lo:hi]) if whole else None
            if module is not None:
                own = _syntax.python_names(module)
                names = None if own is None or rest is None else _syntax.PythonNames.merged(rest, own)
            elif whole and not _CLAUSE.match(self.text, lo):
                # the statement, which continues none of the rest, parses but for the line at `at`: that line (half
                # typed) is what keeps the file from parsing
                line, end = self.text.rfind("\n", 0, at) + 1, self.text.find("\n", at)
                end = hi if end < 0 else min(end + 1, hi)
                if _syntax.python_module("\n" * (first - 1) + self.text[lo:line] + "\n" + self.text[end:hi]):
                    self._names, self._names_read = False, True
                    return False
        if names is False:
            module = self.module()
            names = False if module is None else _syntax.python_names(module)
        self._names, self._names_read = names, True
        return names

    def broken_line(self, start: int, end: int, new: str) -> str:
        """The line of `new` where the first parse error of the edited window inside it is (a reason quoting a first
        line that parses on its own tells the reader nothing); its first line when there is none inside it."""
        win = self.window(start, end)
        lo = len(_syntax.encode(self.text[win[0] : start]))
        raw = _syntax.encode(new)
        inside = [o - lo for o in _syntax.error_offsets(self.edited(win, [(start, end, new)]), self.lang)
                  if lo <= o <= lo + len(raw)]
        if not inside:
            return new
        at = len(raw[: inside[0]].decode("utf-8", "replace"))
        line_start = new.rfind("\n", 0, at) + 1  # an error at a line break is the line it ends
        line_end = new.find("\n", line_start)
        line = new[line_start : line_end if line_end >= 0 else len(new)]
        return line if line.strip() else new

    def new_dead_return(self, start: int, end: int, new: str, reach: int = 0) -> tuple[str, bool] | None:
        """A return statement that a statement follows in its block (code that never runs), in the new text or in the
        `reach` chars before it, when there were fewer such before the edit: its text, and whether it is before the new
        text. A re-check's rewrite of commander's _findCommand gave two returns in a row; a trial was offered `return
        word` at the cursor on the line after `return word.lower()` (cursor fills look back `reach` chars)."""
        if self.lang is None or not (_RETURN.search(new) or _RETURN.search(self.text, max(0, start - reach), start)):
            return None
        win = self.window(start, end)
        lo = len(_syntax.encode(self.text[win[0] : max(win[0], start - reach)]))
        cut = len(_syntax.encode(self.text[win[0] : start]))
        edited = self.edited(win, [(start, end, new)])
        gone = len(_syntax.encode(self.text[start:end]))
        after = _syntax.dead_returns(edited, self.lang, lo, cut + len(_syntax.encode(new)))
        before = _syntax.dead_returns(self.text[win[0] : win[1]], self.lang, lo, cut + gone)
        if not after or len(after) <= len(before):
            return None
        if self.lang == "python" and len(self.text) <= WHOLE_FILE_CHARS:
            # a window cut inside an indented block reads as broken, and its returns with it (a trial's fill after
            # `return [quote(arg) for arg in ` was said to follow another function's `return result`): where the
            # edited file parses, Python's own reading says
            whole = self.text[:start] + new + self.text[end:]
            module = _syntax.python_module_filled(whole)
            if module is not None:
                line = self.line(start)
                dead = _python_dead_returns(module, self.line(max(0, start - reach)), line + new.count("\n"))
                if not dead:
                    return None
                before_cursor = self.text[self.text.rfind("\n", 0, start) + 1 : start]
                earlier = dead[0].lineno < line or dead[0].lineno == line and _has_word(before_cursor, "return")
                return ast.get_source_segment(whole, dead[0]) or "return", earlier
        shift = len(_syntax.encode(new)) - gone
        moved = {(a + shift, b + shift) if a >= cut else (a, b) for a, b in before}
        a, b = next((r for r in after if r not in moved), after[0])  # the return the edit made dead, not an older one
        return _syntax.encode(edited)[a:b].decode("utf-8", "replace"), a < cut

    def module(self) -> ast.Module | None:
        """The file, parsed, a stub body of only a comment read as `pass` (None: it does not parse)."""
        if self._module is False:
            self._module = _syntax.python_module_filled(self.text)
        return self._module if isinstance(self._module, ast.Module) else None

    def new_self_attributes(self, start: int, end: int, new: str) -> tuple[str, list[str]]:
        """(class, attributes) the new text reads as `self.x` that the class around the edit, which has no base, never
        sets nor defines, in the edited file (python_class_attributes; ("", []) when it cannot tell, or when the class
        already reads such attributes: they come from its subclasses)."""
        wanted = set(_SELF_ATTR.findall(new))
        if self.lang != "python" or not wanted or len(self.text) > WHOLE_FILE_CHARS:
            return "", []
        line, module = self.line(start), self.module()
        before = None if module is None else _syntax.python_class_attributes(module, line)
        if before is None or before[2] - before[1]:
            return "", []
        edited = _syntax.python_module_filled(self.edited((0, len(self.text)), [(start, end, new)]))
        after = None if edited is None else _syntax.python_class_attributes(edited, line)
        if after is None:
            return "", []
        return after[0], sorted((after[2] - after[1]) & wanted)

    def binds(self, name: str, start: int, end: int) -> bool:
        """Whether the file binds name on a line that an edit of [start, end) leaves (after new_unbound read it)."""
        first, last = self.line(start), self.line(end)
        if not isinstance(self._names, _syntax.PythonNames):  # the file does not parse (a line half typed): its words
            return _has_word(_NOT_CODE.sub(" ", self.text[:start] + " " + self.text[end:]), name)
        return any(not first <= line <= last for line in self._names.bound.get(name, ()))

    def new_redeclared(self, edits: Sequence[tuple[int, int, str]]) -> list[str]:
        """Names the edited window declares twice in one block (`let`/`const`/`class`, JavaScript and TypeScript) that
        the window did not already declare twice."""
        if self.lang not in ("javascript", "typescript", "tsx"):
            return []
        win = self.window(edits[0][0], edits[-1][1])
        if win not in self._redeclared:
            self._redeclared[win] = _syntax.redeclared(self.text[win[0] : win[1]], self.lang)
        return sorted(_syntax.redeclared(self.edited(win, edits), self.lang) - self._redeclared[win])

    def dropped_definition(self, start: int, end: int, new: str) -> tuple[str, int] | None:
        """(name, 0-based line of a use) of a name whose binding the edit took away while the code still reads it: a
        rewrite that deletes `total = a + b` above `return total` parses, and breaks the code all the same. Python,
        where the file compiles: by Python's own scoping, any name the edited file reads where no binding reaches it
        any more and the edit's lines do not read themselves (a definition, an import, a parameter, a loop variable; a
        use in an f-string counts; a docstring's words, or a name of another function, do not). Elsewhere, the words
        the replaced text defines, in the code around the edit (`_dropped_definition`)."""
        if self.lang != "python" or len(self.text) > WHOLE_FILE_CHARS:
            return _dropped_definition(self.text, start, end, new, self.window(start, end))
        if start == end:  # a cursor fill replaces nothing
            return None
        if self._unresolved is False:
            self._unresolved = _syntax.python_unresolved(self.text)
        edited = self.text[:start] + new + self.text[end:]
        after = _syntax.python_unresolved(edited) if self._unresolved is not None else None
        if after is None:
            return _dropped_definition(self.text, start, end, new, self.window(start, end))
        # every name the code reads that no binding reaches any more and that the new text does not read itself (those
        # are new_unbound's): a definition, an import, a parameter or a loop variable the edit took away (a trial's
        # rewrite of `uppercase_first_letter: bool` as `char: str | None` left the body reading the old name)
        read = set(_NAME.findall(_NOT_CODE.sub(" ", _touched(self.text, start, end, new))))
        lost = sorted((after - (self._unresolved or set())) - read)
        if not lost:
            return None
        module, shift = self.edited_module(start, end, new), new.count("\n") - self.text.count("\n", start, end)
        first = self.line(start) - 1  # the edit's first line, 0-based; its new text ends on line `last`
        last = first + new.count("\n")
        # the use to name is in the scope the edit is in (another function's own `table` is not the one that lost its
        # binding), the first after the edit, else the last before it; in the lines of the file as it is now
        scope = _innermost_scope(module, first + 1) if module is not None else None
        uses = sorted(n.lineno - 1 for n in ast.walk(scope) if isinstance(n, ast.Name) and n.id == lost[0]) \
            if scope is not None else []
        after = [u - shift for u in uses if u >= last and u > first]
        before = [u for u in uses if u < first]
        return lost[0], after[0] if after else before[-1] if before else first

    def changed_structure(self, start: int, end: int, new: str) -> str | None:
        """Why the edit breaks the code's definitions, when it does: a function or class whose name the replaced text
        held is gone (or now lives inside another one) while the code still names it, or one outside the edit is no
        longer where it was. From a trial: a rewrite of `self.load(fragment)` and the `def load(...):` line below it
        folded the method's body into `__init__`; the file parsed, and every `.load()` failed."""
        if self.lang is None:
            return None
        # the whole file when it is small enough: a window cut inside a long class reads as broken, and its paths lack
        # the class (a trial's rewrite of `def finalize_version` as a second `def __repr__` passed so)
        win = (0, len(self.text)) if len(self.text) <= WHOLE_FILE_CHARS else self.window(start, end)
        old, edited = self.text[win[0] : win[1]], self.edited(win, [(start, end, new)])
        before = _syntax.definition_paths(_syntax.parse(old, self.lang), self.lang)
        if not before:
            return None
        after = Counter(path for path, _, _ in _syntax.definition_paths(_syntax.parse(edited, self.lang), self.lang))
        lo = len(_syntax.encode(self.text[win[0] : start]))
        hi = lo + len(_syntax.encode(self.text[start:end]))
        outside = Counter(path for path, at, _ in before if not lo <= at < hi)
        if self.before(win)[0] == 0:  # in a broken window the paths are tree-sitter's guesses: a repair may move them
            for path, n in outside.items():
                if after[path] < n:
                    moved = next((q for q in after if q[-1] == path[-1] and q not in outside), None)
                    where = f"would become `{'.'.join(moved)}`" if moved else "would be gone"
                    return f"the answer changes the code around it: `{'.'.join(path)}` {where}"
        left = after - outside
        raw = _syntax.encode(old)
        for path, at, stop in before:
            if not lo <= at < hi:
                continue
            if left[path] > 0:
                left[path] -= 1
                continue
            # its uses outside the edit and outside its own old body (its calls of others' `.load()` are not its uses)
            until = max(end, win[0] + len(raw[:stop].decode("utf-8", "replace")))
            code = _blank_prose(self.text[:start] + "\n" + self.text[until:])
            name = re.escape(path[-1])
            own = re.compile(rf"(?:(?<![\w$.])|\b(?:self|cls|this)\.){name}(?![\w$])")
            word = re.compile(_WORD.format(name))
            # the first use after the edit, else the first one; a call on self or the bare name before another's
            use = own.search(code, start) or own.search(code) or word.search(code, start) or word.search(code)
            if use is not None:
                line = _line_outside(self.text, start, until, use.start())
                return f"the answer removes `{'.'.join(path)}`, which the code still uses (line {line})"
            public = not path[-1].startswith("_") or path[-1].startswith("__") and path[-1].endswith("__")
            if len(path) <= 2 and public and self.before(win)[0] == 0:
                # a public function, class or method (a dunder too: `<=` calls `__le__`): other files may call it (a
                # trial's rewrite of `def tableize(word: str) -> str:` as `def table_name(...)` broke every caller)
                renamed = next((q for q in left if q[:-1] == path[:-1] and q not in outside), None)
                if renamed is not None:
                    return f"the answer renames `{'.'.join(path)}` to `{'.'.join(renamed)}`: code that calls it " \
                        "would break"
                return f"the answer removes `{'.'.join(path)}`, which other code may use"
        return None

    def read_before_set(self, start: int, end: int, new: str) -> tuple[str, int, str] | None:
        """Python, a rewrite: (name, 1-based line, "function" or "class") of a local the function (or class body)
        around the edit now reads before any line of it sets the name, where it did not (an UnboundLocalError, or a
        NameError as the class is built): a parameter renamed while the body goes on reading it and sets it later (`def
        ordinal(number)` as `def ordinal(word)` above `number = abs(int(number))`), a name read above the loop that
        binds it, a decorator `@build.setter` above the class's `def build` (from trials)."""
        if self.lang != "python" or len(self.text) > WHOLE_FILE_CHARS:
            return None
        module = self.module()
        edited = self.edited_module(start, end, new)
        if module is None or edited is None:
            return None
        line = self.line(start)
        after_fn = _innermost_scope(edited, line)
        before_fn = _innermost_scope(module, line)
        before = _early_reads(before_fn) if type(before_fn) is type(after_fn) else {}
        # a class body reads a name it sets only further down from the module, if the module binds it
        top = _module_names(edited) if isinstance(after_fn, ast.ClassDef) else set()
        kind = "class" if isinstance(after_fn, ast.ClassDef) else "module" if isinstance(after_fn, ast.Module) \
            else "function"
        for name, at in sorted(_early_reads(after_fn).items(), key=lambda kv: kv[1]):
            if name not in before and name not in top:
                return name, at + (0 if at <= line else self.text.count("\n", start, end) - new.count("\n")), kind
        return None

    def bad_arity(self, start: int, end: int, new: str) -> tuple[str, str] | None:
        """Python: (name, what is wrong) of a call in the new text to a function the module defines at its top level
        with more positional arguments than it takes, or without one it needs (a trial's `_irregular('sex', 'sexes',
        x)` for a function of two: a TypeError when it runs)."""
        if self.lang != "python" or len(self.text) > WHOLE_FILE_CHARS:
            return None
        called = set(re.findall(r"(?<![\w.])([A-Za-z_]\w*)\s*\(", _touched(self.text, start, end, new)))
        if not called & set(_TOP_DEF.findall(self.text)):  # no call of the module's functions: nothing to parse
            return None
        module = self.module()
        edited = self.edited_module(start, end, new) if module is not None else None
        if edited is None or module is None:
            return None
        sigs = {f.name: f.args for f in module.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                and not f.decorator_list}
        first, last = self.line(start), self.line(start) + new.count("\n")
        for node in ast.walk(edited):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in sigs
                    and node.lineno <= last and (node.end_lineno or node.lineno) >= first):
                continue
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                continue
            args = sigs[node.func.id]
            positional = [a.arg for a in (*args.posonlyargs, *args.args)]
            given = len(node.args)
            if args.vararg is None and given > len(positional):
                return node.func.id, f"{given} arguments; it takes {len(positional)}"
            named = {k.arg for k in node.keywords}
            needed = positional[: len(positional) - len(args.defaults)]
            missing = [a for a in needed[given:] if a not in named]
            if missing:
                return node.func.id, f"no `{missing[0]}`, which it needs"
        return None

    def new_duplicate_key(self, start: int, end: int, new: str) -> str | None:
        """JavaScript/TypeScript: a key written twice in one object literal by the edit (a trial's `writable: true`
        rewritten as `value: true` beside `value: x`: the later one wins, silently)."""
        if self.lang not in ("javascript", "typescript", "tsx"):
            return None
        win = self.window(start, end)
        lo = len(_syntax.encode(self.text[win[0] : start]))
        after = _duplicate_keys(_syntax.parse(self.edited(win, [(start, end, new)]), self.lang), lo,
                                lo + len(_syntax.encode(new)))
        if not after:
            return None
        before = _duplicate_keys(_syntax.parse(self.text[win[0] : win[1]], self.lang), lo,
                                 lo + len(_syntax.encode(self.text[start:end])))
        return next((k for k in after if k not in before), None)

    def emptied_return(self, start: int, end: int, new: str) -> str | None:
        """A rewrite inside a return statement that leaves it without its value (`return tmp;` with `tmp;` rewritten
        as `;`, from a trial): the return as it was."""
        if self.lang is None:
            return None
        win = self.window(start, end)
        lo = len(_syntax.encode(self.text[win[0] : start]))
        hi = lo + len(_syntax.encode(self.text[start:end]))
        tree = _syntax.parse(self.text[win[0] : win[1]], self.lang)
        node = tree.root_node.descendant_for_byte_range(lo, max(lo, hi - 1)) if tree is not None else None
        while node is not None and node.type not in _RETURNS:
            node = node.parent
        if node is None or not _valued(node) or node.start_byte >= lo:
            return None  # no return around the selection, or one that starts inside it (_dropped_return's)
        edited = _syntax.parse(self.edited(win, [(start, end, new)]), self.lang)
        again = edited.root_node.descendant_for_byte_range(node.start_byte, node.start_byte) if edited else None
        while again is not None and again.type not in _RETURNS:
            again = again.parent
        if again is None or again.start_byte != node.start_byte or _valued(again):
            return None
        return node.text.decode("utf-8", "replace") if node.text is not None else None

    def line(self, offset: int) -> int:
        """The 1-based line of a char offset of the text."""
        if self._lines is None:
            self._lines = [m.start() for m in re.finditer("\n", self.text)]
        return bisect.bisect_right(self._lines, offset - 1) + 1

    def breaks_line(self, at: int, new: str, start: int) -> bool:
        """Python, a cursor fill: whether the statement on the cursor's line (one that starts there: no bracket open
        and no backslash since `start`, a statement's start), read alone with the answer's first line in it, turns
        from text Python could still finish into text it cannot (`value = os.path.join(` + `a)) + ]`)."""
        lo = self.text.rfind("\n", 0, at) + 1
        hi = self.text.find("\n", at)
        hi = len(self.text) if hi < 0 else hi
        if not _statement_starts(self.text, start, lo) or self.in_prose(at):
            return False
        head, first = self.text[lo:at].lstrip(), new.split("\n", 1)[0]
        rest = "" if "\n" in new else self.text[at:hi]
        clause = _CLAUSE.match(head + first)  # the clause the answer makes: `eli` + `f c != ESCAPE:` is an elif
        lead = _CLAUSE_AFTER[clause.group(1)] if clause else ""
        if lead is None:
            return False
        before = lead + head + self.text[at:hi]
        # a header typed up to its colon (`elif floor`) is one Python could finish too, with that colon: a trial's
        # `= self.denominator:` after it, a line Python cannot read, passed as the line was broken already
        finishable = _syntax.python_finishable(before) or _COMPOUND.match(head) is not None \
            and not before.rstrip().endswith(":") and _syntax.python_finishable(before.rstrip() + ":")
        return finishable and not _syntax.python_finishable(lead + head + first + rest)

    def _mid_line(self, at: int) -> bool:
        """Whether code follows offset `at` on its line."""
        end = self.text.find("\n", at)
        return bool(self.text[at : len(self.text) if end < 0 else end].strip())

    def compiles(self, win: tuple[int, int]) -> bool:
        """Whether the window compiles, a stub of only a comment read as `pass`: a file being written has one often,
        and it must not turn off the check of every other edit."""
        if win not in self._compiles:
            filled = _syntax.fill_empty_blocks(_as_module(self.text[win[0] : win[1]]))
            self._compiles[win] = filled is not None and _compiles(filled)
        return self._compiles[win]


_CLAUSE = re.compile(r"(else|elif|except|finally|case)\b")  # a line that continues the statement above it
_COMPOUND = re.compile(r"(?:async\s+)?(?:if|elif|while|for|with|def|class|except|match|case)\b")  # ... `:` and a body
# read alone after a header it can follow (None: not read alone)
_CLAUSE_AFTER: dict[str, str | None] = {"else": "if 1:\n    pass\n", "elif": "if 1:\n    pass\n",
                                        "except": "try:\n    pass\n", "finally": "try:\n    pass\n", "case": None}
# strings and comments (skipped), brackets, a backslash continuation: enough to follow bracket depth through code
_DEPTH = re.compile(r'''(?s)[rRbBfFuU]{0,2}(?:"""(?:\\.|[^\\])*?"""|\'\'\'(?:\\.|[^\\])*?\'\'\'|"""|\'\'\''''
                    r"""|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')|#[^\n]*|[()\[\]{}]|\\\n""")


def _statement_starts(text: str, start: int, at: int) -> bool:
    """Whether a statement can start at offset `at` (a line's start) of text, read from `start` (a line where one
    starts): no bracket left open, no backslash continuation, no string left open in between."""
    depth, joined = 0, False
    for m in _DEPTH.finditer(text, start, at):
        tok = m.group()
        joined = tok == "\\\n" and m.end() == at  # the line above ends in a backslash
        if tok in ("(", "[", "{"):
            depth += 1
        elif tok in (")", "]", "}"):
            depth -= 1
            if depth < 0:
                return False
        elif tok.endswith(('"""', "'''")) and len(tok) <= 5:  # a triple quote never closed
            return False
    return depth == 0 and not joined


_FLOW = re.compile(r"\b(?:break|continue|return|yield|await|nonlocal|global)\b")  # placed by the compiler


SPLIT_CHARS = 20_000  # from this size a file's names are read in two parts (_Errors.names_around)
_TOP_CODE = re.compile(r"^[^\s#]", re.MULTILINE)  # a line of code at the top level (or inside a string or brackets)


def _top_statement(text: str, at: int) -> tuple[int, int] | None:
    """[start, end) of the top-level statement around offset `at`, with its decorators, as far as unindented lines
    tell (a string or brackets may hold unindented lines: the parts then do not parse, and the caller reads it all);
    None at the top level itself."""
    line = text.rfind("\n", 0, at) + 1
    starts = [m.start() for m in _TOP_CODE.finditer(text, 0, line + 1)]
    if not starts or starts[-1] == line:
        return None
    k = len(starts) - 1
    while k and text.startswith("@", starts[k - 1]) and not text[starts[k - 1] : starts[k]].strip("\n").count("\n"):
        k -= 1  # a one-line decorator right above
    end = _TOP_CODE.search(text, text.find("\n", at) + 1) if text.find("\n", at) >= 0 else None
    return starts[k], end.start() if end else len(text)


@functools.lru_cache(maxsize=4)
def _rest_names(rest: str) -> tuple[_syntax.PythonNames | None | bool, tuple[tuple[int, int], ...]]:
    """python_names of a file with the statement being typed in left blank (False: it does not parse), and the first
    and last lines of each of its top-level statements."""
    module = _syntax.python_module(rest)
    if module is None:
        return False, ()
    return _syntax.python_names(module), tuple((s.lineno, s.end_lineno or s.lineno) for s in module.body)


def _module_names(module: ast.Module) -> set[str]:
    """The names the module's top level binds (definitions, imports, assignments), and the builtins."""
    out = set(_syntax._BUILTINS)
    for stmt in module.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.add(stmt.name)
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            out.update(a.asname or a.name.split(".")[0] for a in stmt.names)
        else:
            out.update(n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load))
    return out


_RE_CALLS = frozenset({"compile", "match", "fullmatch", "search", "sub", "subn", "split", "findall", "finditer"})
_SAME = (ast.Name, ast.Attribute, ast.Subscript)
_JS_COMPARE = frozenset({"==", "===", "!=", "!==", "<", ">", "<=", ">="})


def _lines_module(lines: str) -> ast.Module | None:
    """Some whole lines of Python parsed alone, dedented, a block header among them given a `pass` body (None where
    they do not parse so)."""
    code = textwrap.dedent(lines)
    return _syntax.python_module(code) or _syntax.python_module(code + "\n" + " " * (len(code) - len(code.lstrip()) + 4)
                                                                + "pass")


def _python_nonsense(module: ast.Module | None, lo: int, hi: int) -> Counter[str]:
    """What no one writes on purpose, on 1-based lines lo..hi, as reasons: a value compared with itself (`if
    max_length < max_length:`), a name subscripted with itself (`words[words] = ...`), a regular expression `re`
    rejects (`re.compile(r'&(?:[0-9]+')`: an error on import). From a trial's rewrites; and a name assigned to itself
    (`result = result`, offered as you type in a user trial)."""
    out: Counter[str] = Counter()
    tops = [t for t in (module.body if module is not None else []) if t.lineno <= hi and (t.end_lineno or hi) >= lo]
    for node in (n for t in tops for n in ast.walk(t) if lo <= getattr(n, "lineno", lo - 1) <= hi):
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.left, _SAME) \
                and ast.dump(node.left) == ast.dump(node.comparators[0]) \
                and not (isinstance(node.left, ast.Name) and isinstance(node.ops[0], (ast.Eq, ast.NotEq))):  # NaN test
            out[f"the answer compares `{ast.unparse(node.left)}` with itself"] += 1
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and isinstance(node.value, ast.Name) and node.targets[0].id == node.value.id:
            out[f"the answer assigns `{node.value.id}` to itself"] += 1
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and isinstance(node.slice, ast.Name) \
                and node.value.id == node.slice.id:
            out[f"the answer indexes `{node.value.id}` with itself"] += 1
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _RE_CALLS \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "re" and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            try:
                re.compile(node.args[0].value)
            except (re.error, RecursionError, OverflowError) as exc:
                out[f"the answer writes a regular expression Python rejects: `{_snippet(node.args[0].value, 40)}` "
                    f"({exc})"] += 1
    return out


def _js_nonsense(text: str, lang: str | None) -> Counter[str]:
    """_python_nonsense for JavaScript/TypeScript: a value compared with itself, a name subscripted with itself, a name
    assigned to itself."""
    tree = _syntax.parse(text, lang) if lang in ("javascript", "typescript", "tsx") else None
    out: Counter[str] = Counter()
    stack = [tree.root_node] if tree is not None else []
    while stack:
        node = stack.pop()
        stack.extend(node.named_children)
        if node.type == "binary_expression" and (op := node.child_by_field_name("operator")) is not None \
                and op.type in _JS_COMPARE:
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            nan_test = left is not None and left.type == "identifier" and op.type in ("==", "===", "!=", "!==")
            if left is not None and right is not None and left.type in ("identifier", "member_expression") \
                    and left.text == right.text and not nan_test:  # `x !== x`: true for NaN alone, an idiom
                out[f"the answer compares `{(left.text or b'').decode('utf-8', 'replace')}` with itself"] += 1
        elif node.type == "assignment_expression":
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            if left is not None and right is not None and left.type == right.type == "identifier" \
                    and left.text == right.text:
                out[f"the answer assigns `{(left.text or b'').decode('utf-8', 'replace')}` to itself"] += 1
        elif node.type == "subscript_expression":
            obj, index = node.child_by_field_name("object"), node.child_by_field_name("index")
            if obj is not None and index is not None and obj.type == index.type == "identifier" and \
                    obj.text == index.text:
                out[f"the answer indexes `{(obj.text or b'').decode('utf-8', 'replace')}` with itself"] += 1
    return out


def _exports(module: ast.Module) -> list[str] | None:
    """The names a module's top-level `__all__ = [...]` (or tuple) lists; None where it has no such literal."""
    for stmt in module.body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in stmt.targets) \
                and isinstance(stmt.value, ast.List | ast.Tuple):
            return [e.value for e in stmt.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return None


def _broken_exports(before: ast.Module | None, after: ast.Module | None) -> str | None:
    """Why an edit breaks the module's `__all__`: it takes the list away (a trial's rewrite as `all__ = ['hught',
    'harth']`: `import *` then exports every name), or lists a name the module does not define (an AttributeError on
    `import *`)."""
    if before is None or after is None:
        return None
    old, new = _exports(before), _exports(after)
    if old is not None and new is None:
        return "the answer removes the module's `__all__`"
    if new is None:
        return None
    names = _module_names(after)
    missing = [n for n in new if n not in names and n not in (old or [])]
    return f"the answer lists `{missing[0]}` in `__all__`, which the module does not define" if missing else None


_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
           ast.GeneratorExp)


def _branches(node: ast.AST) -> set[int]:
    """ids of the children of node that run only on some paths through it (an if's arms, a try's handlers, the
    right of `and`/`or`), not whenever node runs."""
    if isinstance(node, ast.If | ast.IfExp):
        arms: list = [node.body, node.orelse]
    elif isinstance(node, ast.Try | ast.TryStar):
        arms = [node.handlers, node.orelse]
    elif isinstance(node, ast.Match):
        arms = [node.cases]
    elif isinstance(node, ast.BoolOp):
        arms = [node.values[1:]]
    elif isinstance(node, ast.For | ast.AsyncFor | ast.While):
        arms = [node.orelse]
    else:
        return set()
    return {id(n) for arm in arms for n in (arm if isinstance(arm, list) else [arm])}


def _early_reads(fn: ast.AST) -> dict[str, int]:
    """Locals of fn, a function, a class body or the module's top-level code (set somewhere in it, no parameter, no
    global) read before the first place that sets them: name -> the line of that read. A read under a branch of a loop
    that sets the name may read what an earlier turn set (`if i: use(prev)` above `prev = x`); one every first turn
    runs cannot (a trial's `matched, l, c = p.match(l, c)`, `l = left` above rewritten away). An assignment sets its
    targets once its value is read (`number = abs(int(number))` reads `number` first); a name only ever set by `+=`
    and the like is read before it is set wherever that runs (a trial's `truncated = ''` rewritten away above
    `truncated += word` in a loop)."""
    params = {a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs, fn.args.vararg, fn.args.kwarg)
              if a is not None} if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) else set()
    augmented: dict[str, int] = {}  # names set by `x += ...` -> the first such line
    by_aug: set[int] = set()  # ids of those statements' target Names
    plain: set[str] = set()  # names set any other way
    sets: dict[str, tuple[int, int]] = {}
    # name -> (first read, the loops around it in which it runs only under a branch)
    reads: dict[str, tuple[tuple[int, int], tuple[int, ...]]] = {}
    looped: dict[int, set[str]] = {}  # id of a loop -> names set inside it
    free: set[str] = set()
    after: dict[int, tuple[int, int]] = {}  # id of an assignment's target Name -> where the assignment ends

    def bind(name: str, at: tuple[int, int], loops: tuple[int, ...]) -> None:
        sets[name] = min(sets.get(name, at), at)
        for loop in loops:
            looped.setdefault(loop, set()).add(name)

    # (node, the loops around it, those of them in which it runs only under a branch)
    stack: list[tuple[ast.AST, tuple[int, ...], tuple[int, ...]]] = [(stmt, (), ()) for stmt in getattr(fn, "body", [])]
    while stack:
        node, loops, branched = stack.pop()
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            end = (node.end_lineno or node.lineno, node.end_col_offset or 0)
            after.update((id(n), end) for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                augmented[node.target.id] = min(augmented.get(node.target.id, node.lineno), node.lineno)
                by_aug.add(id(node.target))
            else:
                plain.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        if isinstance(node, ast.Global | ast.Nonlocal):
            free.update(node.names)
        elif isinstance(node, ast.Name):
            at = (node.lineno, node.col_offset)
            if isinstance(node.ctx, ast.Load):
                if node.id not in reads or at < reads[node.id][0]:
                    reads[node.id] = (at, branched)
            else:
                # `x += ...` in a loop sets nothing a later turn can read unless something set x first: its own
                # first turn reads x (a trial's `len(truncated)` in the loop, its setting line above rewritten away)
                bind(node.id, after.get(id(node), at), () if id(node) in by_aug else loops)
                if id(node) not in after:  # a loop variable, a `with ... as`, a `del`: set, not by `+=`
                    plain.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bind(node.name, (node.lineno, node.col_offset), loops)
            plain.add(node.name)
        elif isinstance(node, ast.alias):
            bind(node.asname or node.name.split(".")[0], (getattr(node, "lineno", 0), 0), loops)
            plain.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bind(node.name, (node.lineno, node.col_offset), loops)
            plain.add(node.name)
        if isinstance(node, _NESTED):
            # its own scope; what its decorators, defaults and bases read is read here, when it is defined
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                outer = [*getattr(node, "decorator_list", []), *node.args.defaults,
                         *(d for d in node.args.kw_defaults if d is not None)]
            elif isinstance(node, ast.ClassDef):
                outer = [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]
            else:
                outer = []
            stack.extend((child, loops, branched) for child in outer)
            continue
        inner = loops + (id(node),) if isinstance(node, ast.For | ast.AsyncFor | ast.While) else loops
        arms = _branches(node)
        # a loop's body may not run at all: under the loops around it, it is a branch
        body = {id(n) for n in node.body} if isinstance(node, ast.For | ast.AsyncFor | ast.While) else set()
        stack.extend((child, inner, inner if id(child) in arms else loops if id(child) in body else branched)
                     for child in ast.iter_child_nodes(node))
    early = {name: at[0] for name, (at, branched) in reads.items()
             if name in sets and name not in params and name not in free and at < sets[name]
             and not any(name in looped.get(loop, ()) for loop in branched)}
    early.update({name: line for name, line in augmented.items()
                  if name not in plain and name not in params and name not in free and name not in early})
    return early


def _redefinitions(module: ast.Module) -> list[tuple[str, int, int]]:
    """(name, line, line) of each pair of undecorated functions or classes of one name in one module or class body."""
    out = []
    for node in ast.walk(module):
        if not isinstance(node, (ast.Module, ast.ClassDef)):
            continue
        seen: dict[str, int] = {}
        for st in node.body:
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not st.decorator_list \
                    and st.name != "_":
                if st.name in seen:
                    out.append((st.name, seen[st.name], st.lineno))
                seen[st.name] = st.lineno
    return out


def _python_dead_returns(module: ast.Module, first: int, last: int) -> list[ast.Return]:
    """The return statements on 1-based lines first..last that another statement follows in their block."""
    out = []
    for node in ast.walk(module):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list):
                out += [st for st in block[:-1] if isinstance(st, ast.Return) and first <= st.lineno <= last]
    return sorted(out, key=lambda st: (st.lineno, st.col_offset))


def _innermost_scope(module: ast.Module, lineno: int) -> ast.AST:
    """The innermost function or class whose lines hold 1-based `lineno`, or the module."""
    scope: ast.AST = module
    while True:
        inner = _scope_holding(scope, lineno)
        if inner is None:
            return scope
        scope = inner


def _scope_holding(node: ast.AST, lineno: int) -> ast.AST | None:
    """The first function or class under node (not below another one) whose lines hold lineno."""
    stack = list(ast.iter_child_nodes(node))
    while stack:
        n = stack.pop()
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if n.lineno <= lineno <= (n.end_lineno or n.lineno):
                return n
            continue
        stack.extend(ast.iter_child_nodes(n))
    return None


def check(text: str, lang: str | None, proposals: Sequence[Proposal]) -> list[Verdict]:
    """A verdict per proposal (sorted, non-overlapping ranges of `text`), each judged on its own and then all together:
    when the accepted edits break the document together, the last ones are refused until they do not."""
    if "\x00" in text:  # a binary file opened in the editor (from a trial: `],` offered in random bytes)
        return [Verdict(text[p.start : p.end], "the document holds NUL characters: it is binary, not code")
                for p in proposals]
    errors = _Errors(text, lang)
    verdicts = [_judge(text, p, errors) for p in proposals]
    accepted = [i for i, v in enumerate(verdicts) if v.ok]
    while len(accepted) > 1 and errors.adds_errors([(proposals[i].start, proposals[i].end, verdicts[i].text)
                                                    for i in accepted]):
        i = accepted.pop()
        verdicts[i] = Verdict(text[proposals[i].start : proposals[i].end],
                              "together with the other fills it would add parse errors")
    return verdicts


def _judge(text: str, p: Proposal, errors: _Errors) -> Verdict:
    old = text[p.start : p.end]
    if not p.text.strip():
        if p.raw.strip() and errors.adds_errors([(p.start, p.end, p.raw)]):
            why = f"the answer would add parse errors: `{_snippet(p.raw)}`"
        elif p.raw.strip() and p.raw.strip() in text[max(0, p.start - 200) : p.end + 200]:
            why = "the answer only repeated the code around it"
        elif p.raw.strip():  # post-processing cut all of it (a `;` in a file written without them, a fill outside
            # the line's syntax): a trial was told it had repeated the code
            why = f"nothing of the answer fits the code around it: `{_snippet(p.raw)}`"
        else:
            why = "the answer was empty"
        return Verdict(old, why)
    if p.text.strip() == old.strip():
        return Verdict(old, "the answer is the same as the text it would replace")
    repeated = _repeats_line_above(text, p.start, p.text) if p.start == p.end else None
    if repeated is not None:
        return Verdict(old, f"the answer repeats the line {repeated[1]}: `{_snippet(repeated[0])}`")
    open_ = _ends_in_string(text, p.start, p.text, errors.lang) if p.start == p.end else None
    if open_ is not None:
        return Verdict(old, f"the answer ends the statement inside the string it leaves open: `{_snippet(open_)}`")
    target = _overwrites_line_above(text, p.start, p.text) if p.start == p.end else None
    if target is not None:
        return Verdict(old, f"the answer sets `{target}` again right after the line above set it")
    if p.start != p.end:  # what replaces code must be code, and not a stutter (cursor fills have their own cut)
        if p.text.strip() in ("...", "pass"):  # the VS Code e2e's fill turned a `pass` into `...` and called it filled
            return Verdict(old, f"the answer is only a placeholder: `{p.text.strip()}`")
        stub = _stub_answer(old, p.text) if errors.lang == "python" else None
        if stub is not None:
            return Verdict(old, stub)
        if _only_comments(p.text, errors.lang) and not _only_comments(old, errors.lang):
            longest = max(p.text.splitlines(), key=len).strip()
            what = "a string" if p.text.strip()[:1] in ("'", '"') else "a comment"
            return Verdict(old, f"the answer is only {what}: `{_snippet(longest)}`")
        docstring = old.strip()[:1] in ("'", '"') and _only_comments(old, errors.lang)
        if docstring and not _only_comments(p.text, errors.lang):
            # a rewrite of mean's docstring was `values = len(values)`: the words gone, the argument overwritten (a
            # `# TODO` comment is a placeholder whose fill is code; a docstring is not)
            line_start, line_end = text.rfind("\n", 0, p.start) + 1, text.find("\n", p.end)
            alone = not text[line_start : p.start].strip() and not text[p.end : len(text) if line_end < 0
                                                                          else line_end].strip()
            what = "a docstring" if alone else "a string"  # `"-"` in `s.replace("-", "_")` is no docstring
            return Verdict(old, f"the answer turns {what} into code: `{_snippet(p.text.strip())}`")
        twice = _repeated_line(p.text, old)
        if twice is not None:
            return Verdict(old, f"the answer repeats the line `{_snippet(twice)}`")
        thrice = _repeated_phrase(p.text, old)
        if thrice is not None:
            return Verdict(old, f"the answer writes `{_snippet(thrice, 40)}` three times over in one line")
        loop = _python_self_call(text, p.start, p.text, p.end) if errors.lang == "python" else None
        if loop is not None:
            return Verdict(old, loop)
        deep = _runaway_indent(text, p.start, p.text, errors.lang)
        if deep is not None:
            return Verdict(old, f"the answer's indentation runs away: `{_snippet(deep)}` is indented far past its "
                           "brackets")
    new, repairs = p.text, []
    if old.endswith("\n") and not new.endswith("\n"):
        # a whole-line selection ends with its newline; without it the next line would join the rewrite's last line
        # (at the end of the file, the file would lose its final newline)
        new, repairs = new + ("\r\n" if old.endswith("\r\n") else "\n"), ["newline"]
    closed = _close_brackets(new, old)
    for candidate, extra in ((new, []), (closed, ["brackets"])):
        if candidate is not None and not errors.adds_errors([(p.start, p.end, candidate)]):
            lost = errors.dropped_definition(p.start, p.end, candidate)
            if lost is not None:
                name, line = lost
                return Verdict(old, f"the answer removes a definition the code still uses: `{name}` (line {line + 1})")
            nonsense = errors.new_nonsense(p.start, p.end, candidate)
            if nonsense is not None:
                return Verdict(old, nonsense)
            exports = _broken_exports(errors.module(), errors.edited_module(p.start, p.end, candidate)) \
                if errors.lang == "python" and "__all__" in text[p.start : p.end] + candidate else None
            if exports is not None:
                return Verdict(old, exports)
            early = errors.read_before_set(p.start, p.end, candidate) if p.start != p.end else None
            if early is not None:
                return Verdict(old, f"the answer leaves `{early[0]}` read before the {early[2]} sets it (line "
                               f"{early[1]})")
            pushed = _pushes_rest_down(text, p.start, candidate, errors.lang, errors.in_prose(p.start)) \
                if p.start == p.end else None
            if pushed is not None:
                return Verdict(old, f"the answer ends the line early: `{_snippet(pushed, 40)}` would move to a line of "
                               "its own")
            joined = _joins_next_word(text, p.start, candidate) if p.start == p.end and not errors.in_prose(p.start) \
                else None
            if joined is not None:
                return Verdict(old, f"the answer turns `{joined[0]}` into `{joined[1]}`, which the file does not have")
            if p.start != p.end:
                moved = errors.changed_structure(p.start, p.end, candidate)
                if moved is not None:
                    return Verdict(old, moved)
                undeclared = _js_dropped_declaration(text, p.start, p.end, candidate, errors.lang)
                if undeclared is not None:
                    return Verdict(old, f"the answer removes the declaration of `{undeclared[0]}`, which the code "
                                   f"still uses (line {undeclared[1]})")
                cut = _cut_word(text, p.start, p.end, candidate)
                if cut is not None:
                    return Verdict(old, f"the answer turns `{cut[0]}` into `{cut[1]}`, which the file does not have")
                gone = _dropped_property(text, p.start, p.end, candidate, errors.lang)
                if gone is not None:
                    return Verdict(old, f"the answer removes the property `{gone[0]}`, which the code still reads "
                                   f"(line {gone[1]})")
            coding = _unknown_coding(text, p.start, p.end, candidate) if errors.lang == "python" else None
            if coding is not None:
                return Verdict(old, f"the answer declares an encoding Python does not know: `{coding}`")
            opened = _opens_unclosed(text, p.start, p.end, candidate, errors.lang)
            if opened is not None:
                return Verdict(old, f"the answer opens {opened} it does not close: the code after it would be part of "
                               "it")
            stutter = _stutter(text, p.start, p.end, candidate)
            if stutter is not None:
                return Verdict(old, f"the answer writes part of a name twice: `{stutter}`")
            prose = p.start == p.end and errors.in_prose(p.start)  # words typed in a comment or a string name nothing
            if prose and _stray_closer(text, p.start, candidate):
                return Verdict(old, f"the answer only closes a bracket nothing opened: `{candidate.strip()}`")
            typo = None if prose else _misspelled(text, p.start, p.end, candidate) or (
                _stops_short(text, p.start, candidate, errors.lang) if p.start == p.end else None)
            if typo is not None:
                return Verdict(old, f"the answer writes `{typo[0]}`, which the file does not have; it has `{typo[1]}`")
            # an edit must not leave code reading a name nothing defines (`pass` filled with `____` compiles, and fails
            # when run), a cursor fill either (`self._inv = inv` in an `__init__` without `inv`); a name the user
            # began typing is theirs (the check reads the answer's own words), and may be defined further on
            unbound = errors.new_unbound([(p.start, p.end, candidate)])
            elsewhere = bool(unbound) and errors.binds(unbound[0], p.start, p.end)
            if not unbound:
                unknown = _js_unknown_read(text, p.start, p.end, candidate, errors.lang)
                unbound, elsewhere = ([unknown[0]], unknown[1]) if unknown is not None else ([], False)
            if not unbound:
                kind = _ts_unknown_type(text, p.start, p.end, candidate, errors.lang)
                if kind is not None:
                    return Verdict(old, f"the answer uses the type `{kind}`, which nothing in the file declares")
            if unbound:
                where = "is not defined where it is used (only in another scope)" if elsewhere \
                    else "nothing in the file defines"
                return Verdict(old, f"the answer uses `{unbound[0]}`, which {where}")
            owner, attrs = errors.new_self_attributes(p.start, p.end, candidate) if p.start != p.end else ("", [])
            if attrs:
                return Verdict(old, f"the answer reads `self.{attrs[0]}`, which `{owner}` never sets")
            undeclared = _undeclared_assignment(text, p.start, p.end, candidate, errors.lang)
            if undeclared is not None:
                return Verdict(old, f"the answer assigns to `{undeclared}`, which nothing in the file declares")
            private = errors.new_private_error(p.start, p.end, candidate)
            if private is not None:
                return Verdict(old, f"the answer {private} (the file would not run)")
            twice = errors.new_redeclared([(p.start, p.end, candidate)]) \
                if p.start != p.end or re.search(r"\b(?:let|const|class|import|function|var)\b", candidate) else []
            if twice:
                return Verdict(old, f"the answer declares `{twice[0]}` twice in one block, which stops the file "
                               "from running")
            const = _js_const_assignment(text, p.start, p.end, candidate, errors.lang)
            if const is not None:
                return Verdict(old, f"the answer assigns to `{const}`, which is a const")
            test = _js_test_assignment(text, p.start, p.end, candidate, errors.lang)
            if test is not None:
                return Verdict(old, f"the answer assigns where the `if` tests: `{_snippet(test)}`")
            arity = errors.bad_arity(p.start, p.end, candidate)
            if arity is not None:
                return Verdict(old, f"the answer calls `{arity[0]}` with {arity[1]}")
            splat = _joins_splat(text, p.start, p.end, candidate) if errors.lang == "python" else None
            if splat is not None:
                return Verdict(old, splat)
            again = errors.new_redefinition(p.start, p.end, candidate) if errors.lang == "python" \
                and re.search(r"\b(?:def|class)\b", text[text.rfind("\n", 0, p.start) + 1 : p.start] + candidate) \
                else None
            if again is not None:
                return Verdict(old, f"the answer defines `{again[0]}` again: the file defines it on line {again[1]}, "
                               "and one would hide the other")
            dropped = _header_drops_parameter(text, p.start, candidate, errors.lang) if p.start == p.end else None
            if dropped is not None:
                return Verdict(old, f"the answer's parameters leave out `{dropped}`, which the function's body reads")
            key = errors.new_duplicate_key(p.start, p.end, candidate) if p.start != p.end or ":" in candidate \
                else None  # a cursor fill too: `b: 1,` on a new line of an object that has `b` (from a trial)
            if key is not None:
                return Verdict(old, f"the answer writes the key `{key}` twice in one object")
            if p.start != p.end:
                emptied = errors.emptied_return(p.start, p.end, candidate)
                if emptied is not None:
                    return Verdict(old, f"the answer drops the value of `{_snippet(emptied, 40)}`")
            dropped = _dropped_return(old, candidate, errors.lang)
            if dropped is not None:
                return Verdict(old, dropped)
            # the returns just above count too: `retur[n]` rewritten as `n new Date(+x);\n`, and a trial's ternary
            # rewritten as a second return under `return i === 0` (JavaScript ends that line there by itself)
            dead = errors.new_dead_return(p.start, p.end, candidate, reach=DEAD_REACH)
            if dead is not None:
                code, earlier = _snippet(dead[0], 40), dead[1]
                if p.start != p.end:
                    return Verdict(old, f"the answer puts code after `{code}`, where it never runs" if earlier
                                   else f"the answer has code after `{code}` that never runs")
                if earlier:
                    return Verdict(old, f"the answer would never run: it comes after `{code}`")
                return Verdict(old, f"the answer makes the code after it unreachable: `{code}`")
            if p.start != p.end:
                rejected = _node_rejects(text, p.start, p.end, candidate, errors.lang)
                if rejected is not None:
                    return Verdict(old, f"Node rejects the edited file: {rejected}")
            return Verdict(candidate, None, "+".join(repairs + extra))
    return Verdict(old, f"the answer would add parse errors: `{_snippet(errors.broken_line(p.start, p.end, p.text))}`")


WORD_REACH = 64  # chars either side of a cursor, on its line, where a parse error is the word being typed
READ_REACH = 400  # chars either side of an edit whose reads _js_unknown_read checks, on the lines the edit touches
DEAD_REACH = 300  # chars before a cursor fill searched for a return that the fill would follow
WHOLE_FILE_CHARS = 200_000  # up to this size a broken window is judged on the whole file (~25 ms of parsing)
# names a text defines: declared after a keyword, or assigned at the start of a line (`x = `, `x: int = `, `x := `)
_DECLARED = re.compile(r"\b(?:def|class|function|const|let|var|fn|func|struct|enum|type|interface)\s+"
                       r"([A-Za-z_$][\w$]*)")
_ASSIGNED = re.compile(r"^[ \t]*([A-Za-z_$][\w$]*)[ \t]*(?::[^=\n]*)?:?=(?!=)", re.MULTILINE)
# names bound several at once: `const {parentSchema, it} = cxt`, `let [a, b] = xs` (a trial accepted a rewrite that
# deleted such a line while the code below read `it`), `a, b = f()`, `x, err := f()`
_DESTRUCTURED = re.compile(r"\b(?:const|let|var)\s*([{\[][^;]*?[}\]])\s*(?::[^=\n]*)?=(?![=>])")
_UNPACKED = re.compile(r"^[ \t]*\(?([A-Za-z_$][\w$]*(?:[ \t]*,[ \t]*[A-Za-z_$][\w$]*)+),?\)?[ \t]*:?=(?!=)",
                       re.MULTILINE)
_WORD = r"(?<![\w$]){}(?![\w$])"
_BARE = r"(?<![\w$.]){}(?![\w$])"  # a name, not an attribute's (`self.minor` holds no `minor`)
_BRACKET = re.compile(r"[()\[\]{}]")
_RETURN = re.compile(r"\breturn\b")
_VALUELESS = re.compile(r"return(?: (?:None|null|undefined|nil|void 0))?")  # a return text as _return_texts gives it
_SELF_ATTR = re.compile(r"(?<![\w.])self\.([A-Za-z_]\w*)")
_NAME = re.compile(r"(?<![\w.])[A-Za-z_]\w*")  # an identifier, not an attribute's (`.name`)
_KEYWORDS = frozenset(keyword.kwlist)  # soft keywords (`_`, `match`, `type`) are names too
_TRIPLE = re.compile(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'')  # a docstring's words name nothing either
_PROSE = frozenset({"comment", "string", "string_content", "template_string"})
_STAR_IMPORT = re.compile(r"^[ \t]*from[ \t]+\S+[ \t]+import[ \t]+\*", re.MULTILINE)
_PY_COMMENT = re.compile(r"#[^\n]*")
_C_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_NOT_CODE = re.compile(r"(?:#|//)[^\n]*|/\*.*?\*/|\"[^\"\n]*\"|'[^'\n]*'", re.DOTALL)


def _undeclared_assignment(text: str, start: int, end: int, new: str, lang: str | None) -> str | None:
    """JavaScript/TypeScript: a bare name the new text assigns to where no declaration reaches it (_js_declares, by
    scope; not a global of the platform such as `module` or `window`). In a class or a module, code strict by
    default, that is a ReferenceError when it runs, elsewhere a stray global. From trials: a refine turned `this._active
    = 0;` into `_active = 0;`, `prot = ctor.prototype` into `type = ctor.prototype`; a fill wrote `varconstructor =`."""
    touched = _touched(text, start, end, new)
    edited = _js_edited(text, start, end, new, lang) if "=" in touched or re.search(r"\bfor\b", touched) else None
    if edited is None:
        return None
    _, tree, data = edited
    lo, hi = len(_syntax.encode(text[:start])), len(_syntax.encode(text[:start] + new))
    for node in _overlapping(tree, lo, hi):
        left = node.child_by_field_name("left") if node.type in _JS_ASSIGNS else None
        if left is None or left.type != "identifier" or not lo <= left.start_byte < hi or _js_in_error(left):
            continue
        name = data[left.start_byte : left.end_byte]
        if name.decode("utf-8", "replace") in _JS_GLOBALS:
            continue
        if any(_js_encloses(sc, left) or _js_in_error(sc) for sc, _ in _js_declarations(tree, data, name)):
            continue
        # what the grammar does not read as a declaration (TypeScript's `using x = ...`, `await using`)
        if re.search(rb"\busing[ \t]+" + re.escape(name) + rb"(?![\w$])", data) is None:
            return name.decode("utf-8", "replace")
    return None


_JS_GLOBALS = frozenset({"module", "exports", "window", "globalThis", "self", "document", "process"})
# what a script reads without declaring it: the language's built-ins, and the browser's and Node's usual globals
_JS_BUILTINS = _JS_GLOBALS | frozenset("""
    Object Array String Number Boolean Symbol BigInt Math JSON Date RegExp Error TypeError RangeError SyntaxError
    ReferenceError EvalError URIError AggregateError Promise Map Set WeakMap WeakSet WeakRef Proxy Reflect Intl
    Function ArrayBuffer SharedArrayBuffer DataView Atomics Int8Array Uint8Array Uint8ClampedArray Int16Array
    Uint16Array Int32Array Uint32Array Float32Array Float64Array BigInt64Array BigUint64Array console require
    Buffer setTimeout clearTimeout setInterval clearInterval setImmediate clearImmediate queueMicrotask parseInt
    parseFloat isNaN isFinite encodeURIComponent decodeURIComponent encodeURI decodeURI escape unescape eval
    undefined NaN Infinity arguments fetch URL URLSearchParams TextEncoder TextDecoder navigator location history
    localStorage sessionStorage alert confirm prompt Event CustomEvent EventTarget Node Element HTMLElement
    AbortController AbortSignal structuredClone atob btoa crypto performance Blob File FormData Headers Request
    Response WebSocket Worker XMLHttpRequest MutationObserver IntersectionObserver ResizeObserver
    requestAnimationFrame cancelAnimationFrame getComputedStyle __dirname __filename define exports global
""".split())
# a test runner's globals: read without a declaration only in a file that calls them elsewhere (a test file); in a
# library, `test(...)` is a made-up name (from a trial: `test2` rewritten as `test`)
_JS_TEST_GLOBALS = frozenset("describe it test expect beforeEach afterEach beforeAll afterAll jest vi suite setup "
                             "teardown assert".split())
_TEST_CALL = re.compile(r"(?<![\w$.])(?:describe|it|test|suite)\s*\(")

_JS_ASSIGNS = frozenset({"assignment_expression", "augmented_assignment_expression", "for_in_statement"})


def _js_unknown_read(text: str, start: int, end: int, new: str, lang: str | None) -> tuple[str, bool] | None:
    """JavaScript/TypeScript: a name the new text's code reads where no declaration reaches it (_js_declares, by
    scope), when the file declares it only in another scope (`foo` of another function's parameters) or has it nowhere
    else in its code (a comment's word or a `.size` property count for nothing), and whether the file declares it
    elsewhere: a ReferenceError when that line runs. From trials: a cursor fill's `defaultIsMerge` (the file's
    function being `defaultIsMergeableObject`), rewrites' `PERMISSIVE_ATATCH4`, `{config}` for `configurable: true`,
    `module.exports = isView` (`isView` only in a comment). A name used elsewhere and declared nowhere is taken as a
    global of another script."""
    edited = _js_edited(text, start, end, new, lang) if re.search(r"[A-Za-z_$]", new) else None
    if edited is None:
        return None
    doc, tree, data = edited
    # the reads on the lines the edit leaves: its edges may make one of the text around (`forEach(tmp);\n` after
    # `x.` leaves the old `forEach(` bare on the next line)
    # (bounded by READ_REACH chars either side: a minified file's line holds thousands of reads the edit leaves alone)
    line_lo = max(text.rfind("\n", 0, start) + 1, start - READ_REACH)
    line_hi = doc.find("\n", start + len(new) + (1 if new.endswith("\n") else 0))
    line_hi = min(len(doc) if line_hi < 0 else line_hi, start + len(new) + READ_REACH)
    lo, hi = len(_syntax.encode(text[:line_lo])), len(_syntax.encode(doc[:line_hi]))
    code = _blank_prose(text)  # the file's code, offsets kept: a use elsewhere is one outside [start, end)
    reads = []
    for node in _overlapping(tree, lo, hi):
        if node.type in ("identifier", "shorthand_property_identifier") and node.start_byte >= lo and \
                node.end_byte <= hi and _js_declares(node) is None and not _js_assigned(node):
            reads.append(node)
    declared: dict[str, list[Any]] = {}  # a name's declarations, looked up once however often it is read
    for node in sorted(reads, key=lambda n: n.start_byte):
        name = data[node.start_byte : node.end_byte].decode("utf-8", "replace")
        if name in _JS_TEST_GLOBALS and _TEST_CALL.search(code) is not None:
            continue
        if name in _JS_BUILTINS or node.parent is not None and node.parent.type in _JS_LABELS | {
                "nested_type_identifier"}:
            continue
        if _js_declared_around(tree, data, name.encode(), node):
            continue
        if name not in declared:
            declared[name] = [sc for sc, _ in _js_declarations(tree, data, name.encode())]
        scopes = declared[name]
        # a declaration or a read inside a parse error is tree-sitter's guess (a call's arguments read as a function's
        # parameters): the scopes then say nothing
        if any(_js_encloses(scope, node) or _js_in_error(scope) for scope in scopes) or scopes and _js_in_error(node):
            continue
        if scopes or name in _JS_WORDS or not any(not start <= m.start() < end
                                                  for m in re.finditer(_BARE.format(re.escape(name)), code)):
            return name, bool(scopes)  # (`.size` elsewhere is a property, not the name `size`)
    return None


_JS_WORDS = frozenset({"of", "in", "get", "set", "static", "async", "await", "yield", "let", "from", "as"})
_JS_LABELS = frozenset({"labeled_statement", "break_statement", "continue_statement"})  # a label's name is no read


_PY_HEADER = re.compile(r"[ \t]*(?:async[ \t]+)?def[ \t]+\w+[ \t]*\(.*\)[ \t]*(?:->[^:\n]*)?:[ \t]*(?:#[^\n]*)?")


def _header_drops_parameter(text: str, at: int, new: str, lang: str | None) -> str | None:
    """A name the body of a function reads and nothing binds there, when a cursor fill completes that function's
    parameter list: the header the answer writes leaves the name out. From a trial: `(text: strin` + `g) {` dropped
    `initialText`, `(processLis` + `tener) => {` named the parameter the body reads as `processList`, `def fill` +
    `_text(self):` dropped `text`. A name read unbound elsewhere too is taken as a global from outside the file."""
    if ")" not in new or len(text) > WHOLE_FILE_CHARS:
        return None
    if lang == "python":
        start = text.rfind("\n", 0, at) + 1
        if not _PY_HEADER.fullmatch(text[start:at] + new.split("\n", 1)[0]):
            return None
        doc = text[:at] + new + text[at:]
        if _STAR_IMPORT.search(doc):  # it may bind any name
            return None
        body = _function_around(doc, at)  # from the `def` line at `start`
        if not body or "\n" not in body or not doc.startswith(body, start):
            return None
        read = set(_NAME.findall(_NOT_CODE.sub(" ", body.split("\n", 1)[1])))
        unbound = _syntax.python_unresolved(doc, fill_stubs=False) or set()
        if not unbound & read:
            return None
        indent = body[: len(body) - len(body.lstrip(" \t"))]  # the function as `pass`: its class keeps a body
        rest = _syntax.python_unresolved(doc[:start] + indent + "pass\n" + doc[start + len(body) :], fill_stubs=False)
        names = sorted(n for n in unbound & read - rest if not _NOT_PARAMETER.match(n)) if rest is not None else []
        return names[0] if names else None
    if lang not in ("javascript", "typescript", "tsx"):
        return None
    edited = _js_edited(text, at, at, new, lang)
    if edited is None:
        return None
    doc, tree, data = edited
    b0 = len(_syntax.encode(text[:at]))
    b1 = b0 + len(_syntax.encode(new))
    params = tree.root_node.descendant_for_byte_range(b0, b0)
    while params is not None and params.type != "formal_parameters":
        params = params.parent
    # the answer closes the list: its `)` is the answer's, and the function's body follows
    if params is None or not b0 < params.end_byte <= b1 or params.parent is None:
        return None
    function = params.parent
    body = function.child_by_field_name("body")
    if body is None or body.end_byte <= b1 or _js_in_error(function) or function.has_error:
        return None
    code = _blank_prose(doc)
    om = _syntax.OffsetMap(doc)
    lo, hi = om.to_char(function.start_byte), om.to_char(function.end_byte)
    seen: set[str] = set()
    for node in _overlapping(tree, max(body.start_byte, b1), body.end_byte):
        if node.type not in ("identifier", "shorthand_property_identifier") or _js_declares(node) is not None \
                or _js_assigned(node):
            continue
        name = _syntax._text(node)
        if name in seen or _NOT_PARAMETER.match(name) or name in _JS_BUILTINS or name in _JS_WORDS or \
                name in _JS_TEST_GLOBALS:
            continue
        seen.add(name)
        if node.parent is not None and node.parent.type in _JS_LABELS | {
                "nested_type_identifier", "named_tuple_member"}:  # `[result: boolean]` is a type's
            continue
        # declared only in another scope (trusted where the file parses: elsewhere tree-sitter's guesses mislead the
        # scopes), or nowhere and read nowhere else (else a global of another script)
        scopes = [sc for sc, _ in _js_declarations(tree, data, name.encode())]
        if any(_js_encloses(scope, node) for scope in scopes):
            continue
        if scopes and not tree.root_node.has_error or not scopes and \
                not any(not lo <= m.start() < hi for m in re.finditer(_BARE.format(re.escape(name)), code)):
            return name
    return None


# a class, a type, a constant or a build's global (`Doc`, `__DEV__`, `__magic__`): hardly a parameter
_NOT_PARAMETER = re.compile(r"[A-Z]|__|[^a-z]*$")

# types TypeScript's libraries (ES, DOM, Node's usual ones) declare: a type name outside these and the file's own code
# is declared nowhere the file can see
_TS_TYPES = frozenset("""
Array ReadonlyArray Record Partial Required Readonly Pick Omit Exclude Extract NonNullable ReturnType Parameters
ConstructorParameters InstanceType ThisParameterType OmitThisParameter ThisType Awaited NoInfer Uppercase Lowercase
Capitalize Uncapitalize Promise PromiseLike PromiseConstructor Map Set WeakMap WeakSet WeakRef ReadonlyMap ReadonlySet
Date RegExp RegExpMatchArray RegExpExecArray Error TypeError RangeError SyntaxError ReferenceError EvalError URIError
AggregateError Function Object String Number Boolean Symbol BigInt Iterable Iterator IterableIterator IteratorResult
AsyncIterable AsyncIterator AsyncIterableIterator Generator AsyncGenerator GeneratorFunction ArrayLike PropertyKey
PropertyDescriptor PropertyDescriptorMap TemplateStringsArray ArrayBuffer SharedArrayBuffer ArrayBufferLike
ArrayBufferView DataView Int8Array Uint8Array Uint8ClampedArray Int16Array Uint16Array Int32Array Uint32Array
Float32Array Float64Array BigInt64Array BigUint64Array JSON Math Intl Proxy ProxyHandler Reflect Console Atomics
ErrorConstructor ObjectConstructor ArrayConstructor FunctionConstructor CallableFunction NewableFunction IArguments
ClassDecorator PropertyDecorator MethodDecorator ParameterDecorator TypedPropertyDescriptor
Element HTMLElement Node Document Window Event EventTarget EventListener MouseEvent KeyboardEvent FocusEvent
InputEvent PointerEvent TouchEvent WheelEvent CustomEvent MessageEvent ErrorEvent Response Request RequestInit Headers
HeadersInit URL URLSearchParams Blob File FileList FormData AbortController AbortSignal ReadableStream WritableStream
TransformStream TextEncoder TextDecoder Storage Location Navigator Performance WebSocket Worker Crypto SVGElement
HTMLInputElement HTMLDivElement HTMLCanvasElement HTMLAnchorElement HTMLButtonElement HTMLFormElement
HTMLImageElement HTMLSelectElement HTMLTextAreaElement CanvasRenderingContext2D NodeList NodeListOf HTMLCollection
DOMRect ShadowRoot DocumentFragment Text Comment Range Selection MutationObserver IntersectionObserver
ResizeObserver Buffer BufferEncoding
DecoratorContext DecoratorMetadata DecoratorMetadataObject ClassDecoratorContext ClassMethodDecoratorContext
ClassGetterDecoratorContext ClassSetterDecoratorContext ClassFieldDecoratorContext ClassAccessorDecoratorContext
ClassAccessorDecoratorTarget ClassAccessorDecoratorResult
""".split())


_JS_FUNCTIONS = frozenset({"function_declaration", "generator_function_declaration", "function_expression",
                           "function", "arrow_function", "method_definition", "generator_function"})
_JS_BLOCKS = frozenset({"statement_block", "program", "for_statement", "for_in_statement", "class_body",
                        "switch_body"})
_JS_PATTERNS = frozenset({"object_pattern", "array_pattern", "rest_pattern", "assignment_pattern", "pair_pattern",
                          "object_assignment_pattern", "required_parameter", "optional_parameter"})


_TS_TYPE_DECLARATIONS = frozenset({"type_parameter", "type_alias_declaration", "interface_declaration",
                                   "class_declaration", "abstract_class_declaration", "enum_declaration"})


def _ts_unknown_type(text: str, start: int, end: int, new: str, lang: str | None) -> str | None:
    """TypeScript: a type name the new text uses that nothing declares: not a library type (_TS_TYPES), not a word of
    the file's code outside the edit (an import, a declaration, a type parameter, a use), not declared by the new text
    itself. From a trial: rewrites of fast-equals' types wrote `Set<any, Meta>`, `Object[Any]`, `number64Array`,
    `TypeArray` for `TypedArray`; tree-sitter reads every one, and none compiles."""
    if lang not in ("typescript", "tsx"):
        return None
    edited = _js_edited(text, start, end, new, lang) if re.search(r"[A-Za-z_$]", new) else None
    if edited is None:
        return None
    _doc, tree, data = edited
    lo = len(_syntax.encode(text[:start]))
    hi = lo + len(_syntax.encode(new))
    used, declared, stack = [], set(), [tree.root_node]
    while stack:
        node = stack.pop()
        if node.end_byte < lo or node.start_byte > hi:
            continue
        stack.extend(node.children)
        if node.type != "type_identifier" or not lo <= node.start_byte < hi:
            continue
        parent = node.parent
        name = data[node.start_byte : node.end_byte].decode("utf-8", "replace")
        if parent is not None and parent.type in _TS_TYPE_DECLARATIONS and parent.child_by_field_name("name") == node:
            declared.add(name)
        elif parent is None or parent.type != "nested_type_identifier":  # `NodeJS.Timeout`: a namespace's
            used.append((node.start_byte, name))
    code = _blank_prose(text)
    for _, name in sorted(used):
        if name in _TS_TYPES or name in declared or name in _JS_BUILTINS:
            continue
        if not any(not start <= m.start() < end for m in re.finditer(_BARE.format(re.escape(name)), code)):
            return name
    return None


def _overlapping(tree: Any, lo: int, hi: int) -> Iterator[Any]:
    """The nodes of tree that overlap bytes [lo, hi) (a subtree outside is not entered)."""
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.end_byte <= lo or node.start_byte >= hi:
            continue
        stack.extend(node.children)
        yield node


def _js_declares(node) -> Any:
    """The scope node a declaration of this identifier binds its name in (None: the identifier is no declaration):
    a parameter's function, a `var`'s function or program, a `let`/`const`/class/function declaration's block, a catch
    clause's parameter its clause, an import the program."""
    if node.type not in ("identifier", "shorthand_property_identifier_pattern"):
        return None
    child, up = node, node.parent
    while up is not None and up.type in _JS_PATTERNS:  # a destructured or defaulted name: up to what binds it
        if up.type in ("assignment_pattern", "object_assignment_pattern") and up.child_by_field_name("left") != child:
            return None  # the default value is a read (`{ a = 1 }` too)
        if up.type == "pair_pattern" and up.child_by_field_name("value") != child:
            return None  # the key is a property name
        child, up = up, up.parent
    if up is None:
        return None
    kind = up.type
    if kind == "formal_parameters":
        return up.parent
    if kind == "arrow_function" and up.child_by_field_name("parameter") == child:
        return up
    if kind == "variable_declarator" and up.child_by_field_name("name") == child:
        decl = up.parent
        if decl is not None and decl.type == "variable_declaration":  # var: the function's, hoisted
            return _js_up(decl, _JS_FUNCTIONS | {"program"})
        return _js_up(up, _JS_BLOCKS)
    if kind in ("function_declaration", "generator_function_declaration", "class_declaration") and \
            up.child_by_field_name("name") == child:
        return _js_up(up, _JS_BLOCKS)
    if kind in ("function_expression", "class", "generator_function") and up.child_by_field_name("name") == child:
        return up
    if kind == "catch_clause" and up.child_by_field_name("parameter") == child:
        return up
    if kind == "for_in_statement" and up.child_by_field_name("left") == child and up.child_by_field_name("kind"):
        return up if up.child_by_field_name("kind").type != "var" else _js_up(up, _JS_FUNCTIONS | {"program"})
    if kind in ("import_specifier", "namespace_import", "import_clause"):
        if kind == "import_specifier" and up.child_by_field_name("alias") not in (None, child):
            return None  # `imp as imp2`: imp2 is bound, imp names the export
        return _js_up(up, frozenset({"program"}))
    return None


def _js_assigned(node) -> bool:
    """Whether the identifier is no read: an assignment's target, an import's or export's name, a label."""
    up = node.parent
    if up is None:
        return True
    if up.type in _JS_ASSIGNS and up.child_by_field_name("left") == node:
        return True  # an undeclared one is _undeclared_assignment's
    return up.type in ("labeled_statement", "export_specifier", "import_specifier", "namespace_export") or \
        up.child_by_field_name("label") == node


def _js_edited(text: str, start: int, end: int, new: str, lang: str | None) -> tuple[str, Any, bytes] | None:
    """JavaScript/TypeScript: the edited file, its tree and its bytes (None: another language, or a file too big to
    read whole at every keystroke)."""
    if lang not in ("javascript", "typescript", "tsx") or len(text) > WHOLE_FILE_CHARS:
        return None
    doc = text[:start] + new + text[end:]
    tree = _syntax.parse(doc, lang)
    return None if tree is None else (doc, tree, _syntax.encode(doc))


def _js_names(tree: Any, data: bytes, name: bytes, lo: int = 0, hi: int | None = None) -> list[Any]:
    """The identifiers (reads and declarations) spelled `name` in the tree of `data` (within bytes [lo, hi))."""
    pattern = re.compile(rb"(?<![\w$])" + re.escape(name) + rb"(?![\w$])")
    found = (_js_leaf(tree.root_node, m.start(), m.end())
             for m in pattern.finditer(data, lo, len(data) if hi is None else hi))
    return [n for n in found if n is not None]


def _js_declared_around(tree: Any, data: bytes, name: bytes, node: Any) -> bool:
    """Whether a declaration of `name` reaches `node`, looked for in the functions around it, innermost first: such a
    declaration lies inside its scope, around the node. (A minified file's names are mostly its functions' own; the
    whole file searched for each read took a keystroke seconds.)"""
    done_lo = done_hi = node.start_byte
    up = node.parent
    while up is not None:
        if up.type in _JS_FUNCTIONS or up.parent is None:
            for lo, hi in ((up.start_byte, done_lo), (done_hi, up.end_byte)):
                for n in _js_names(tree, data, name, lo, hi) if lo < hi else ():
                    scope = _js_declares(n)
                    if scope is not None and _js_encloses(scope, node):
                        return True
            done_lo, done_hi = up.start_byte, up.end_byte
        up = up.parent
    return False


def _js_declarations(tree: Any, data: bytes, name: bytes) -> list[tuple[Any, Any]]:
    """(scope, identifier) of each declaration of `name` in the tree of `data` (_js_declares)."""
    return [(scope, n) for n in _js_names(tree, data, name) if (scope := _js_declares(n)) is not None]


def _js_leaf(root, start: int, end: int) -> Any:
    """The identifier spanning exactly [start, end) bytes, if one does (a TypeScript parameter's node spans its name
    alone too, and descendant_for_byte_range may stop there)."""
    node = root.descendant_for_byte_range(start, end)
    while node is not None and node.type not in ("identifier", "shorthand_property_identifier_pattern"):
        node = next((c for c in node.children if c.start_byte == start and c.end_byte == end), None)
    return node


def _js_up(node, types: frozenset[str]) -> Any:
    up = node.parent
    while up is not None and up.type not in types:
        up = up.parent
    return up


def _js_in_error(node) -> bool:
    while node is not None:
        if node.type == "ERROR" or node.is_missing:
            return True
        node = node.parent
    return False


def _js_encloses(scope, node) -> bool:
    return scope.start_byte <= node.start_byte and node.end_byte <= scope.end_byte


def _only_comments(s: str, lang: str | None) -> bool:
    """Whether s holds nothing but comments and blank space (`#` comments in Python, `//` and `/* */` elsewhere), or in
    Python only string literals besides (a docstring of junk is no more code than a comment of it)."""
    if lang is None:
        return False
    rest = (_PY_COMMENT if lang == "python" else _C_COMMENT).sub("", s).strip()
    if not rest or lang != "python":
        return not rest
    module = _syntax.python_module(textwrap.dedent(s).strip())
    return module is not None and bool(module.body) and all(
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
        for n in module.body)


_DEF = re.compile(r"^([ \t]*)(?:async[ \t]+)?def[ \t]+(\w+)", re.MULTILINE)
_TOP_DEF = re.compile(r"^(?:async[ \t]+)?def[ \t]+(\w+)", re.MULTILINE)


def _python_self_call(text: str, start: int, new: str, end: int | None = None, reach: int = 4000) -> str | None:
    """Why new text written into a Python function's body makes it never return, or defines it again inside itself;
    None when it does neither. From trials: `return self.source` as the body of the property `source`, `exists(...)`
    called first thing in `exists`, `pop`'s body holding a second `def pop(self):`, and the nine lines of
    `_init_from` rewritten as `self._init_from(self)`."""
    line_start = text.rfind("\n", 0, start) + 1
    lead = text[line_start:start] + new  # a rewrite of whole lines starts at column 0: its own indentation counts
    owner = _def_above(text, line_start, len(lead) - len(lead.lstrip(" \t")), reach)
    if owner is None:
        return None
    name = owner.group(2)
    if re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}\b", new, re.MULTILINE):
        return f"the answer defines `{name}` again inside itself"
    if _recurses_first(text[:start] + new + text[start if end is None else end :], name, text.count("\n", 0, start)):
        return f"the answer calls `{name}` from itself before anything else: it would never return"
    return None


def _joins_splat(text: str, start: int, end: int, new: str) -> str | None:
    """Why a Python answer turns the unpacking after it into arithmetic, or None: `**kwargs` right after `(` or `,`
    unpacks, and after an answer that ends in a value it raises to a power (a trial's `break_on_hyphens=` filled with
    `w.wrap_on` before ` **kwargs)`: it parses, and is wrong)."""
    m = re.match(r"[ \t]*(\*\*?)[ \t]*([A-Za-z_]\w*)", text[end:])
    if m is None or not new.strip() or not text[:start].rstrip().endswith((",", "(", "[", "{")):
        return None
    if new.rstrip().endswith((",", "(", "[", "{")):
        return None
    op = "raises to a power" if m.group(1) == "**" else "multiplies"
    return f"the answer runs into `{m.group(1)}{m.group(2)}`: `{m.group(1)}` then {op} instead of unpacking " \
           f"`{m.group(2)}`"


def _def_above(text: str, line_start: int, indent: int, reach: int) -> re.Match[str] | None:
    """The last `def` line within `reach` chars above `line_start` less indented than `indent`: the function whose body
    holds a line of that indentation."""
    owner = None
    for m in _DEF.finditer(text, max(0, line_start - reach), line_start):
        if len(m.group(1)) < indent:
            owner = m
    return owner


# the built-in that calls each special method: called on `self` inside that method, it recurses
_DUNDER_BUILTINS = {"__repr__": "repr", "__str__": "str", "__len__": "len", "__hash__": "hash", "__iter__": "iter",
                    "__bool__": "bool", "__int__": "int", "__float__": "float", "__abs__": "abs", "__bytes__": "bytes",
                    "__format__": "format", "__next__": "next", "__reversed__": "reversed", "__dir__": "dir"}
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?([a-zA-Z%])")  # a %-format's specs


def _recurses_first(source: str, name: str, line: int) -> bool:
    """Whether the function `name` whose body holds 0-based `line` of the Python source calls itself as its first
    statement (after a docstring), unconditionally: `self.name(...)`, `cls.name(...)` or `name(...)`, returned,
    awaited or alone; a special method, through the built-in that calls it (`repr(self)`, `f"{self!r}"` or
    `"%r" % self` in `__repr__`); or, a property, reads itself. False where the source does not parse."""
    module = _syntax.python_module_filled(source)  # a stub body of only a comment elsewhere: read as `pass`
    owner = None
    for node in ast.walk(module) if module is not None else ():
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name \
                and node.lineno - 1 < line < (node.end_lineno or 0):
            owner = node if owner is None or node.lineno > owner.lineno else owner
    if owner is None:
        return False
    body = owner.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and len(body) > 1:
        body = body[1:]  # the docstring
    value = body[0].value if isinstance(body[0], (ast.Expr, ast.Return, ast.Assign, ast.AnnAssign)) else None
    if value is None:
        return False

    def own(f: ast.expr | None) -> bool:
        if isinstance(f, ast.Attribute) and f.attr == name:
            return isinstance(f.value, ast.Name) and f.value.id in ("self", "cls")
        return isinstance(f, ast.Name) and f.id == name

    def is_self(e: ast.expr) -> bool:
        return isinstance(e, ast.Name) and e.id == "self"

    # a special method that asks for itself: `repr(self)` in `__repr__` (from a trial), `len(self)` in `__len__`
    builtin, convert = _DUNDER_BUILTINS.get(name), {"__repr__": "r", "__str__": "s"}.get(name)

    def asks_itself(node: ast.AST) -> bool:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == builtin \
                and node.args and is_self(node.args[0]):
            return True
        if convert and isinstance(node, ast.FormattedValue) and is_self(node.value):  # f"{self!r}" in __repr__
            return (chr(node.conversion) if node.conversion > 0 else "s") == convert
        if convert and isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) \
                and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):  # "%r" % self
            args = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
            specs = [m.group(1) for m in _PERCENT.finditer(node.left.value) if m.group(1) != "%"]
            return any(is_self(a) and spec == convert for a, spec in zip(args, specs, strict=False))
        return False

    # a property that reads itself: `return self.source` in the property `source`
    if isinstance(value, ast.Attribute) and own(value):
        return any((d.attr if isinstance(d, ast.Attribute) else getattr(d, "id", "")) in ("property", "cached_property")
                   for d in owner.decorator_list)
    # a call of itself anywhere in the statement, but in a branch (`a if c else f()`) or code run later (a lambda)
    stack: list[ast.AST] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Call) and own(node.func) or asks_itself(node):
            return True
        if not isinstance(node, (ast.IfExp, ast.Lambda, ast.comprehension, ast.ListComp, ast.SetComp, ast.DictComp,
                                 ast.GeneratorExp)):
            stack.extend(ast.iter_child_nodes(node))
    return False


_OPEN, _CLOSE = "([{", ")]}"


def _runaway_indent(text: str, start: int, new: str, lang: str | None, slack: int = 3) -> str | None:
    """A line of new text (not Python, where indentation is syntax and compiled) indented more than `slack` levels past
    what its brackets open (continuation lines: a formatter's nested ternary goes three deep), counted from the
    indentation of the line the edit starts on; None when there is none. From a trial: a rewrite of tab-indented
    JavaScript came back 6, 8, 10 and 22 tabs deep, which parses."""
    if lang in (None, "python") or "\n" not in new:
        return None
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", line_start)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    unit = _indent_unit(text)
    if not line.strip():  # on a blank line: the new text's first line sets the level
        line = next((ln for ln in new.split("\n") if ln.strip()), "")
    base = _levels(line[: len(line) - len(line.lstrip(" \t"))], unit)
    depth = 0
    for i, ln in enumerate(new.split("\n")):
        body = ln.lstrip(" \t")
        if i > 0 and body:
            closers = len(body) - len(body.lstrip(_CLOSE))  # a line starting with `}` sits at its opener's level
            if _levels(ln[: len(ln) - len(body)], unit) > base + max(0, depth - closers) + slack:
                return body
        code = _NOT_CODE.sub(" ", body)
        depth += sum(code.count(c) for c in _OPEN) - sum(code.count(c) for c in _CLOSE)
    return None


def _levels(indent: str, unit: int) -> int:
    """Indentation levels of leading whitespace: a tab is one, `unit` spaces are one."""
    return indent.count("\t") + indent.count(" ") // unit


def _indent_unit(text: str, sample: int = 400) -> int:
    """The space indentation step most used between consecutive lines of text (first `sample` lines), 4 by default."""
    steps: dict[int, int] = {}
    prev = 0
    for ln in text.split("\n", sample)[:sample]:
        if not ln.strip() or ln.lstrip().startswith("*") or "\t" in ln[: len(ln) - len(ln.lstrip())]:
            continue  # a block comment's ` * ` lines step by one space
        width = len(ln) - len(ln.lstrip(" "))
        if width > prev:
            steps[width - prev] = steps.get(width - prev, 0) + 1
        prev = width
    return max(steps, key=lambda k: (steps[k], -k)) if steps else 4


def _repeated_line(new: str, old: str) -> str | None:
    """A line of code the new text has twice in a row and the text it replaces does not: the small model's stutter
    (`cur_len += len(chunks[-1])` four times over), which parses and is never what was meant."""
    def pairs(s: str) -> set[str]:
        lines = [ln.strip() for ln in s.splitlines()]
        return {a for a, b in zip(lines, lines[1:], strict=False)
                if a == b and len(a) >= 3 and any(c.isalnum() for c in a)}

    twice = pairs(new) - pairs(old)
    return min(twice, key=new.find) if twice else None


def _function_around(text: str, at: int, reach: int = 6000) -> str:
    """The Python function whose body holds `at`, from its `def` line to the end of the body (as far as `reach`); ""
    at the top level."""
    start = text.rfind("\n", 0, at) + 1
    line = text[start:at]
    indent = len(line) - len(line.lstrip(" \t"))
    # the cursor on a `def` line (a header being typed): that function; else the one whose body holds the line (a
    # blank line's indent may be a body's)
    owner = _DEF.match(text, start) or _def_above(text, start, indent + (not line.strip()), reach)
    if owner is None:
        return ""
    depth = len(owner.group(1))
    end = re.compile(rf"^[ \t]{{0,{depth}}}\S", re.MULTILINE).search(text, text.find("\n", owner.end()) + 1,
                                                                      owner.end() + reach)
    stop = end.start() if end else owner.end() + reach
    # a def above whose body ended before `at` (an `if __name__ == '__main__':` block after the last function)
    return text[owner.start() : stop] if at < stop else ""


def _function_unresolved(text: str, at: int, new: str, words: set[str]) -> set[str]:
    """Those of `words` that the function around a cursor fill at `at`, with the fill, does not bind where the fill
    reads them (python_unresolved of that function alone); each needs the whole file read. When the function does not
    compile, those the function does not name at all (a comprehension's or a string's word counts as named)."""
    edited = text[:at] + new + text[at:]
    around = _function_around(edited, at)
    if not around or not words:
        return words
    unresolved = _syntax.python_unresolved(textwrap.dedent(around))
    if unresolved is None:
        return {w for w in words if not re.search(_BARE.format(re.escape(w)), around)}
    return words & unresolved


def _top_level_binds(text: str, name: str) -> bool:
    """Whether a line at the module's top level binds `name`: a def, a class, an import or an assignment."""
    n = re.escape(name)
    return re.search(rf"^(?:(?:async[ \t]+)?def|class)[ \t]+{n}\b|^{n}[ \t]*(?::[^=\n]*)?=|"
                     rf"^(?:from[ \t]+\S+[ \t]+)?import\b[^\n]*\b{n}\b", text, re.MULTILINE) is not None


def _repeats_line_above(text: str, at: int, new: str) -> tuple[str, str] | None:
    """(the line, "above" or "below") a cursor fill completes, when it is the previous line of code again, or the next
    one: the small model copies a line next to it onto a new one, where real code hardly ever repeats a line."""
    start = text.rfind("\n", 0, at) + 1
    first = new.split("\n", 1)[0]
    line = (text[start:at] + first).strip()
    if len(line) < 3 or not any(c.isalnum() for c in line) or not first.strip():
        return None
    before = text[:start].rstrip().rsplit("\n", 1)[-1].strip()
    if line == before:
        return line, "above"
    end = text.find("\n", at)
    end = len(text) if end < 0 else end
    if "\n" in new:
        return None
    whole = text[start:at] + new + text[at:end]
    line = whole.strip()
    below = [ln for ln in text[end:].split("\n")[1:40] if ln.strip()][:BELOW_HEADERS]
    if below and line == below[0].strip():
        return line, "below"
    # a condition tested again a few lines on, in the same block (`if algo` finished as `if algorithm == 'legacy':`,
    # the `if` two lines below: the first branch then always runs where the second was meant to)
    indent = whole[: len(whole) - len(whole.lstrip())]
    if _HEADER.match(line):
        for ln in below:
            at_indent = ln[: len(ln) - len(ln.lstrip())]
            if len(at_indent) < len(indent):  # the block ended
                break
            if at_indent == indent and ln.strip() == line:
                return line, "below"
    return None


BELOW_HEADERS = 6  # lines after a completed condition searched for the same condition in its block
_HEADER = re.compile(r"(?:\}\s*)?(?:if|elif|while|else\s+if)\b")


def _open_string(line: str, lang: str | None) -> str | None:
    """The quote of a one-line string left open at the end of `line` (None: none, or a line this cannot read: a
    Python triple quote)."""
    if '"""' in line or "'''" in line:
        return None
    quote, i = None, 0
    while i < len(line):
        c = line[i]
        if quote is None:
            if c == "#" and lang == "python" or line.startswith("//", i) and lang != "python":
                return None
            if c in "'\"" or c == "`" and lang != "python":
                quote = c
        elif c == "\\":
            i += 1
        elif c == quote:
            quote = None
        i += 1
    return quote


def _ends_in_string(text: str, at: int, new: str, lang: str | None) -> str | None:
    """The line a cursor fill ends with a `;` inside the string the user left open on it (`escape = '&q` finished as
    `escape = '&qu;`: the statement's end written into the string, which stays open); None otherwise."""
    start, end = text.rfind("\n", 0, at) + 1, text.find("\n", at)
    if lang is None or "\n" in new or text[at : len(text) if end < 0 else end].strip():
        return None
    line = text[start:at] + new
    if not new.rstrip().endswith(";") or _open_string(text[start:at], lang) is None or _open_string(line, lang) is None:
        return None
    return line.strip()


_ASSIGNMENT = re.compile(r"^([ \t]*)(?:(?:let|const|var)[ \t]+)?([A-Za-z_$][\w$.]*)[ \t]*(?::[^=\n]*)?=(?![=>])(.*)$")


def _overwrites_line_above(text: str, at: int, new: str) -> str | None:
    """The target a cursor fill assigns when the previous line of code, at the same indentation, assigned it and the
    fill's value does not read it: the value set above is thrown away (`isdupval = False` offered under `isdupval =
    oldkey is not MISSING`), which real code hardly ever does. A fill that only gives the value of an `=` the user
    typed is theirs to judge."""
    start = text.rfind("\n", 0, at) + 1
    if "=" in text[start:at]:
        return None
    m = _ASSIGNMENT.match(text[start:at] + new.split("\n", 1)[0])
    if m is None:
        return None
    lines = [ln for ln in text[:start].split("\n")[-40:] if ln.strip()]
    code = [ln for ln in lines if not ln.lstrip().startswith(("#", "//"))]
    before = _ASSIGNMENT.match(code[-1]) if code else None
    if before is None or (before.group(1), before.group(2)) != (m.group(1), m.group(2)):
        return None
    return None if re.search(_WORD.format(re.escape(m.group(2))), m.group(3)) else m.group(2)


_THRICE = re.compile(r"([\w.$]\S{9,}?[\w$])(?:[^\w\s]{0,3}\1){2}")  # one piece, only brackets or quotes between
PHRASE_LINE_MAX = 400  # longer lines are not searched (the pattern backtracks)


def _repeated_phrase(new: str, old: str) -> str | None:
    """A piece of code (11 chars or more) three times in a row in one line of the new text, where the text it replaces
    has no line like it: the small model's stutter inside a line, which parses (a repr's
    `f"{self.__class__.__name__}({self.__class__.__name__}(...`)."""
    def found(s: str) -> set[str]:
        return {m.group(1) for ln in s.splitlines() if len(ln) <= PHRASE_LINE_MAX for m in [_THRICE.search(ln)] if m}

    new_pieces = found(new) - found(old)
    return min(new_pieces, key=new.find) if new_pieces else None


_STUB_LINE = re.compile(r"^[ \t]*(?:return[ \t]+)?\.\.\.[ \t]*$", re.MULTILINE)
_NEW_DEF = re.compile(r"^\s*(?:async[ \t]+)?(?:def|class)[ \t]+(\w+)")


def _stub_answer(old: str, new: str) -> str | None:
    """Why a Python placeholder's fill is no fill, or None: it starts a new function or class where the body goes (the
    small model writes the next method: a re-check's `...` became a nested `async def sync_time(self)` of its own),
    or it holds a `...` (or `return ...`) line, a placeholder still."""
    if old.strip() not in ("...", "pass") and not old.lstrip().startswith("#"):
        return None
    m = _NEW_DEF.match(new)
    if m and not re.search(rf"\breturn[ \t]+{m.group(1)}\b", new):  # a decorator's body: a closure it returns
        return f"the answer defines `{m.group(1)}` where the body goes"
    if _STUB_LINE.search(new):
        return "the answer still holds a placeholder (`...`)"
    return None


_RETURNS = frozenset({"return_statement", "return_expression"})
_EXITS = _RETURNS | {"raise_statement", "throw_statement", "yield", "yield_expression"}


def _dropped_return(old: str, new: str, lang: str | None) -> str | None:
    """Why the new text loses a return of the replaced code, or None. Control would run on past it: the new text has
    no return, raise or throw at all (a trial's rewrite of a chaining method lost its `return this;`), or fewer of them
    than the code had returns, one of those gone (`return url.port` kept, the fallback `return {...}.get(url.scheme)`
    dropped); or a method that returned `this`/`self`, which its callers chain on, returns something else."""
    if lang is None or "return" not in old:
        return None
    olds = _return_texts(old, lang, _RETURNS)
    if not olds:
        return None
    exits = _return_texts(new, lang, _EXITS)
    if exits is None:
        return None
    news = _return_texts(new, lang, _RETURNS) or []
    if not exits or len(exits) < len(olds) and any(r not in news for r in olds):
        gone = next((r for r in olds if r not in news), olds[0])
        return f"the answer drops the code's `{_snippet(gone, 40)}`: it would no longer return there"
    chained = [r for r in olds if r in ("return this", "return self")]
    if chained and news and chained[0] not in news:
        return f"the answer no longer does `{chained[0]}`, which callers chain on"
    # a value the code returned, returned no more (a trial's refined `return d` was `return`: get's default lost)
    valued = [r for r in olds if not _VALUELESS.fullmatch(r)]
    if valued and _count_valueless(news) > _count_valueless(olds):
        return f"the answer drops the value of the code's `{_snippet(valued[0], 40)}`: it would return nothing there"
    return None


def _count_valueless(returns: list[str]) -> int:
    return sum(1 for r in returns if _VALUELESS.fullmatch(r))


def _return_texts(s: str, lang: str, types: frozenset[str]) -> list[str] | None:
    """The text of each node of these types in s, blanks squeezed and a final `;` dropped; None when s has no tree."""
    tree = _syntax.parse(s, lang)
    if tree is None:
        return None
    raw = _syntax.encode(s)
    return [" ".join(raw[a:b].decode("utf-8", "replace").split()).rstrip(";").rstrip()
            for a, b, _ in _syntax.nodes_of_type(tree, types)]


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TWICE = re.compile(r"([A-Za-z]{3,})\1")
_TWICE_PART = re.compile(r"(_[A-Za-z0-9]+)\1(?![A-Za-z0-9])")  # `version_re_re`, `_by_node_node`


def _stutter(text: str, start: int, end: int, new: str, reach: int = 200) -> str | None:
    """A name the edit leaves (with the word it continues, at a cursor) that has a piece written twice in a row and that
    the file does not have: `appendappend`, `subsequent_indentindent`, or a three-letter piece or a part after `_`
    when the name without it is the file's (`cbufbuf` for `cbuf`, `version_re_re` for `version_re`). The small
    model's stutter; real code has such names (`yadayada`) rarely, and then the file has them already."""
    lo = start
    while lo > max(0, start - reach) and (text[lo - 1].isalnum() or text[lo - 1] == "_"):
        lo -= 1
    hi = end
    while hi < min(len(text), end + reach) and (text[hi].isalnum() or text[hi] == "_"):
        hi += 1
    for word in _IDENT.findall(text[lo:start] + new + text[end:hi]):
        for m in _TWICE.finditer(word):
            piece = m.group(1)
            if len(set(piece)) == 1:  # xxxxxx, ffffff: a run of one letter
                continue
            if len(piece) == 3 and not _has_word(text, word[: m.start()] + word[m.start() + 3 :]):
                continue
            if not _has_word(text, word):
                return word
        for m in _TWICE_PART.finditer(word):  # a part after `_` twice: when the name with it once is the file's
            once = word[: m.start()] + word[m.start() + len(m.group(1)) :]
            if _has_word(text, once) and not _has_word(text, word):
                return word
    return None


# names a line defines: after a keyword, a function's parameters, the targets of an assignment
_DEFINED_AFTER = re.compile(r"\b(?:def|class|function|let|const|var|fn|func)[ \t]+([\w$]+)")
_PARAMETERS = re.compile(r"\b(?:def|function|fn|func)\b[^(\n]*\(([^)]*)|\blambda\b([^:\n]*):")
_TARGETS = re.compile(r"^[ \t]*([\w$., \t]+?)[ \t]*(?::[^=\n]*)?=(?![=>])", re.MULTILINE)
SHORT_MIN = 3  # a name cut short of the file's is an error whatever its length; below this, too many names start it
MISSPELT_MIN = 6  # shorter names are too often different words one letter apart


NAMES_NEAR = 4_000  # chars each side of an edit whose names are read at each request; the rest is kept by its text


def _file_names(text: str, start: int, end: int) -> set[str]:
    """The names of text outside [start, end). What lies beyond NAMES_NEAR chars of the edit, cut at line breaks, is
    the same at each keystroke of a line being typed: its names are kept (a 37 KB file took 0.8 ms a keystroke)."""
    lo = text.rfind("\n", 0, max(0, start - NAMES_NEAR)) + 1
    hi = text.find("\n", end + NAMES_NEAR)
    hi = len(text) if hi < 0 else hi
    return _names_of(text[:lo]) | set(_IDENT.findall(text[lo:start] + " " + text[end:hi])) | _names_of(text[hi:])


@functools.lru_cache(maxsize=8)
def _names_of(text: str) -> frozenset[str]:
    return frozenset(_IDENT.findall(text))


def _misspelled(text: str, start: int, end: int, new: str, reach: int = 200) -> tuple[str, str] | None:
    """(name, the file's name) for a name the edit leaves (with the word it continues) that the file does not have,
    where the file has it but for one `_` or one doubled letter: `_cmp_precedencekey` for `_cmp_precedence_key`,
    `OnDupAAction` for `OnDupAction` (each an AttributeError or NameError when run). Names the lines define or
    assign are left alone: a new name may look like an old one on purpose."""
    lo = text.rfind("\n", max(0, start - reach), start) + 1
    nl = text.find("\n", end, end + reach)
    hi = nl if nl >= 0 else min(len(text), end + reach)
    region = text[lo:start] + new + text[end:hi]
    defined = {m.group(1) for m in _DEFINED_AFTER.finditer(region)}
    defined |= {w for m in _PARAMETERS.finditer(region) for w in _IDENT.findall(m.group(1) or m.group(2) or "")}
    defined |= {w for m in _TARGETS.finditer(region) for w in _IDENT.findall(m.group(1))}
    words = [w for w in dict.fromkeys(_IDENT.findall(region)) if len(w) >= MISSPELT_MIN and w not in defined]
    if not words:
        return None
    # the word the user is typing at the cursor is not yet a name of the file (`__mro_` completed to `__mro__`)
    typed = re.search(r"\w+$", text[lo:start]) if start == end else None
    known = _file_names(text, start - len(typed.group()) if typed else start, end)
    for word in words:
        if word in known:
            continue
        variants = [word[:i] + word[i + 1 :] for i in range(len(word) - 1) if word[i] == word[i + 1]]
        variants += [word[:i] + "_" + word[i:] for i in range(1, len(word))
                     if word[i - 1] != "_" and word[i] != "_"] if "_" in word else []
        variants += [word[:i] + word[i + 1 :] for i in range(1, len(word) - 1) if word[i] == "_"]
        for v in variants:
            if len(v) >= MISSPELT_MIN and v in known:
                return word, v
    return None


def _stops_short(text: str, at: int, new: str, lang: str | None) -> tuple[str, str] | None:
    """(name, the file's name) for a Python, JavaScript or TypeScript name the user began typing that a cursor fill
    completes to one nothing defines, where the file has a name that starts with it: `raise Circ` completed to
    `Circular`, the file's class being `CircularDependencyError` (a name the user began is theirs, but not one the
    answer cut short of the file's)."""
    # the word ends at the cursor, or before blanks on its line (`return poi  ` after a Tab, then `if pointer ...`)
    end = at
    while end > 0 and text[end - 1] in " \t":
        end -= 1
    lo = end
    while lo > 0 and (text[lo - 1].isalnum() or text[lo - 1] == "_"):
        lo -= 1
    head = re.match(r"\w*", new) if end == at else None
    word = text[lo:end] + (head.group() if head else "")
    # an answer that ends the word as typed (`[unesc` closed with `]`, the file's name being `unescape`) cuts it short
    # as much as one that finishes it
    js = lang in ("javascript", "typescript", "tsx")
    if not (lang == "python" or js) or lo == end or len(word) < SHORT_MIN or len(text) > WHOLE_FILE_CHARS \
            or text[lo - 1 : lo] in (".", "#", "$") or not new.strip() or keyword.iskeyword(word):
        return None
    # JavaScript: a global, a word of the language, a name being declared or an object's key is no name to resolve
    line = text[text.rfind("\n", 0, lo) + 1 : lo]
    if js and (word in _JS_BUILTINS or word in _JS_RESERVED or new[len(head.group()) if head else 0 :].lstrip()
               .startswith((":", "?")) or any(line.count(q) % 2 for q in "\"'`")  # in a string, it names nothing
               or _JS_DECLARING.search(text, max(0, lo - 200), lo)):
        return None
    # a comment's words name nothing (`invert` in "so invert self._fwdm"); the word as typed is not the file's
    code = _NOT_CODE.sub(" ", _TRIPLE.sub(" ", text[:lo] + text[end:]))
    if _has_word(code, word):
        return None
    longer = min((k for k in set(_IDENT.findall(code)) if len(k) > len(word) and k.startswith(word)), default=None,
                 key=len)
    if longer is None:
        return None
    if js:  # a trial's `if (!result` closed with `) {`, the file's name being `results`
        edited = _js_edited(text, at, at, new, lang)
        if edited is None or _js_declarations(edited[1], edited[2], word.encode()):
            return None
        b = len(_syntax.encode(text[:lo]))
        node = edited[1].root_node.descendant_for_byte_range(b, b)
        while node is not None:  # a name an import or export clause lists is no read here (`export { a } from`)
            if node.type in ("export_clause", "named_imports", "import_clause", "export_specifier",
                             "import_specifier", "namespace_export"):
                return None
            node = node.parent
        return word, longer
    after = _syntax.python_unresolved(text[:at] + new + text[at:], fill_stubs=False)
    return (word, longer) if after is not None and word in after else None


_JS_DECLARING = re.compile(r"\b(?:let|const|var|function|class|interface|type|enum)\s+$")  # a name being declared
_JS_RESERVED = frozenset("""break case catch class const continue debugger default delete do else export extends
finally for function if import in instanceof new return super switch this throw try typeof var void while with yield
let static async await of get set null true false undefined""".split())


def _has_word(text: str, word: str) -> bool:
    return word in text and re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", text) is not None


def _dropped_names(old: str, new: str) -> set[str]:
    """Names the old text defines (declared, or assigned at a line's start) that the new text does not name at all (a
    comment's or a string's words define nothing; a name the new text still reads is new_unbound's to judge)."""
    code = _NOT_CODE.sub(" ", old)
    names = {m.group(1) for m in _DECLARED.finditer(code)} | {m.group(1) for m in _ASSIGNED.finditer(code)}
    names |= {n for m in _DESTRUCTURED.finditer(code) for n in _pattern_names(m.group(1))}
    names |= {n for m in _UNPACKED.finditer(code) for n in _IDENT.findall(m.group(1))}
    return {n for n in names if not re.search(_WORD.format(re.escape(n)), new)}


def _pattern_names(pattern: str) -> set[str]:
    """The names a destructuring pattern binds: `{a, b: c, d = 1, ...e}` gives a, c, d, e; `[x, , y]` gives x, y."""
    p = re.sub(r"=[^,}\]]*", "", pattern)  # default values
    p = re.sub(r"[\w$]+\s*:", "", p)  # the keys of renamed properties
    return set(re.findall(r"[A-Za-z_$][\w$]*", p))


def _dropped_definition(text: str, start: int, end: int, new: str, win: tuple[int, int]) -> tuple[str, int] | None:
    """(name, line) of a name the replaced text defines, the new text lacks, and the code around the edit (in `win`)
    still uses at that line; None when there is none. A rewrite that deletes `total = a + b` above `return total`
    parses, and breaks the code all the same."""
    # where the code around reads it: not in a comment or a string (a re-check was told `values` was still used on a
    # comment's line), nor as an attribute (`.values`)
    code = text[: win[0]] + _blank_prose(text[win[0] : win[1]])
    for name in sorted(_dropped_names(text[start:end], new)):
        word = re.compile(rf"(?<![\w$.]){re.escape(name)}(?![\w$])")
        use = word.search(code, end, win[1]) or word.search(code, win[0], start)
        if use is not None:
            return name, text.count("\n", 0, use.start())
    return None


def _cut_word(text: str, start: int, end: int, new: str) -> tuple[str, str] | None:
    """(old, new) name where a rewrite's range begins or ends inside a name and leaves one the file has nowhere: the
    `tt` of `@host.setter` rewritten as `f` gives `sefer` (from a trial; an AttributeError when the module loads)."""
    edited = text[:start] + new + text[end:]
    for cut, at in ((start, start), (end, start + len(new))):
        if not (0 < cut < len(text) and _is_word(text[cut - 1]) and _is_word(text[cut])):
            continue
        was, now = _word_at(text, cut), _word_at(edited, at)
        if now and now != was and not _has_word(text, now):
            return was, now
    return None


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


def _word_at(text: str, at: int) -> str:
    """The name that touches offset `at` of text ("" when none does)."""
    lo, hi = at, at
    while lo > 0 and _is_word(text[lo - 1]):
        lo -= 1
    while hi < len(text) and _is_word(text[hi]):
        hi += 1
    return text[lo:hi]


# a line that starts an object's key (`hex6: ...`) or method (`toHex() {`)
_PAIR_KEY = re.compile(r"^[ \t]*(?:(?:async|get|set|static)[ \t]+)*([A-Za-z_$][\w$]*)[ \t]*(?::|\([^)\n]*\)[ \t]*\{)",
                       re.MULTILINE)
_NOT_KEYS = frozenset({"case", "default", "if", "for", "while", "switch", "catch", "function", "return", "else"})


def _dropped_property(text: str, start: int, end: int, new: str, lang: str | None) -> tuple[str, int] | None:
    """JavaScript/TypeScript: (key, 1-based line of a read) of an object's key or method the replaced text wrote, that
    the new text does not, and that the code outside the edit reads as `.key`. From a trial: a rewrite of tinycolor's
    `hex6: ..., hex4: ..., hex8: ...` gave two `hsla:` keys, and `matchers.hex6` was undefined."""
    if lang not in ("javascript", "typescript", "tsx"):
        return None
    code = _NOT_CODE.sub(" ", text[start:end])
    keys = [m.group(1) for m in _PAIR_KEY.finditer(code) if m.group(1) not in _NOT_KEYS]
    rest = _blank_prose(text[:start] + "\n" + text[end:])
    for key in dict.fromkeys(keys):
        if re.search(_WORD.format(re.escape(key)), new):
            continue
        read = re.compile(rf"\.{re.escape(key)}(?![\w$])")
        use = read.search(rest, start) or read.search(rest)
        if use is not None:
            return key, _line_outside(text, start, end, use.start())
    return None


def _opens_unclosed(text: str, start: int, end: int, new: str, lang: str | None) -> str | None:
    """What the edit opens and leaves open in a file that had it closed (a triple-quoted string, a template string, a
    block comment): everything after the edit would be read into it. From a trial: `\"\"\"` as the rewrite of two
    broken lines turned the rest of the file into one string, and parsed no worse than it did. Counted over the whole
    file, so a fill that closes what the line above opened passes."""
    if lang is None:
        return None
    old = text[start:end]
    pairs = [('"""', "a string"), ("'''", "a string")] if lang == "python" else \
        [("`", "a string")] if lang in ("javascript", "typescript", "tsx", "go") else []
    for delim, what in pairs:
        n = text.count(delim)
        if not n % 2 and (n - old.count(delim) + new.count(delim)) % 2:
            return what
    if lang != "python":
        opened, closed = text.count("/*"), text.count("*/")
        if opened <= closed and opened - old.count("/*") + new.count("/*") > closed - old.count("*/") + new.count("*/"):
            return "a comment"
    return None


def _line_outside(text: str, start: int, end: int, pos: int) -> int:
    """The 1-based line of text at offset `pos` of `text[:start] + "\\n" + text[end:]` (the file without the edited
    range, one line break in its place)."""
    return text.count("\n", 0, pos if pos < start else end + pos - start - 1) + 1


def _blank_prose(code: str) -> str:
    """code with its comments and one-line strings blanked out, every offset and line kept."""
    return _NOT_CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), code)


def _stray_closer(text: str, at: int, new: str) -> bool:
    """Whether a fill in a comment or a string is only closing brackets that its line opened none of (a trial was
    offered `)` after a docstring's words)."""
    body = new.strip()
    if not body or any(c not in ")]}" for c in body):
        return False
    line = text[text.rfind("\n", 0, at) + 1 : at]
    opened = sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}")
    return opened < len(body)


def _joins_next_word(text: str, at: int, new: str) -> tuple[str, str] | None:
    """(old, new) name a cursor fill leaves where a name follows the cursor, when the file has it nowhere: `upper`
    before `lower()` gives `upperlower`, `ord: str,\\n` inside `word` leaves `ord` (from a trial)."""
    if at >= len(text) or not _is_word(text[at]) or not new:
        return None
    edited = text[:at] + new + text[at:]
    was, now = _word_at(text, at), _word_at(edited, at + len(new))
    if now and now != was and not _has_word(text, now):
        return was, now
    return None


def _touched(text: str, start: int, end: int, new: str) -> str:
    """The lines an edit of [start, end) leaves, with its new text: from the start of its first line to the end of its
    last (the names its edges make with the text around are on them)."""
    lo = text.rfind("\n", 0, start) + 1
    hi = end if end > start and text[end - 1] == "\n" else text.find("\n", end)  # whole lines: their own line breaks
    return text[lo:start] + new + text[end : len(text) if hi < 0 else hi]


_NODE_CHECKS: OrderedDict[tuple[str, bool], str | None] = OrderedDict()
_ESM = re.compile(r"^[ \t]*(?:import[\s{*\w]|export\b)", re.MULTILINE)
NODE_CHECK_S = 5.0


def _node_syntax_error(source: str, module: bool) -> str | None:
    """Node's SyntaxError for source (`node --check`), None when it parses or Node cannot be run; kept for the
    last texts checked (the file before the edit is checked once)."""
    key = (source, module)
    if key in _NODE_CHECKS:
        _NODE_CHECKS.move_to_end(key)
        return _NODE_CHECKS[key]
    node = shutil.which("node")
    if node is None:
        return None
    try:
        run = subprocess.run([node, "--check", f"--input-type={'module' if module else 'commonjs'}", "-"],
                             input=source.encode("utf-8", "surrogatepass"), capture_output=True,
                             timeout=NODE_CHECK_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    err = run.stderr.decode("utf-8", "replace")
    found = re.search(r"^SyntaxError: (.*)$", err, re.MULTILINE)
    result = found.group(1).strip() if run.returncode != 0 and found else None
    _NODE_CHECKS[key] = result
    while len(_NODE_CHECKS) > 16:
        _NODE_CHECKS.popitem(last=False)
    return result


def _node_rejects(text: str, start: int, end: int, new: str, lang: str | None) -> str | None:
    """JavaScript, a rewrite or a fill of placeholders: Node's SyntaxError for the edited file when it parses the file
    as it is (tree-sitter reads much that Node refuses: `continue` outside a loop, `const tmp` beside `var tmp`, `var a,
    {}, b`). Where Node is installed; skipped for files too big to read whole."""
    if lang != "javascript" or len(text) > WHOLE_FILE_CHARS:
        return None
    module = bool(_ESM.search(text))
    if _node_syntax_error(text, module) is not None:
        return None
    return _node_syntax_error(text[:start] + new + text[end:], module)


def _valued(ret: Any) -> bool:
    """Whether a return statement returns a value (not only `return` or `return;`)."""
    return any(c.is_named and c.type != "comment" for c in ret.children)


def _duplicate_keys(tree: Any, lo: int, hi: int) -> set[str]:
    """Keys written twice in an object literal that overlaps bytes [lo, hi) of tree (JavaScript, TypeScript)."""
    out: set[str] = set()
    if tree is None:
        return out
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.end_byte < lo or node.start_byte > hi:
            continue
        stack.extend(node.children)
        if node.type != "object":
            continue
        seen: set[str] = set()
        for child in node.named_children:
            key = child.child_by_field_name("key") if child.type == "pair" else \
                child if child.type == "shorthand_property_identifier" else None
            if key is None or key.text is None or key.type == "computed_property_name":
                continue
            name = key.text.decode("utf-8", "replace").strip("'\"")
            (out if name in seen else seen).add(name)
    return out


def _js_test_assignment(text: str, start: int, end: int, new: str, lang: str | None) -> str | None:
    """JavaScript/TypeScript: an `if` whose whole condition is an assignment in the new text (`if (matchIndex = 0)`,
    from a trial: the branch then never runs, and the variable is overwritten); doubled parentheses mark one meant."""
    edited = _js_edited(text, start, end, new, lang) if "=" in new and "if" in text[max(0, start - 200) : end] + new \
        else None
    if edited is None:
        return None
    _, tree, data = edited
    lo, hi = len(_syntax.encode(text[:start])), len(_syntax.encode(text[:start] + new))
    for node in _overlapping(tree, lo, hi):
        if node.type == "if_statement" and (cond := node.child_by_field_name("condition")) is not None \
                and cond.named_child_count == 1 and cond.named_children[0].type == "assignment_expression":
            test = cond.named_children[0]
            if test.end_byte > lo and test.start_byte < hi:
                return data[test.start_byte : test.end_byte].decode("utf-8", "replace")
    return None


def _js_set_here(node: Any) -> bool:
    """Whether the identifier is what an assignment, `+=` and the like, a for-in/of head or `++`/`--` sets (a trial's
    `let index` rewritten as `const index` above `index--`)."""
    up = node.parent
    return up is not None and (up.type in _JS_ASSIGNS and up.child_by_field_name("left") == node
                               or up.type == "update_expression" and up.child_by_field_name("argument") == node)


def _js_const_assignment(text: str, start: int, end: int, new: str, lang: str | None) -> str | None:
    """JavaScript/TypeScript: a name assigned to where the declaration reaching it is a `const`, the assignment or
    the declaration being the new text's (a TypeError when it runs; from a trial, a fill `const tmp = ...` above the
    function's `tmp = ...`)."""
    edited = _js_edited(text, start, end, new, lang) if "=" in new else None
    if edited is None:
        return None
    _, tree, data = edited
    lo, hi = len(_syntax.encode(text[:start])), len(_syntax.encode(text[:start] + new))

    targets = []  # (assigned identifier) in the new text, or of a const it declares
    for node in _overlapping(tree, lo, hi):
        if node.type == "identifier" and node.parent is not None:
            up = node.parent
            if _js_set_here(node):
                targets.append(node)
            elif up.type == "variable_declarator" and up.child_by_field_name("name") == node and up.parent is not None \
                    and up.parent.children and up.parent.children[0].type == "const":
                name = data[node.start_byte : node.end_byte]
                targets += [n for n in _js_names(tree, data, name) if _js_set_here(n)]
    for left in targets:
        name = data[left.start_byte : left.end_byte]
        best = None  # the innermost declaration whose scope holds the assignment
        for scope, at in _js_declarations(tree, data, name):
            if _js_encloses(scope, left) and (best is None or _js_encloses(best[0], scope)):
                best = (scope, at)
        decl = best[1].parent if best is not None else None
        while decl is not None and decl.type not in ("variable_declarator", "formal_parameters"):
            decl = decl.parent
        kind = decl.parent if decl is not None and decl.type == "variable_declarator" else None
        if kind is not None and kind.type == "lexical_declaration" and kind.children and \
                kind.children[0].type == "const":
            return name.decode("utf-8", "replace")
    return None


def _pushes_rest_down(text: str, at: int, new: str, lang: str | None, prose: bool) -> str | None:
    """The rest of the line a cursor fill that ends in a line break moves to the start of a line of its own, where that
    changes what it is: in Python (module level: `s.lower()\\n` in the middle of `return s.lower()` left a line
    `.lower()` reading `s` nowhere defined), or out of a line comment (`src/index.jst` split into code `ndex`). From a
    trial."""
    if not new.endswith("\n"):
        return None
    end = text.find("\n", at)
    rest = text[at : len(text) if end < 0 else end]
    if not rest.strip():
        return None
    line = text[text.rfind("\n", 0, at) + 1 : at]
    comment = prose and re.search(r"(?:#|//)", line) is not None
    if lang in ("javascript", "typescript", "tsx") and not prose:
        return rest.strip() if _js_idle_statement(text, at, new, lang) else None
    return rest.strip() if lang == "python" and not prose or comment else None


# what a statement of its own does nothing with: its value is computed and dropped (a call, an assignment, `++`,
# `await`, `yield`, `new`, `delete` do something)
_JS_IDLE = frozenset({"binary_expression", "parenthesized_expression", "identifier", "member_expression",
                      "subscript_expression", "string", "number", "true", "false", "null", "undefined",
                      "ternary_expression", "template_string", "array", "object", "this"})


def _js_idle_statement(text: str, at: int, new: str, lang: str) -> bool:
    """JavaScript/TypeScript: whether the rest of the line after a cursor fill ending in a line break becomes a
    statement that does nothing, where it was part of the line's statement (a trial's ` 'NB';\n` after `var unit =`
    left `(options && options.unit) || '';` on a line of its own)."""
    s0, e0 = _syntax.window(text, at)
    rest = len(text[at:]) - len(text[at:].lstrip(" \t"))  # the rest starts after its blanks
    before = _syntax.parse(text[s0:e0], lang)
    if before is None:
        return False
    b = len(_syntax.encode(text[s0 : at + rest]))
    node = before.root_node.descendant_for_byte_range(b, b)
    while node is not None and node.start_byte == b and node.type != "expression_statement":
        node = node.parent
    if node is not None and node.type == "expression_statement" and node.start_byte == b:
        return False  # a statement of its own already: `a(); |b;`
    edited = text[s0:at] + new + text[at:e0]
    after = _syntax.parse(edited, lang)
    if after is None:
        return False
    b = len(_syntax.encode(text[s0:at] + new + text[at : at + rest]))
    node = after.root_node.descendant_for_byte_range(b, b)
    while node is not None and node.type != "expression_statement":
        if node.start_byte != b:
            return False
        node = node.parent
    return node is not None and node.start_byte == b and node.named_child_count == 1 and \
        node.named_children[0].type in _JS_IDLE


def _js_dropped_declaration(text: str, start: int, end: int, new: str, lang: str | None) -> tuple[str, int] | None:
    """JavaScript/TypeScript, a rewrite: (name, 1-based line) of a name the replaced text declared (a `var`, a
    parameter, a destructured name) that the code still uses where, after the edit, no declaration reaches it (from a
    trial: `var length, i, keys;` rewritten as `length = 0`, a parameter `val` as `value`: ReferenceErrors)."""
    if lang not in ("javascript", "typescript", "tsx") or len(text) > WHOLE_FILE_CHARS:
        return None
    tree = _syntax.parse(text, lang)
    if tree is None:
        return None
    data = _syntax.encode(text)
    lo, hi = len(_syntax.encode(text[:start])), len(_syntax.encode(text[:end]))
    names = set()
    for node in _overlapping(tree, lo, hi):
        if node.start_byte >= lo and node.end_byte <= hi and _js_declares(node) is not None:
            names.add(data[node.start_byte : node.end_byte])
        if node.type in ("variable_declaration", "lexical_declaration"):  # `var` of `var symbols;` rewritten as `;`
            names.update(n.encode() for d in node.named_children if d.type == "variable_declarator"
                         for n in _syntax._binding_names(d.child_by_field_name("name")))
    if not names:
        return None
    got = _js_edited(text, start, end, new, lang)
    if got is None or got[1].root_node.has_error:
        return None  # the parse check's, and a broken tree's scopes are guesses
    doc, edited, after = got
    new_lo, new_hi = lo, lo + len(_syntax.encode(new))
    for name in sorted(names):
        found = _js_names(edited, after, name)
        scopes = [sc for sc, _ in _js_declarations(edited, after, name)]
        for use in found:
            if new_lo <= use.start_byte < new_hi or _js_declares(use) is not None:
                continue  # the new text's own reads are _js_unknown_read's
            if use.parent is not None and use.parent.type in _JS_LABELS:
                continue
            if not any(_js_encloses(sc, use) for sc in scopes):
                line = doc.count("\n", 0, len(after[: use.start_byte].decode("utf-8", "replace"))) + 1
                shift = new.count("\n") - text.count("\n", start, end)
                return name.decode("utf-8", "replace"), line - (shift if use.start_byte >= new_hi else 0)
    return None


_CODING = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")  # PEP 263, on the first two lines


def _unknown_coding(text: str, start: int, end: int, new: str) -> str | None:
    """The encoding a Python file's first two lines declare after the edit, when Python knows no such codec (a
    trial's rewrite of `utf` in `# -*- coding: utf-8 -*-` as `8`: the file no longer imports; tree-sitter and
    `compile` of the text both let it through)."""
    if text.count("\n", 0, start) > 1:
        return None
    edited = text[:start] + new + text[end:]
    for line in edited.split("\n", 2)[:2]:
        found = _CODING.match(line)
        if found is not None:
            try:
                codecs.lookup(found.group(1))
            except LookupError:
                return found.group(1)
            return None
    return None
