"""Fine-tuning with general code mixed in (`train --mix FILE --mix-share S`): a seeded share of the examples comes
from the general corpus."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from infill.training import MixedStream

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "tree"


def draws(share: float, seed: int, n: int = 2000) -> list[str]:
    return list(itertools.islice(MixedStream(itertools.repeat("own"), itertools.repeat("mix"), share, seed), n))


def test_the_mix_share_of_examples_comes_from_the_general_stream():
    got = draws(0.3, seed=4)
    assert 0.26 < got.count("mix") / len(got) < 0.34
    assert draws(0.3, seed=4) == got and draws(0.3, seed=5) != got  # seeded
    assert set(draws(0.0, 0)) == {"own"} and set(draws(1.0, 0)) == {"mix"}
    with pytest.raises(ValueError):
        MixedStream(iter(()), iter(()), 1.5)


def test_train_cli_mixes_a_general_corpus_into_fine_tuning(tmp_path):
    from server.cli import main

    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"text": f"def g{i}(a, b):\n    return a * b + {i}\n", "lang": "python",
                                           "path": f"g{i}.py", "package": "gen"}) + "\n" for i in range(3)))
    out = tmp_path / "ft"
    rc = main(["train", "--corpus", str(FIXTURES), "--out", str(out), "--steps", "1", "--batch-size", "2",
               "--mix", str(general), "--mix-share", "0.5"])
    assert rc == 0
    assert json.loads((out / "ckpt" / "config.json").read_text())["mix"] == {"files": 3, "share": 0.5}
    with pytest.raises(SystemExit):  # a mix corpus that is not there stops before any training
        main(["train", "--corpus", str(FIXTURES), "--out", str(tmp_path / "bad"), "--steps", "1",
              "--mix", str(tmp_path / "missing.jsonl")])
    assert not (tmp_path / "bad" / "ckpt").exists()
