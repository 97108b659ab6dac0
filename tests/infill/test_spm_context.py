from hypothesis import given, settings
from hypothesis import strategies as st

from infill.canvas import spm_context

PREFIX = "".join(f"value_{i} = compute({i}, name='x')\n" for i in range(40)) + "    result = "
SUFFIX = "total + 1\n" + "".join(f"print(value_{i})\n" for i in range(40))


def split(ids, sp):
    assert ids[0] == sp.fim_suffix and ids[-1] == sp.fim_middle
    k = ids.index(sp.fim_prefix)
    return ids[1:k], ids[k + 1 : -1]


def test_layout_whole_context_when_it_fits(tok):
    ids = spm_context("a = 1\nb = ", "2\nc = 3\n", tok, 1000)
    suffix_ids, prefix_ids = split(ids, tok.special)
    assert suffix_ids == tok.encode("2\nc = 3\n")
    assert prefix_ids == tok.encode("a = 1\nb = ")


def test_budget_and_line_cuts(tok):
    for budget in (20, 50, 120, 300):
        ids = spm_context(PREFIX, SUFFIX, tok, budget)
        assert len(ids) <= budget
        suffix_ids, prefix_ids = split(ids, tok.special)
        suffix, prefix = tok.decode(suffix_ids), tok.decode(prefix_ids)
        assert SUFFIX.startswith(suffix) and PREFIX.endswith(prefix)
        assert suffix_ids == tok.encode(suffix) and prefix_ids == tok.encode(prefix)
        assert len(suffix_ids) <= int((budget - 3) * 0.25)
        assert prefix.startswith("value_") or prefix == "    result = "  # whole lines only
        assert prefix.endswith("    result = ")  # the cursor line is kept whole
        if len(suffix) > len("total + 1\n"):  # whole lines, or a char cut of the nearest line alone
            assert suffix.endswith("\n") and suffix.startswith("total + 1\n")


def test_unused_suffix_share_goes_to_prefix(tok):
    short = spm_context(PREFIX, "", tok, 200)
    _, prefix_ids = split(short, tok.special)
    assert len(prefix_ids) > int(197 * 0.75)


def test_suffix_independent_of_prefix(tok):
    a = spm_context(PREFIX, SUFFIX, tok, 100)
    b = spm_context(PREFIX + "tot", SUFFIX, tok, 100)
    assert split(a, tok.special)[0] == split(b, tok.special)[0]


def test_overlong_cursor_line_is_cut_by_chars(tok):
    line = "x = " + " + ".join(f"v{i}" for i in range(200))
    ids = spm_context(line, "", tok, 40)
    _, prefix_ids = split(ids, tok.special)
    assert len(ids) <= 40 and line.endswith(tok.decode(prefix_ids)) and len(prefix_ids) > 20


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.text(alphabet="ab =()\t\r😀é", max_size=12), max_size=12),
    st.lists(st.text(alphabet="ab =()\t\r😀é", max_size=12), max_size=12),
    st.integers(3, 80),
)
def test_properties(tok, pre_lines, suf_lines, budget):
    prefix, suffix = "\n".join(pre_lines), "\n".join(suf_lines)
    ids = spm_context(prefix, suffix, tok, budget)
    assert len(ids) <= max(budget, 3)
    assert ids == spm_context(prefix, suffix, tok, budget)
    suffix_ids, prefix_ids = split(ids, tok.special)
    s, p = tok.decode(suffix_ids), tok.decode(prefix_ids)
    assert suffix.startswith(s) and prefix.endswith(p)
    assert tok.encode(s) == suffix_ids and tok.encode(p) == prefix_ids


def test_typing_on_the_cursor_line_keeps_the_first_kept_line_so_the_cache_holds(tok):
    above = "".join(f"value_{i} = compute({i}, name='x')\n" for i in range(200))
    typed = "result = compute_total(values, name='y')"
    firsts, heads = set(), []
    for k in range(1, len(typed) + 1):
        ids = spm_context(above + typed[:k], SUFFIX, tok, 200)
        assert len(ids) <= 200
        _, prefix_ids = split(ids, tok.special)
        prefix = tok.decode(prefix_ids)
        assert prefix_ids == tok.encode(prefix) and prefix.endswith(typed[:k])  # tokenized together, cursor line whole
        firsts.add(prefix.splitlines()[0])
        heads.append(ids[: ids.index(tok.special.fim_prefix) + 20])
    assert len(firsts) == 1  # the window's top never moved while the line was typed
    assert all(h == heads[0] for h in heads)  # so the ids a cache compares stay the same
