"""The one place tree-sitter trees are touched: parsing, byte <-> char offsets, error counts, per-language node tables.

Everything public in infill/ returns plain data; trees and nodes stay inside infill/ (this module, spans, holes,
document) and never cross into server/ or engine/.
"""

from __future__ import annotations

import ast
import bisect
import builtins
import codeop
import re
import symtable
import threading
import warnings
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import tree_sitter

from infill.languages import parser_for


def encode(text: str) -> bytes:
    """UTF-8 bytes of text; lone surrogates (possible in LSP buffers) are kept as 3 bytes, never an error."""
    return text.encode("utf-8", "surrogatepass")


class OffsetMap:
    """Char offsets <-> UTF-8 byte offsets of one string (identity for ASCII text).

    Only the non-ASCII chars are listed (a regex finds them at C speed): code is mostly ASCII, and a per-char map of a
    big window cost more than parsing it.
    """

    _WIDE = re.compile(r"[^\x00-\x7f]")

    def __init__(self, text: str) -> None:
        self.ascii = text.isascii()
        self.n_chars = len(text)
        self.chars: list[int] = []  # char offset of each non-ASCII char
        self.bytes: list[int] = []  # its byte offset
        self.extra: list[int] = [0]  # extra[k]: bytes beyond one per char in the first k non-ASCII chars
        if not self.ascii:
            for m in self._WIDE.finditer(text):
                o = ord(m.group())
                self.chars.append(m.start())
                self.bytes.append(m.start() + self.extra[-1])
                self.extra.append(self.extra[-1] + (1 if o < 0x800 else 2 if o < 0x10000 else 3))
        self.n_bytes = self.n_chars + self.extra[-1]

    def to_byte(self, char_offset: int) -> int:
        if self.ascii:
            return char_offset
        return char_offset + self.extra[bisect.bisect_left(self.chars, char_offset)]

    def to_char(self, byte_offset: int) -> int:
        """Char offset of the char boundary at or before byte_offset."""
        if self.ascii:
            return byte_offset
        k = bisect.bisect_right(self.bytes, byte_offset)  # non-ASCII chars starting at or before it
        if k and byte_offset < self.bytes[k - 1] + 1 + self.extra[k] - self.extra[k - 1]:
            return self.chars[k - 1]  # inside (or at) a multi-byte char: its start
        return max(0, min(byte_offset - self.extra[k], self.n_chars))


PARSE_CACHE_CHARS = 1_000_000  # texts whose trees are kept for the next parse of the same text, per thread (~25 MB
#                                 of trees per 1M chars): a request's windows and the whole file, as it is and edited,
#                                 up to WHOLE_FILE_CHARS (at 300,000 a 187 KB file's edited tree was parsed twice)
_parsed = threading.local()


def parse(text: str, lang: str | None, old: tree_sitter.Tree | None = None) -> tree_sitter.Tree | None:
    """Tree of text in lang, or None for an unknown language.

    One request parses the same window several times (sizing, post-processing, the guard: 8 parses of 4 texts for a
    cursor fill), so a thread's last parses are kept, by text; a caller gets its own copy, free to `edit` it."""
    parser = parser_for(lang)
    if parser is None:
        return None
    if old is not None:
        return parser.parse(encode(text), old)
    cache: OrderedDict[tuple[str, str], tree_sitter.Tree] = _parsed.__dict__.setdefault("trees", OrderedDict())
    key = (lang or "", text)
    tree = cache.get(key)
    if tree is None:
        tree = cache[key] = parser.parse(encode(text))
        size = _parsed.__dict__.get("chars", 0) + len(text)
        while size > PARSE_CACHE_CHARS and len(cache) > 1:
            size -= len(cache.popitem(last=False)[0][1])
        _parsed.chars = size
    else:
        cache.move_to_end(key)
    return tree.copy()


def parsed(text: str, lang: str | None) -> tree_sitter.Tree | None:
    """The kept tree of text (a copy), if this thread parsed it lately; None otherwise (nothing is parsed)."""
    cache = _parsed.__dict__.get("trees")
    tree = cache.get((lang or "", text)) if cache is not None else None
    return None if tree is None else tree.copy()


_LEXICAL = ("javascript", "typescript", "tsx")
_SCOPES = frozenset({"program", "statement_block", "switch_case", "switch_default", "class_static_block"})
_BINDING_NAMES = frozenset({"identifier", "type_identifier", "shorthand_property_identifier_pattern"})


def redeclared(text: str, lang: str | None) -> set[str]:
    """Names declared twice in one block with `let`, `const` or `class`, or so and with `var` or as a parameter of the
    function whose body the block is (JavaScript, TypeScript): such a file parses, and is refused before any of it
    runs ("Identifier 're' has already been declared"). Empty for other languages."""
    tree = parse(text, lang) if lang in _LEXICAL else None
    if tree is None:
        return set()
    out: set[str] = set()
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        stack.extend(node.named_children)
        if node.type == "formal_parameters" and _strict_parameters(node, lang):
            names = [n for p in node.named_children for n in _binding_names(
                p.child_by_field_name("pattern") if p.type in ("required_parameter", "optional_parameter") else p)]
            out |= {n for i, n in enumerate(names) if n in names[:i]}
        if node.type not in _SCOPES:
            continue
        seen: set[str] = set()
        # a `var` of the block, or a parameter of the function whose body it is, may not share a name with a
        # `let`/`const`/class of the block either (a trial's `const tmp` beside `var tmp`)
        params = node.parent.child_by_field_name("parameters") if node.parent is not None else None
        loose = {n for p in (params.named_children if params is not None else ()) for n in _binding_names(
            p.child_by_field_name("pattern") if p.type in ("required_parameter", "optional_parameter") else p)}
        loose |= {n for child in node.named_children if child.type == "variable_declaration"
                  for d in child.named_children if d.type == "variable_declarator"
                  for n in _binding_names(d.child_by_field_name("name"))}
        # a module's imports bind as `const` does, before any of its code runs: a second import of a name, or a
        # declaration of an imported one (a function's too), is refused the same way (from a trial's TypeScript)
        imported = [n for child in node.named_children if child.type == "import_statement" for n in _imported(child)]
        for name in imported:
            (out if name in seen or name in loose else seen).add(name)
        for child in node.named_children:
            if child.type == "lexical_declaration":
                targets = [d.child_by_field_name("name") for d in child.named_children
                           if d.type == "variable_declarator"]
            elif child.type == "class_declaration":
                targets = [child.child_by_field_name("name")]
            elif child.type == "function_declaration" and imported:
                name = child.child_by_field_name("name")
                if name is not None and _text(name) in imported:
                    out.add(_text(name))
                continue
            else:
                continue
            for target in targets:
                for name in _binding_names(target):
                    (out if name in seen or name in loose else seen).add(name)
    return out


