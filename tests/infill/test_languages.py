from infill.languages import LANGUAGES, language_for, parser_for


def test_language_ids_and_paths():
    assert language_for("python") == "python"
    assert language_for("typescriptreact") == "tsx"
    assert language_for("javascriptreact") == "javascript"
    assert language_for("file:///home/u/src/main.rs") == "rust"
    assert language_for("a/b/c.HPP") == "cpp"
    assert language_for("x.tsx") == "tsx"
    assert language_for("x.go") == "go"
    assert language_for(".java") == "java"
    assert language_for("plaintext") is None
    assert language_for("notes.txt") is None
    assert language_for("") is None


def test_parsers_cached_and_parse():
    for name in LANGUAGES:
        parser = parser_for(name)
        assert parser is parser_for(name)
        assert parser.parse(b"x").root_node.end_byte == 1
    assert parser_for("cobol") is None
    assert parser_for(None) is None
