"""Language names, LSP languageIds and file extensions, and cached tree-sitter parsers from the grammar wheels."""

from __future__ import annotations

import functools
import os
import threading

import tree_sitter

# Our language names, in the order the grammar wheels are tried.
LANGUAGES = ("python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp")

# LSP languageIds (https://microsoft.github.io/language-server-protocol/specifications/lsp/3.17/specification/#textDocumentItem)
# and common aliases -> our names.
_LANGUAGE_IDS = {
    "python": "python",
    "py": "python",
    "javascript": "javascript",
    "javascriptreact": "javascript",  # JSX: the javascript grammar parses it
    "js": "javascript",
    "jsx": "javascript",
    "typescript": "typescript",
    "ts": "typescript",
    "typescriptreact": "tsx",
    "tsx": "tsx",
    "go": "go",
    "golang": "go",
    "rust": "rust",
    "rs": "rust",
    "java": "java",
    "c": "c",
    "cpp": "cpp",
    "c++": "cpp",
    "cuda-cpp": "cpp",
}

_EXTENSIONS = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",  # ambiguous with C++; the C grammar parses most headers well enough
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
    ".cu": "cpp",
}


def language_for(lang_id_or_path: str | None) -> str | None:
    """Our language name for an LSP languageId, a file path / URI, or an extension; None when unknown."""
    if not lang_id_or_path:
        return None
    key = lang_id_or_path.strip()
    if key.lower() in _LANGUAGE_IDS:
        return _LANGUAGE_IDS[key.lower()]
    if key in LANGUAGES:
        return key
    ext = os.path.splitext(key)[1].lower() if "." in key else ""
    if not ext and key.startswith("."):
        ext = key.lower()
    return _EXTENSIONS.get(ext)


@functools.cache
def _language(name: str) -> tree_sitter.Language | None:
    if name == "python":
        import tree_sitter_python as m

        return tree_sitter.Language(m.language())
    if name == "javascript":
        import tree_sitter_javascript as m

        return tree_sitter.Language(m.language())
    if name in ("typescript", "tsx"):
        import tree_sitter_typescript as m

        return tree_sitter.Language(m.language_tsx() if name == "tsx" else m.language_typescript())
    if name == "go":
        import tree_sitter_go as m

        return tree_sitter.Language(m.language())
    if name == "rust":
        import tree_sitter_rust as m

        return tree_sitter.Language(m.language())
    if name == "java":
        import tree_sitter_java as m

        return tree_sitter.Language(m.language())
    if name == "c":
        import tree_sitter_c as m

        return tree_sitter.Language(m.language())
    if name == "cpp":
        import tree_sitter_cpp as m

        return tree_sitter.Language(m.language())
    return None


_local = threading.local()  # parsers hold parse state: one per thread (the server parses off the event loop)


def parser_for(name: str | None) -> tree_sitter.Parser | None:
    """A cached (per thread) parser for one of our language names; None for unknown names or a missing wheel."""
    if name not in LANGUAGES:
        return None
    cache = _local.__dict__.setdefault("parsers", {})
    if name not in cache:
        try:
            language = _language(name)
        except ImportError:
            language = None
        cache[name] = tree_sitter.Parser(language) if language is not None else None
    return cache[name]