_MEMBERS = frozenset({"field_definition", "public_field_definition", "method_definition"})


def private_name_errors(text: str, lang: str | None) -> Counter[str]:
    """JavaScript/TypeScript private names (`#x`) the language refuses before any of the file runs, as reasons with
    counts: one used where no enclosing class declares it, one a class declares twice (a getter and a setter pair
    aside). tree-sitter parses both; Node does not ("Private field '#x' must be declared in an enclosing class")."""
    tree = parse(text, lang) if lang in _LEXICAL else None
    out: Counter[str] = Counter()
    stack: list[tuple[tree_sitter.Node, tuple[frozenset[str], ...]]] = [(tree.root_node, ())] if tree else []
    while stack:
        node, scopes = stack.pop()
        if node.type == "class_body":
            kinds: dict[str, list[str]] = {}
            for member in node.named_children:
                name = _member_name(member)
                if name is not None and name.type == "private_property_identifier":
                    kind = next((c.type for c in member.children if c.type in ("get", "set")), "plain")
                    kinds.setdefault(_text(name), []).append(kind)
            for name, ks in kinds.items():
                if "plain" in ks and len(ks) > 1 or ks.count("get") > 1 or ks.count("set") > 1:
                    out[f"declares `{name}` twice in its class"] += 1
            scopes = (*scopes, frozenset(kinds))
        elif node.type == "private_property_identifier":
            parent = node.parent
            declared = parent is not None and parent.type in _MEMBERS and (
                (n := _member_name(parent)) is not None and n.start_byte == node.start_byte)
            if not declared and not any(_text(node) in names for names in scopes):
                out[f"uses `{_text(node)}`, which no class around it declares"] += 1
        stack.extend((child, scopes) for child in node.named_children)
    return out


def _member_name(member: tree_sitter.Node) -> tree_sitter.Node | None:
    if member.type not in _MEMBERS:
        return None
    return member.child_by_field_name("property") or member.child_by_field_name("name")


def _text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def _imported(stmt: tree_sitter.Node) -> list[str]:
    """The values an import statement binds: `d`, `a` and `c` of `import d, { a, b as c } from "m"`, `ns` of `import *
    as ns`. TypeScript's `import type` binds types, which may share a name with a value: none."""
    if any(c.type == "type" for c in stmt.children) or re.match(rb"import\s+(?:type|typeof)\b", stmt.text or b""):
        return []  # JavaScript's grammar reads Flow's `import type {...}` with an error node where `type` is
    out: list[str] = []
    for clause in (c for c in stmt.named_children if c.type == "import_clause"):
        for part in clause.named_children:
            if part.type == "identifier":
                out.append(_text(part))
            elif part.type == "namespace_import":
                out += [_text(i) for i in part.named_children if i.type == "identifier"]
            elif part.type == "named_imports":
                for spec in part.named_children:
                    if spec.type != "import_specifier" or any(c.type == "type" for c in spec.children) \
                            or re.match(rb"(?:type|typeof)\s", spec.text or b""):
                        continue
                    bound = spec.child_by_field_name("alias") or spec.child_by_field_name("name")
                    if bound is not None and bound.type == "identifier":
                        out.append(_text(bound))
    return out


def _strict_parameters(params: tree_sitter.Node, lang: str | None) -> bool:
    """Whether a parameter list may not name a parameter twice: always in TypeScript; in JavaScript, an arrow
    function's or a method's, or a list with a default, a rest or a pattern (a plain function's may, outside strict
    mode). From a trial: `b: PrimitiveWrapper` rewritten as `a: RegExp, b: RegExp` after `a`."""
    if lang != "javascript":
        return True
    owner = params.parent.type if params.parent is not None else ""
    return owner in ("arrow_function", "method_definition") or any(
        p.type != "identifier" for p in params.named_children if p.type != "comment")


def _binding_names(node: tree_sitter.Node | None) -> list[str]:
    """The names a declaration's target binds: an identifier, or those of a destructuring pattern."""
    if node is None:
        return []
    if node.type in _BINDING_NAMES:
        return [node.text.decode("utf-8", "replace")] if node.text is not None else []
    if node.type in ("object_pattern", "array_pattern", "pair_pattern", "assignment_pattern", "rest_pattern",
                     "object_assignment_pattern"):
        value = node.child_by_field_name("value") if node.type == "pair_pattern" else None
        kids = [value] if value is not None else node.named_children
        if node.type in ("assignment_pattern", "object_assignment_pattern"):
            kids = [node.child_by_field_name("left")]
        return [n for k in kids for n in _binding_names(k)]
    return []


def _error_starts(tree: tree_sitter.Tree | None) -> list[int]:
    """Start bytes of the ERROR and MISSING nodes of tree (a MISSING node is empty: it starts where the parser wanted
    the missing token); only error-bearing subtrees are visited."""
    out: list[int] = []
    stack = [tree.root_node] if tree is not None else []
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            out.append(node.start_byte)
        if node.has_error:
            stack.extend(node.children)
    return out


