"""tools/adapt_eval.py: the file split behind the per-repository adaptation figures is deterministic, and the trees it
trains and tests on never share a file."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ae():
    spec = importlib.util.spec_from_file_location("adapt_eval", ROOT / "tools" / "adapt_eval.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def package(root: Path, n: int) -> Path:
    pkg = root / "pkg"
    for i in range(n):
        p = pkg / ("sub" if i % 3 else "") / f"mod{i}.py"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"def f{i}(x):\n    return x + {i}\n")
    (pkg / "README.txt").write_text("not source\n")
    return pkg


def test_split_is_deterministic_whatever_the_order_and_keeps_test_files_out_of_training(ae):
    paths = [f"pkg/m{i}.py" for i in range(17)]
    train, test = ae.split(paths)
    shuffled = paths[:]
    random.Random(1).shuffle(shuffled)
    assert ae.split(shuffled) == (train, test)
    assert len(test) == 5 and len(train) == 12  # round(0.3 * 17)
    assert not set(train) & set(test) and sorted(train + test) == sorted(paths)
    assert len(ae.split(paths, test_share=0.1)[1]) == 3  # never fewer than min_test


def test_split_needs_a_file_left_to_train_on(ae):
    with pytest.raises(ValueError):
        ae.split(["a.py", "b.py", "c.py"])
    train, test = ae.split(["a.py", "b.py", "c.py", "d.py"])
    assert len(train) == 1 and len(test) == 3


def test_the_trees_hold_their_own_side_only(ae, tmp_path):
    pkg = package(tmp_path / "src", 11)
    rel = ae.package_files(pkg)
    assert len(rel) == 11 and "README.txt" not in rel  # source files only, as the heldout suite reads them
    train, test = ae.split(rel)
    tr = ae.copy_tree(pkg, train, tmp_path / "train" / "pkg")
    te = ae.copy_tree(pkg, test, tmp_path / "test" / "pkg")
    assert sorted(ae.package_files(tr)) == train and sorted(ae.package_files(te)) == test
    assert (te / test[0]).read_text() == (pkg / test[0]).read_text()
    from server.train_cli import read_corpus

    trained_on = {f.path for f in read_corpus(tr)}  # what `diffusion-ls train --corpus <train tree>` reads
    assert trained_on == set(train) and not trained_on & set(test)