def error_count(tree: tree_sitter.Tree | None) -> int:
    """Number of ERROR and MISSING nodes in tree (0 for None)."""
    return len(_error_starts(tree))


def error_offsets(text: str, lang: str | None) -> list[int]:
    """Byte offsets where the parse errors of text start, in order: ERROR and MISSING nodes, empty call arguments."""
    tree = parse(text, lang)
    return sorted(_error_starts(tree) + empty_arguments(tree, lang))


# tree-sitter's JavaScript and TypeScript read an empty argument, `f(, k)` or `f(a, , k)`, as no error (an array's hole
# is fine in JavaScript, an argument's is a SyntaxError): a re-check was offered `getOptionValueWithSource(, key)`
_EMPTY_ARGUMENT = '((arguments ["(" ","] . "," @slot))'
_queries: dict[tuple[str, str], tree_sitter.Query] = {}


def _captures(tree: tree_sitter.Tree, lang: str, source: str) -> dict[str, list[tree_sitter.Node]]:
    """The captures of the query `source` (compiled once per language) over tree."""
    if (lang, source) not in _queries:
        parser = parser_for(lang)
        assert parser is not None and parser.language is not None
        _queries[lang, source] = tree_sitter.Query(parser.language, source)
    return tree_sitter.QueryCursor(_queries[lang, source]).captures(tree.root_node)


def empty_arguments(tree: tree_sitter.Tree | None, lang: str | None) -> list[int]:
    """Byte offsets of the commas that follow `(` or another comma in a call's arguments (JavaScript, TypeScript)."""
    if tree is None or lang not in _LEXICAL:
        return []
    return [n.start_byte for n in _captures(tree, lang, _EMPTY_ARGUMENT).get("slot", [])]


# what JavaScript refuses though tree-sitter's grammars read it: an assignment as the operand of a unary or binary
# operator (a trial's `typeof val = val.type== 'number'`, read as `typeof (val = ...)`: an invalid left-hand side), and
# a `break` or `continue` with no loop (or, for `break`, switch) around it in its function (a trial's `while (...) {`
# rewritten as `if (...) {` above its `break`), or with a label no statement around it has (`break break;`)
_MISPLACED = """
(unary_expression argument: [(assignment_expression) (augmented_assignment_expression)] @bad)
(binary_expression [(assignment_expression) (augmented_assignment_expression)] @bad)
(break_statement) @jump
(continue_statement) @jump
"""
_JS_LOOPS = frozenset({"for_statement", "for_in_statement", "while_statement", "do_statement"})
_JS_FUNCTIONS = frozenset({"function_declaration", "function_expression", "function", "arrow_function",
                           "method_definition", "generator_function_declaration", "generator_function",
                           "class_static_block", "program"})


def misplaced(tree: tree_sitter.Tree | None, lang: str | None) -> list[int]:
    """Byte offsets of _MISPLACED's constructs in tree (JavaScript, TypeScript; [] elsewhere)."""
    if tree is None or lang not in _LEXICAL:
        return []
    found = _captures(tree, lang, _MISPLACED)
    out = [n.start_byte for n in found.get("bad", [])]
    for node in found.get("jump", []):
        label = node.child_by_field_name("label")  # `break outer;` goes to the statement labelled `outer`
        up = node.parent
        while up is not None and up.type not in _JS_FUNCTIONS:
            if label is None and (up.type in _JS_LOOPS
                                  or up.type == "switch_statement" and node.type == "break_statement"):
                break
            if label is not None and up.type == "labeled_statement" and (mark := up.child_by_field_name("label")) \
                    is not None and mark.text == label.text:
                break
            up = up.parent
        if up is None or up.type in _JS_FUNCTIONS:
            out.append(node.start_byte)
    return out


# definitions by node type, what each defines (the repository index's signatures, the guard's structure check)
DEF_NODES = {
    "function_definition": "function", "function_declaration": "function", "method_declaration": "function",
    "method_definition": "function", "function_item": "function", "constructor_declaration": "function",
    "generator_function_declaration": "function", "function_signature_item": "function",
    "class_definition": "class", "class_declaration": "class", "interface_declaration": "class",
    "struct_item": "class", "enum_item": "class", "trait_item": "class", "impl_item": "class",
    "struct_specifier": "class", "class_specifier": "class", "enum_declaration": "class",
    "type_declaration": "type", "type_alias_declaration": "type", "type_item": "type", "abstract_class_declaration":
    "class", "record_declaration": "class",
}


def definition_name(node: tree_sitter.Node) -> str:
    """The name a DEF_NODES node defines ("" when it has none)."""
    n = node.child_by_field_name("name") or node.child_by_field_name("type")
    if n is None:
        d = node.child_by_field_name("declarator")  # C / C++: the name sits inside declarators
        while d is not None and d.type not in ("identifier", "field_identifier", "qualified_identifier"):
            d = d.child_by_field_name("declarator")
        n = d
    if n is None and node.type == "type_declaration":  # Go: type_spec holds the name
        spec = next((c for c in node.named_children if c.type in ("type_spec", "type_alias")), None)
        n = spec.child_by_field_name("name") if spec is not None else None
    if n is None or n.text is None:
        return ""
    return n.text.decode("utf-8", "replace").split("::")[-1]


_def_queries: dict[str, tree_sitter.Query | None] = {}


def definition_paths(tree: tree_sitter.Tree | None, lang: str | None) -> list[tuple[tuple[str, ...], int, int]]:
    """Every named definition of the tree (DEF_NODES, at any depth) as (path, byte offset of its name, byte offset of
    its end): the path is the names of the definitions around it and its own, `("Fragment", "load")` for a method."""
    if tree is None or lang is None:
        return []
    if lang not in _def_queries:
        parser = parser_for(lang)
        assert parser is not None and parser.language is not None
        kinds = [k for k in DEF_NODES if parser.language.id_for_node_kind(k, True)]
        _def_queries[lang] = tree_sitter.Query(parser.language, "[" + " ".join(f"({k})" for k in kinds) + "] @d") \
            if kinds else None
    query = _def_queries[lang]
    if query is None:
        return []
    out = []
    for node in tree_sitter.QueryCursor(query).captures(tree.root_node).get("d", []):
        name = definition_name(node)
        if not name:
            continue
        path, up = [name], node.parent
        while up is not None:
            if up.type in DEF_NODES and (outer := definition_name(up)):
                path.append(outer)
            up = up.parent
        at = node.child_by_field_name("name")
        out.append((tuple(reversed(path)), (at or node).start_byte, node.end_byte))
    return out


_HOISTED = frozenset({"function_declaration", "generator_function_declaration", "class_declaration", "comment"})


def dead_returns(text: str, lang: str | None, lo: int, hi: int) -> list[tuple[int, int]]:
    """(start, end) bytes of each return statement starting in [lo, hi) of text that a statement follows in its block:
    code that never runs (a function or class declaration after it, hoisted in JavaScript, and comments aside)."""
    tree = parse(text, lang)
    out = []
    for a, b, _ in nodes_of_type(tree, frozenset({"return_statement"}), nested=True) if tree is not None else []:
        if not lo <= a < hi:
            continue
        node = tree.root_node.descendant_for_byte_range(a, b)
        while node is not None and node.type != "return_statement":
            node = node.parent
        sib = node.next_named_sibling if node is not None else None
        while sib is not None and sib.type in _HOISTED:
            sib = sib.next_named_sibling if sib.type == "comment" else None
        if sib is not None:
            out.append((a, b))
    return out


_PAIRS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {v: k for k, v in _PAIRS.items()}
_QUOTE_CHARS = "\"'`"


def unclosed(s: str) -> str | None:
    """The closers s is missing, innermost first ("" when balanced); None when s closes what it did not open or its
    brackets cannot be read (a quote left open), so no closer can repair it."""
    stack: list[str] = []
    quote = ""
    escaped = False
    for ch in s:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
            elif ch == "\n" and quote != "`":
                return None
        elif ch in _QUOTE_CHARS:
            quote = ch
        elif ch in _PAIRS:
            stack.append(_PAIRS[ch])
        elif ch in _CLOSERS:
            if not stack or stack[-1] != ch:
                return None
            stack.pop()
    return None if quote else "".join(reversed(stack))


def count_errors(text: str, lang: str | None) -> int:
    """ERROR + MISSING nodes when text is parsed as lang (0 for unknown languages), and empty call arguments."""
    tree = parse(text, lang)
    return error_count(tree) + len(empty_arguments(tree, lang))


def brokenness(text: str, lang: str | None) -> tuple[int, int]:
    """(ERROR + MISSING nodes, empty call arguments and misplaced constructs, bytes inside outermost ERROR nodes):
    compares how broken two versions of a file are."""
    return tree_brokenness(parse(text, lang), lang)


def errors_inside(tree: tree_sitter.Tree | None, spans: Sequence[tuple[int, int]]) -> int:
    """ERROR nodes (tokens the parser had to skip) that lie wholly inside one of the byte spans, and MISSING nodes
    strictly inside one: text whose own tokens do not parse where they stand. A MISSING node at a span's end is left
    out (text that stops before its statement ends has one there); inside, text goes on past a construct it left
    open (`this.unixTime();` after `Math.floor(x / ` ends the statement with its `(` unclosed)."""
    count, stack = 0, [tree.root_node] if tree is not None else []
    while stack:
        node = stack.pop()
        if node.is_error and node.end_byte > node.start_byte and any(
                lo <= node.start_byte and node.end_byte <= hi for lo, hi in spans):
            count += 1
        elif node.is_missing and any(lo < node.start_byte < hi for lo, hi in spans):
            count += 1
        if node.has_error:
            stack.extend(node.children)
    return count


def errors_within(tree: tree_sitter.Tree | None, lo: int, hi: int) -> bool:
    """Whether the tree has parse errors (ERROR or MISSING nodes) and all of them lie within bytes [lo, hi]."""
    found, stack = False, [tree.root_node] if tree is not None else []
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            if node.start_byte < lo or node.end_byte > hi:
                return False
            found = True
        elif node.has_error:
            stack.extend(node.children)
    return found


def error_near(tree: tree_sitter.Tree | None, lo: int, hi: int, limit: int) -> bool:
    """Whether an ERROR or MISSING node of at most `limit` bytes touches bytes [lo, hi] (a bigger one is a window cut
    through code, or a file broken for another reason, not text at these bytes)."""
    stack = [tree.root_node] if tree is not None else []
    while stack:
        node = stack.pop()
        if node.end_byte < lo or node.start_byte > hi:
            continue
        if (node.is_error or node.is_missing) and node.end_byte - node.start_byte <= limit:
            return True
        if node.has_error:
            stack.extend(node.children)
    return False


def tree_brokenness(tree: tree_sitter.Tree | None, lang: str | None) -> tuple[int, int]:
    """brokenness of a parsed tree."""
    if tree is None:
        return 0, 0
    count, size, stack = 0, 0, [(tree.root_node, False)]
    while stack:
        node, inside = stack.pop()
        if node.is_error or node.is_missing:
            count += 1
            if node.is_error and not inside:
                size += node.end_byte - node.start_byte
        if node.has_error:
            stack.extend((kid, inside or node.is_error) for kid in node.children)
    return count + len(empty_arguments(tree, lang)) + len(misplaced(tree, lang)), size


def python_module(source: str) -> ast.Module | None:
    """Python's own reading of source (ast.parse: nothing is run), or None where Python rejects it (tree-sitter's
    grammar lets through indentation and empty bodies Python does not)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a SyntaxWarning (an odd escape) is not an error
            return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


_EMPTY_BLOCK = re.compile(r"expected an indented block after .* on line (\d+)")


def fill_empty_blocks(source: str, keep: Sequence[tuple[int, int]] = (), tries: int = 20) -> str | None:
    """source whose empty blocks (a body of only comments, as `# TODO` leaves one) have a `pass` on one of their
    comment or blank lines, so that Python reads the rest: every line keeps its number. None where anything else stops
    Python, or where the empty block's header is on a line in `keep` (0-based, inclusive ranges: an edit's own lines,
    whose empty block is the edit's doing and must stay an error)."""
    filled = _fill_empty_blocks(source, keep, tries)
    return None if filled is None else filled[0]


def _fill_empty_blocks(source: str, keep: Sequence[tuple[int, int]] = (), tries: int = 20
                       ) -> tuple[str, ast.Module] | None:
    """fill_empty_blocks's text, and its parse (a big file's is ~10 ms: it is not parsed again)."""
    lines = source.split("\n")
    for _ in range(tries):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                text = "\n".join(lines)
                module = ast.parse(text)
            return text, module
        except SyntaxError as exc:
            m = _EMPTY_BLOCK.search(exc.msg or "")
            if not m or exc.lineno is None:
                return None
            header = int(m.group(1)) - 1  # 0-based
            if any(lo <= header <= hi for lo, hi in keep):
                return None
            last = min(exc.lineno, len(lines)) - 1
            # the last comment or blank line before the error is the empty block's (after the header's colon line)
            spot = next((i for i in range(last, header, -1) if not lines[i].strip() or
                         lines[i].lstrip().startswith("#")), None)
            if spot is None:
                return None
            head = lines[header][: len(lines[header]) - len(lines[header].lstrip())]
            own = lines[spot][: len(lines[spot]) - len(lines[spot].lstrip())]
            indent = own if lines[spot].strip() and len(own) > len(head) else head + ("\t" if "\t" in head else "    ")
            lines[spot] = indent + "pass"
        except (ValueError, RecursionError, MemoryError):
            return None
    return None


def python_module_filled(source: str) -> ast.Module | None:
    """python_module of source with its empty blocks filled (fill_empty_blocks): a file with a stub left as only a
    comment is still read for its names."""
    filled = _fill_empty_blocks(source)
    return None if filled is None else filled[1]


def python_compiles(source: str) -> bool:
    """Whether Python compiles source to bytecode (nothing is run). Stricter than python_module: the compiler also
    rejects `return` outside a function, a misplaced `from __future__` import, `nonlocal` at the top level."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(source, "<edit>", "exec", dont_inherit=True)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


_PROMPT = ast.PyCF_ONLY_AST | codeop.PyCF_ALLOW_INCOMPLETE_INPUT | codeop.PyCF_DONT_IMPLY_DEDENT


def python_finishable(source: str) -> bool:
    """Whether Python reads source as code it could still finish, or finished: codeop's test of a line typed at its
    prompt (`x = f(a,` could still be finished, `x = f(a)) + ]` cannot). Parsed only, never compiled to bytecode."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(source, "<line>", "exec", _PROMPT, dont_inherit=True)
        return True
    except SyntaxError as e:
        return "incomplete input" in str(e)
    except (ValueError, RecursionError, MemoryError):
        return False


_BUILTINS = frozenset(dir(builtins)) | {"__file__", "__name__", "__doc__", "__spec__", "__loader__", "__package__",
                                       "__path__", "__builtins__", "__annotations__", "__dict__", "__class__",
                                       "__module__", "__qualname__", "__debug__", "__cached__"}


@dataclass(frozen=True)
class PythonNames:
    """What a module binds, with the lines it binds each name on and the scope that binds it, and the names it reads
    that nothing binds."""

    bound: dict[str, list[int]]  # name -> 1-based lines of its bindings (a def's or class's line, not its decorators')
    unbound: set[str]  # read, bound nowhere (whatever the scope), not builtins: each a NameError when run
    # name -> (line, scope) of each binding; scope: None at module level, else the (first, last) lines of the function
    # (def or lambda) that binds it, or ("class" / "comprehension", first, last)
    scopes: dict[str, list[tuple[int, tuple]]] = field(default_factory=dict)

    @staticmethod
    def merged(a: PythonNames, b: PythonNames) -> PythonNames:
        """The names of a file read in two parts (each with the other's lines left blank)."""
        bound = {k: a.bound.get(k, []) + b.bound.get(k, []) for k in a.bound.keys() | b.bound.keys()}
        scopes = {k: a.scopes.get(k, []) + b.scopes.get(k, []) for k in a.scopes.keys() | b.scopes.keys()}
        return PythonNames(bound, (a.unbound | b.unbound) - bound.keys(), scopes)

    def reaches(self, name: str, line: int, skip: Callable[[int], bool]) -> bool:
        """Whether a binding of name on a line not skipped surely reaches code on `line`: one at module level, or one
        in a function around that line (a class's or a comprehension's is not looked at: python_unresolved is)."""
        return any(not skip(at) and (scope is None or len(scope) == 2 and scope[0] <= line <= scope[1])
                   for at, scope in self.scopes.get(name, ()))


_PY_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp, ast.SetComp, ast.DictComp,
           ast.GeneratorExp)


def python_names(module: ast.Module) -> PythonNames | None:
    """The module's bindings and unbound names; None when a star import or a `globals()`/`exec` call can bind names
    unseen."""
    bound: dict[str, list[int]] = {}
    scopes: dict[str, list[tuple[int, tuple]]] = {}
    loaded: set[str] = set()

    def bind(name: str, node: ast.AST, scope: tuple | None) -> None:
        line = getattr(node, "lineno", 0)
        bound.setdefault(name, []).append(line)
        scopes.setdefault(name, []).append((line, scope))

    stack: list[tuple[ast.AST, tuple | None]] = [(module, None)]
    while stack:
        node, scope = stack.pop()
        inner = scope
        if isinstance(node, _PY_SCOPES):
            lines = (node.lineno, getattr(node, "end_lineno", None) or node.lineno)
            inner = lines if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) else (
                "class" if isinstance(node, ast.ClassDef) else "comprehension", *lines)
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                loaded.add(node.id)
            else:
                bind(node.id, node, scope)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bind(node.name, node, scope)
        elif isinstance(node, ast.arg):
            bind(node.arg, node, scope)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                if a.name == "*":
                    return None
                bind(a.asname or a.name.split(".")[0], node, scope)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                bind(name, node, None if isinstance(node, ast.Global) else scope)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bind(node.name, node, scope)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bind(node.name, node, scope)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bind(node.rest, node, scope)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("globals", "exec", "vars", "locals")):
            return None
        stack += [(child, inner) for child in ast.iter_child_nodes(node)]
    return PythonNames(bound, loaded - bound.keys() - _BUILTINS, scopes)


_DYNAMIC = frozenset({"__getattr__", "__getattribute__", "__slots__", "__dict__", "setattr", "vars"})


def python_class_attributes(module: ast.Module, line: int) -> tuple[str, set[str], set[str]] | None:
    """(name, attributes, attributes read) of the innermost class whose body holds `line`: what the class defines
    (methods, class-level names, every `self.x` or `cls.x` it assigns, what `object` has) and every `self.x` its
    methods read. None when there is no such class or its attributes can come from elsewhere: a base other than
    `object`, a metaclass or other keyword, a `__getattr__`, `__slots__`, `setattr` or `__dict__`, a name ending in
    `Mixin`; or when a method of it other than the one holding `line` is still a stub (`...`, `pass`)."""
    owner: ast.ClassDef | None = None
    for node in ast.walk(module):
        if isinstance(node, ast.ClassDef) and node.lineno < line <= (node.end_lineno or node.lineno):
            if owner is None or node.lineno > owner.lineno:
                owner = node
    if owner is None or owner.keywords or owner.name.endswith("Mixin") or any(
            not (isinstance(b, ast.Name) and b.id == "object") for b in owner.bases):
        return None
    has: set[str] = set()
    reads: set[str] = set()
    for stmt in owner.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and _stub(stmt.body) and not \
                stmt.lineno <= line <= (stmt.end_lineno or stmt.lineno):
            return None  # a class still being written: its `__init__` may be the stub that will set them
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            has.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            has.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            has.add(stmt.target.id)
    for node in ast.walk(owner):
        if isinstance(node, ast.Name) and node.id in _DYNAMIC or isinstance(node, ast.Attribute) and node.attr in \
                _DYNAMIC or isinstance(node, ast.FunctionDef) and node.name in _DYNAMIC:
            return None
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            if not isinstance(node.ctx, ast.Load):
                has.add(node.attr)
            elif node.value.id == "self":
                reads.add(node.attr)
    return owner.name, has | set(dir(object)), reads


def _stub(body: list[ast.stmt]) -> bool:
    """Whether a function body is a placeholder: `...` or `pass`, after a docstring if any."""
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and len(body) > 1:
        body = body[1:]
    return len(body) == 1 and (isinstance(body[0], ast.Pass) or isinstance(body[0], ast.Expr)
                               and isinstance(body[0].value, ast.Constant) and body[0].value.value is Ellipsis)


# `from __future__ import annotations` makes the compiler skip annotations, and symtable with it: the names they read
# would go unseen (a trial's rewrite dropped the import of `Iterable`, still read in `stopwords: Iterable[str]`)
_FUTURE = re.compile(r"^(from[ \t]+__future__[ \t]+import[ \t]+)([^\n#]*)", re.MULTILINE)


def _annotations_read(source: str) -> str:
    """source with the `annotations` future import taken out (its line kept), so that annotations read names."""
    def drop(m: re.Match) -> str:
        if "(" in m.group(2) and ")" not in m.group(2):  # a list over several lines: left as it is
            return m.group(0)
        names = [n for n in re.split(r"[\s,()]+", m.group(2)) if n and n != "annotations"]
        return m.group(1) + ", ".join(names) if names else ""
    return _FUTURE.sub(drop, source) if "__future__" in source else source


def _symtable(source: str) -> symtable.SymbolTable | None:
    source = _annotations_read(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return symtable.symtable(source, "<edit>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def python_unresolved(source: str, fill_stubs: bool = True) -> set[str] | None:
    """Names read in a scope that no binding reaches, by Python's own scoping (symtable): not bound there, in a
    function around it, at module level (or by a `global` anywhere), nor builtins. Each is a NameError when that code
    runs: `other` read in one function when only another function has a parameter of that name. A stub body of only
    a comment is read as `pass` (fill_empty_blocks, unless `fill_stubs` is False: it may compile the source many
    times); None when source does not compile."""
    top = _symtable(source)
    if top is None and fill_stubs:
        filled = fill_empty_blocks(source)
        top = None if filled is None else _symtable(filled)
    if top is None:
        return None
    tables = [top]
    for t in tables:  # every scope, nested ones included (the list grows as it is read)
        tables += t.get_children()
    known = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    known |= {s.get_name() for t in tables for s in t.get_symbols() if s.is_declared_global()}
    return {s.get_name() for t in tables for s in t.get_symbols()
            if s.is_referenced() and s.is_global() and s.get_name() not in known and s.get_name() not in _BUILTINS}


# -- windows: per-request syntax work on big files stays local --------------------------------------------------------

WINDOW_RADIUS = 4_000  # chars kept on each side of the cursor (~100 lines) when a file is big
_TOP_LEVEL = re.compile(r"[A-Za-z_@#/]")  # a line starting here, unindented, usually begins a top-level construct
# Inside one long class (no unindented line within reach) the cut goes before a method instead: a cut at any other line
# can fall inside a docstring or a string literal, the window then parses as broken from there on, and every fill
# looks like it adds errors. tree-sitter parses an indented `def` at the top of a text like an unindented one.
_DEFINITION = re.compile(r"([ \t]+)(?:(?:async[ \t]+)?def|class|fn|func|pub|public|private|protected)[ \t]")


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _definition_indent(text: str, i: int) -> int | None:
    """Indentation of the line starting at i when it begins an (indented) definition: a method, a nested class."""
    m = _DEFINITION.match(text, i)
    return None if m is None else len(m.group(1))


def _top_line_at_or_before(text: str, pos: int, limit: int) -> int:
    """Start of the nearest unindented line at or before pos (searching back to limit); else of the least indented
    definition line found (a method of a long class); else pos's line start."""
    i = _line_start(text, pos)
    first, best, best_indent = i, None, None
    while i > max(limit, 0):  # at 0 it stops: _line_start(text, -1) would search from the end of the text
        if _TOP_LEVEL.match(text, i):
            return i
        indent = _definition_indent(text, i)
        if indent is not None and (best_indent is None or indent < best_indent):
            best, best_indent = i, indent
        i = _line_start(text, i - 1)
    return i if i == 0 else first if best is None else best


def _top_line_at_or_after(text: str, pos: int, limit: int) -> int:
    """Start of the nearest unindented line at or after pos (searching on to limit); else of the least indented
    definition line found; else the line after pos."""
    nl = text.find("\n", pos)
    if nl < 0:
        return len(text)
    i, first, best, best_indent = nl + 1, nl + 1, None, None
    while i < min(limit, len(text)):
        if _TOP_LEVEL.match(text, i):
            return i
        indent = _definition_indent(text, i)
        if indent is not None and (best_indent is None or indent < best_indent):
            best, best_indent = i, indent
        nl = text.find("\n", i)
        if nl < 0:
            return len(text)
        i = nl + 1
    return len(text) if i >= len(text) else first if best is None else best


def is_big(text: str, radius: int = WINDOW_RADIUS) -> bool:
    """Whether per-request syntax work on text is cut to a window (`window`) instead of the whole text."""
    return len(text) > 3 * radius


def window(text: str, lo: int, hi: int | None = None, radius: int = WINDOW_RADIUS) -> tuple[int, int]:
    """[start, end) of the part of text that per-request syntax work needs around [lo, hi): all of a small text; of
    a big one, about `radius` chars each side, cut at unindented lines (top-level code), so the window parses like
    the file does near the cursor. Keeps the cost of a completion flat in the file's size."""
    hi = lo if hi is None else hi
    if not is_big(text, radius):
        return 0, len(text)
    start = 0 if lo <= radius else _top_line_at_or_before(text, lo - radius, lo - 2 * radius)
    end = len(text) if hi + radius >= len(text) else _top_line_at_or_after(text, hi + radius, hi + 2 * radius)
    # a line longer than the radius (minified code, data) is cut: whole, it would make the work grow with it
    return max(start, lo - 2 * radius), min(end, hi + 2 * radius)


@dataclass(frozen=True)
class Tables:
    """Node types of one grammar, by situation class."""

    body: frozenset[str]  # blocks whose inside is a "body" span
    statement: frozenset[str]  # simple statements
    expression: frozenset[str]
    arguments: frozenset[str]  # argument lists (span = inside the parens)
    control: frozenset[str]  # nodes with a condition / loop header
    comment: frozenset[str]
    block_like: frozenset[str] = frozenset()  # expression_statement children that make it compound (rust)


def _f(s: str) -> frozenset[str]:
    return frozenset(s.split())


_JS_EXPR = _f(
    "binary_expression unary_expression call_expression new_expression subscript_expression member_expression "
    "arrow_function function_expression array object ternary_expression template_string await_expression "
    "augmented_assignment_expression"
)
_JS = Tables(
    body=_f("statement_block class_body"),
    statement=_f(
        "expression_statement return_statement lexical_declaration variable_declaration throw_statement "
        "break_statement continue_statement import_statement type_alias_declaration"
    ),
    expression=_JS_EXPR | _f("as_expression satisfies_expression non_null_expression"),
    arguments=_f("arguments"),
    control=_f("if_statement while_statement do_statement for_statement for_in_statement"),
    comment=_f("comment html_comment"),
)
_C_EXPR = _f(
    "binary_expression call_expression subscript_expression field_expression conditional_expression initializer_list "
    "unary_expression pointer_expression cast_expression"
)
_C = Tables(
    body=_f("compound_statement field_declaration_list"),
    statement=_f("expression_statement declaration return_statement break_statement continue_statement goto_statement"),
    expression=_C_EXPR,
    arguments=_f("argument_list"),
    control=_f("if_statement while_statement do_statement for_statement"),
    comment=_f("comment"),
)

TABLES: dict[str, Tables] = {
    "python": Tables(
        body=_f("block"),
        statement=_f(
            "expression_statement return_statement pass_statement break_statement continue_statement "
            "raise_statement import_statement import_from_statement future_import_statement assert_statement "
            "delete_statement global_statement nonlocal_statement type_alias_statement print_statement"
        ),
        expression=_f(
            "binary_operator boolean_operator comparison_operator not_operator call subscript attribute "
            "list_comprehension dictionary_comprehension set_comprehension generator_expression lambda list "
            "dictionary set tuple conditional_expression await"
        ),
        arguments=_f("argument_list"),
        control=_f("if_statement elif_clause while_statement for_statement"),
        comment=_f("comment"),
    ),
    "javascript": _JS,
    "typescript": _JS,
    "tsx": _JS,
    "go": Tables(
        body=_f("block"),
        statement=_f(
            "expression_statement return_statement short_var_declaration assignment_statement inc_statement "
            "dec_statement go_statement defer_statement var_declaration const_declaration send_statement "
            "break_statement continue_statement import_declaration"
        ),
        expression=_f(
            "binary_expression call_expression index_expression selector_expression slice_expression "
            "composite_literal func_literal unary_expression type_assertion_expression"
        ),
        arguments=_f("argument_list"),
        control=_f("if_statement for_statement"),
        comment=_f("comment"),
    ),
    "rust": Tables(
        body=_f("block declaration_list"),
        statement=_f("expression_statement let_declaration use_declaration const_item static_item type_item"),
        expression=_f(
            "binary_expression call_expression index_expression field_expression closure_expression array_expression "
            "struct_expression macro_invocation reference_expression try_expression tuple_expression unary_expression"
        ),
        arguments=_f("arguments"),
        control=_f("if_expression while_expression for_expression"),
        comment=_f("line_comment block_comment"),
        block_like=_f(
            "if_expression match_expression while_expression loop_expression for_expression block unsafe_block "
            "async_block"
        ),
    ),
    "java": Tables(
        body=_f("block class_body constructor_body interface_body enum_body"),
        statement=_f(
            "expression_statement local_variable_declaration return_statement throw_statement break_statement "
            "continue_statement field_declaration import_declaration assert_statement yield_statement"
        ),
        expression=_f(
            "binary_expression method_invocation object_creation_expression array_access field_access "
            "lambda_expression ternary_expression array_creation_expression array_initializer unary_expression"
        ),
        arguments=_f("argument_list"),
        control=_f("if_statement while_statement do_statement for_statement enhanced_for_statement"),
        comment=_f("line_comment block_comment"),
    ),
    "c": _C,
    "cpp": Tables(
        body=_C.body | _f("declaration_list"),
        statement=_C.statement | _f("alias_declaration using_declaration field_declaration"),
        expression=_C_EXPR | _f("lambda_expression new_expression"),
        arguments=_C.arguments,
        control=_C.control | _f("for_range_loop"),
        comment=_C.comment,
    ),
}


def header_range(node: tree_sitter.Node) -> tuple[int, int] | None:
    """Byte range of a control node's header: the condition (if/while), the loop clause (for), without parens/colon."""
    kids = node.children
    # C-like for loops: `for ( ... )` with the parens as direct children.
    for i, kid in enumerate(kids):
        if kid.type == "(":
            close = next((k for k in kids[i + 1 :] if k.type == ")"), None)
            if close is not None and close.start_byte > kid.end_byte:
                return kid.end_byte, close.start_byte
            break
        if kid.is_named:
            break
    cond = node.child_by_field_name("condition")
    if cond is not None:
        start, end = cond.start_byte, cond.end_byte
        ck = cond.children
        if cond.type in ("parenthesized_expression", "condition_clause") and ck and ck[0].type == "(":
            if ck[-1].type == ")":
                start, end = ck[0].end_byte, ck[-1].start_byte
        init = node.child_by_field_name("initializer")  # go: `if err := f(); err != nil`
        if init is not None and init.start_byte < start:
            start = init.start_byte
        return (start, end) if start < end else None
    left = node.child_by_field_name("left") or node.child_by_field_name("pattern")
    right = node.child_by_field_name("right") or node.child_by_field_name("value")
    if left is not None and right is not None:
        return left.start_byte, right.end_byte
    body = node.child_by_field_name("body")
    inner = [k for k in node.named_children if body is None or k.start_byte < body.start_byte]
    inner = [k for k in inner if k.type not in TABLES_COMMENTS]
    if inner:
        return inner[0].start_byte, inner[-1].end_byte
    return None


TABLES_COMMENTS = frozenset().union(*(t.comment for t in TABLES.values()))


def inner_range(node: tree_sitter.Node, open_: str, close: str) -> tuple[int, int]:
    """Byte range between node's first `open_` child and its last `close` child (the whole node if absent)."""
    kids = node.children
    start = kids[0].end_byte if kids and kids[0].type == open_ else node.start_byte
    end = kids[-1].start_byte if kids and kids[-1].type == close and len(kids) > 1 else node.end_byte
    return start, end


def nodes_of_type(tree: tree_sitter.Tree, types: frozenset[str], nested: bool = False) -> list[tuple[int, int, str]]:
    """(start_byte, end_byte, type) of every node whose type is in types, in order (inside them too if nested)."""
    out, stack = [], [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type in types:
            out.append((node.start_byte, node.end_byte, node.type))
            if not nested:
                continue
        stack.extend(reversed(node.children))
    return out


@dataclass(frozen=True)
class Context:
    """What the syntax tree says about a byte range (a placeholder at the cursor), as plain data."""

    in_comment: bool = False  # inside a comment
    in_docstring: bool = False  # inside a triple-quoted python string (docstring or long text)
    in_arguments: bool = False  # the range is one argument of an argument list
    control: str = ""  # type of the control node whose header holds the range ("" if none)
    body_owner: str = ""  # type of the node owning the innermost body holding the range ("" at top level)


def context_at(tree: tree_sitter.Tree, lang: str, start_byte: int, end_byte: int) -> Context:
    """Context of the smallest node covering [start_byte, end_byte)."""
    t = TABLES[lang]
    node = tree.root_node.descendant_for_byte_range(start_byte, end_byte)
    in_comment = in_doc = in_args = False
    control = owner = ""
    first = True
    while node is not None:
        typ = node.type
        if typ in t.comment:
            in_comment = True
        elif typ == "string" and lang == "python" and node.text is not None:
            in_doc = in_doc or node.text.lstrip(b"rbuRBUfF")[:3] in (b'"""', b"'''")
        if first and node.parent is not None and node.parent.type in t.arguments:
            in_args = True
        if typ in t.control and not control:
            rng = header_range(node)
            if rng and rng[0] <= start_byte and end_byte <= rng[1]:
                control = typ
        if typ in t.body and not owner:
            owner = node.parent.type if node.parent is not None else typ
        if typ not in ("identifier", "expression_statement"):
            first = False
        node = node.parent
    return Context(in_comment, in_doc, in_args, control, owner)
