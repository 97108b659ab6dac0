"""Training: a few steps lower the loss; checkpoints resume; `train --corpus` fine-tunes on a source tree."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from engine import DEFAULT_MODEL_DIR
from engine.model import ModelConfig, load_model
from engine.tokenizer import Tokenizer
from engine.train import TrainConfig, train
from infill.training import ExampleConfig, ExampleStream, SourceFile

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "tree"
TOK = Tokenizer.from_file(DEFAULT_MODEL_DIR / "tokenizer.json")


def fixture_files() -> list[SourceFile]:
    return [SourceFile(p.read_text(), "python") for p in sorted(FIXTURES.rglob("*.py"))]


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_examples_are_spm_canvases_with_pads_after_the_middle():
    sp = TOK.special
    stream = ExampleStream(fixture_files(), TOK, seed=3)
    for ex in itertools.islice(stream, 50):
        assert ex.context[0] == sp.fim_suffix and sp.fim_middle in ex.context
        assert sp.mask not in ex.target
        if sp.pad in ex.target:  # pads only as a run at the end
            first = ex.target.index(sp.pad)
            assert all(t == sp.pad for t in ex.target[first:])


def test_free_capacity_draws_canvases_past_the_length_rule_up_to_the_block():
    """Capacities follow the fill's length (at most 2 * rest + 8) unless free_capacity_p draws them up to the block,
    as the server's canvases grow past a short fill (8 -> 16 -> 32)."""
    sp = TOK.special

    def ending(p: float) -> list[tuple[int, int]]:  # (rest of the middle, capacity) of canvases that end
        stream = ExampleStream(fixture_files(), TOK, ExampleConfig(free_capacity_p=p), seed=5)
        return [(ex.target.index(sp.pad), len(ex.target)) for ex in itertools.islice(stream, 400)
                if sp.pad in ex.target]

    tied, free = ending(0.0), ending(1.0)
    assert all(rest < cap <= min(32, 2 * rest + 8) for rest, cap in tied)
    assert all(rest < cap <= 32 for rest, cap in free)
    assert sum(cap > 2 * rest + 8 for rest, cap in free) > len(free) // 10


def test_a_tiny_run_lowers_the_loss_and_resumes(tmp_path):
    short = ExampleConfig(min_budget=32, max_budget=96)
    examples = list(itertools.islice(ExampleStream(fixture_files(), TOK, short, seed=0), 4))
    cfg = TrainConfig(batch_size=4, lr=3e-3, warmup=2, total_steps=40, ckpt_every=10, log_every=100, bf16=False)
    mcfg = ModelConfig(vocab_size=TOK.vocab_size, dim=64, n_layers=2, n_heads=2, ffn_dim=128, max_seq_len=1024)
    state = train(mcfg, cfg, itertools.cycle(examples), TOK.special, tmp_path, max_steps=20, progress=False)
    assert state.step == 20
    first, last = losses(tmp_path)[:3], losses(tmp_path)[-3:]
    assert sum(last) / 3 < 0.7 * sum(first) / 3, (first, last)
    # resume: continues from the checkpoint's step, the weights load as a model
    state = train(mcfg, cfg, itertools.cycle(examples), TOK.special, tmp_path, max_steps=2, progress=False)
    assert state.step == 22
    assert load_model(tmp_path / "ckpt").cfg == mcfg


def test_finetune_cli_on_a_source_tree(tmp_path):
    from server.cli import main

    out = tmp_path / "ft"
    rc = main(["train", "--corpus", str(FIXTURES), "--out", str(out), "--steps", "2", "--batch-size", "2"])
    assert rc == 0
    assert len(losses(out)) == 2
    tuned = load_model(out / "ckpt")
    assert tuned.cfg == load_model(DEFAULT_MODEL_DIR).cfg  # fine-tuned from the shipped model
    assert (out / "ckpt" / "tokenizer.json").read_bytes() == (DEFAULT_MODEL_DIR / "tokenizer.json").read_bytes()


TINY = ModelConfig(vocab_size=TOK.vocab_size, dim=32, n_layers=1, n_heads=2, ffn_dim=64, max_seq_len=512)
SHORT = ExampleConfig(min_budget=32, max_budget=96)


def make_examples(seed: int) -> ExampleStream:
    return ExampleStream(fixture_files(), TOK, SHORT, seed=seed)


def test_worker_processes_feed_collated_batches(tmp_path):
    """The GPU path: examples built and collated in a DataLoader worker, the attention mask made on the device."""
    cfg = TrainConfig(batch_size=4, warmup=1, log_every=100, bf16=False, workers=1)
    state = train(TINY, cfg, make_examples, TOK.special, tmp_path, max_steps=3, progress=False)
    assert state.step == 3 and state.tokens > 0 and state.skipped == 0
    assert len(losses(tmp_path)) == 3


def test_a_non_finite_gradient_skips_the_update(tmp_path, monkeypatch):
    import torch

    import engine.train as tr

    real = tr.loss_fn
    calls = {"n": 0}

    def poisoned(model, batch, certainty=0.0):
        loss, parts = real(model, batch, certainty)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 2 else loss), parts

    monkeypatch.setattr(tr, "loss_fn", poisoned)
    cfg = TrainConfig(batch_size=2, warmup=1, log_every=100, bf16=False)
    state = train(TINY, cfg, make_examples(0), TOK.special, tmp_path, max_steps=3, progress=False)
    assert state.step == 3 and state.skipped == 1
    model = load_model(tmp_path / "ckpt")  # refuses non-finite weights, so loading proves they stayed finite
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_certainty_forcing_adds_the_entropy_of_the_slots_already_right():
    """dParallel's certainty forcing: entropy on noised slots whose argmax is the target, weighted as their CE;
    a slot the model gets wrong adds nothing, and weight 0 is the plain objective."""
    import torch

    from engine.train import collate, loss_fn, with_mask

    model = load_model(DEFAULT_MODEL_DIR)
    V = model.cfg.vocab_size
    cfg = TrainConfig(bf16=False)
    batch = with_mask(collate(list(itertools.islice(make_examples(1), 6)), TOK.special, V, cfg,
                              torch.Generator().manual_seed(0)))
    T = int(batch["T_ctx"])
    with torch.no_grad():
        plain, parts0 = loss_fn(model, batch)
        forced, parts1 = loss_fn(model, batch, 0.5)
        logp = torch.log_softmax(model.logits(model(batch["ids"], batch["pos"], batch["mask"])).float()[:, T:], -1)
    assert "certainty" not in parts0 and parts1["diff"] == parts0["diff"]
    right = logp.argmax(-1) == batch["targets"][:, T:]
    assert right.any() and (~right & (batch["targets"][:, T:] != -100)).any()  # some slots right, some wrong
    entropy = -(logp.exp() * logp).sum(-1)
    expected = float((entropy * right * batch["weights"][:, T:]).sum()) / len(logp)
    assert expected > 0 and abs(parts1["certainty"] - expected) < 1e-4
    assert abs(float(forced - plain) - 0.5 * expected) < 1e-4
    wrong = batch["targets"].clone()  # every noised slot's target made something the model does not predict
    noised = wrong[:, T:] != -100
    wrong[:, T:] = torch.where(noised, (logp.argmax(-1) + 1) % V, wrong[:, T:])
    with torch.no_grad():
        _, parts2 = loss_fn(model, {**batch, "targets": wrong}, 0.5)
    assert parts2["certainty"] == 0.0


def test_train_cli_takes_a_certainty_weight(tmp_path):
    from server.cli import main

    out = tmp_path / "cf"
    rc = main(["train", "--corpus", str(FIXTURES), "--out", str(out), "--steps", "1", "--batch-size", "2",
               "--certainty", "0.5"])
    assert rc == 0
    assert "certainty" in json.loads((out / "train_log.jsonl").read_text().splitlines()[0])
    assert json.loads((out / "ckpt" / "config.json").read_text())["train"]["certainty"] == 0.5


def test_the_schedule_can_run_on_training_time():
    from engine.train import lr_at

    cfg = TrainConfig(lr=1e-3, warmup=10, min_lr_frac=0.1, total_minutes=10.0, total_steps=1)
    assert lr_at(4, cfg, 0.0) == 1e-3 * 5 / 10  # warm-up still counts steps
    assert abs(lr_at(100, cfg, 0.0) - 1e-3) < 1e-12
    assert abs(lr_at(100, cfg, 300.0) - 1e-3 * (0.1 + 0.9 * 0.5)) < 1e-12  # half the time: half the cosine
    assert abs(lr_at(100, cfg, 900.0) - 1e-4) < 1e-12  # past the horizon: the floor


def test_a_time_horizon_also_ends_training(tmp_path):
    """With total_minutes and no step limit, training runs until the schedule's time is spent (not total_steps)."""
    cfg = TrainConfig(batch_size=2, warmup=1, log_every=100, bf16=False, total_steps=1, total_minutes=0.05)
    state = train(TINY, cfg, make_examples(0), TOK.special, tmp_path, progress=False)
    assert state.step > 1 and state.seconds >= 0.05 * 60


def test_whole_lines_takes_indentation_and_newline_only_at_line_edges():
    import random

    from infill.spans import Span
    from infill.training import whole_lines

    text = "def f(x):\n    y = x + 1\n    return y\n"
    stmt = Span(text.index("y ="), text.index("y =") + len("y = x + 1"), "statement")
    always, never = random.Random(0), random.Random(0)
    grown = whole_lines(text, stmt, always, 1.0)
    assert text[grown.start:grown.end] == "    y = x + 1\n"  # as a HumanEval single-line hole
    assert grown.kind == "statement"
    assert whole_lines(text, stmt, never, 0.0) == stmt
    mid = Span(text.index("x + 1"), text.index("x + 1") + 5, "expression")  # code before it on the line: kept
    assert text[whole_lines(text, mid, always, 1.0).start:].startswith("x + 1\n")
    # the stream draws both forms: some middles start with a line's indentation, some at its first character
    import re

    stream = ExampleStream(fixture_files(), TOK, seed=1)
    middles = [TOK.decode(ex.target) for ex in itertools.islice(stream, 200) if ex.target[0] != TOK.special.pad]
    assert sum(bool(re.match(r" {4,}\S", m)) for m in middles) >= 5
    assert sum(bool(re.match(r"\S", m)) for m in middles) >= 5



def test_repository_examples_carry_the_definitions_serving_would_choose_from_the_same_package():
    from infill.spans import Span

    shapes = "def frobnicate_widget(widget, scale):\n    return widget * scale\n"
    other = "def frobnicate_gadget(gadget):\n    return gadget\n"
    user = "from shapes import frobnicate_widget\n\nsize = 3\nbig = frobnicate_widget(size, 2)\n"
    files = [SourceFile(shapes, "python", "pkg/shapes.py", "pkg"), SourceFile(user, "python", "pkg/use.py", "pkg"),
             SourceFile(other, "python", "gadgets.py", "other")]
    stream = ExampleStream(files, TOK, ExampleConfig(repo_p=1.0, repo_budget=256), seed=0)
    at = user.index("(size, 2)")
    ex = stream.make(user, Span(at, at + len("(size, 2)"), "arguments"), 1)
    assert ex is not None
    sp = TOK.special
    repo = ex.context[: ex.context.index(sp.fim_suffix)]
    text = TOK.decode(repo)
    assert repo[0] == sp.file_sep and "pkg/shapes.py" in text and "def frobnicate_widget(widget, scale)" in text
    assert "use.py" not in text and "frobnicate_gadget" not in text  # never its own file, never another package
    alone = ExampleStream(files[2:], TOK, ExampleConfig(repo_p=1.0), seed=0)  # a package of one file: no context
    ex = alone.make(other, Span(0, 3, "random"), 0)
    assert ex is not None and ex.context[0] == sp.fim_suffix
    assert next(alone).context[0] == sp.fim_suffix  # and drawing goes on without one (no file has a repository)


def test_fine_tuning_keeps_the_share_of_repository_examples_its_model_was_trained_with(tmp_path):
    """And what the model reads when served (its default repoContextBudget), into the exported fine-tune."""
    import shutil

    from server.cli import main

    init = tmp_path / "init"
    shutil.copytree(DEFAULT_MODEL_DIR, init)
    cfg = json.loads((init / "config.json").read_text())
    cfg.setdefault("examples", {}).update(repo_p=0.5, repo_budget=200)
    cfg["serving"] = {"repo_context_budget": 160}
    (init / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "ft"
    rc = main(["train", "--corpus", str(FIXTURES), "--init", str(init), "--out", str(out), "--steps", "1",
               "--batch-size", "2"])
    assert rc == 0
    examples = json.loads((out / "ckpt" / "config.json").read_text())["examples"]
    assert (examples["repo_p"], examples["repo_budget"]) == (0.5, 200)
    assert main(["train", "--export", str(out), "--to", str(tmp_path / "exported")]) == 0
    from engine.backend import EmbeddedBackend

    assert EmbeddedBackend(tmp_path / "exported").capabilities.repo_context == 160
    rc = main(["train", "--corpus", str(FIXTURES), "--init", str(init), "--out", str(tmp_path / "ft0"), "--steps", "1",
               "--batch-size", "2", "--repo-context", "0"])
    assert rc == 0 and json.loads((tmp_path / "ft0" / "ckpt" / "config.json").read_text())["examples"]["repo_p"] == 0


def test_bf16_autocast_only_where_the_cpu_has_it(tmp_path, monkeypatch):
    """An AVX2 CPU emulates bf16: with autocast a fine-tune step took 100 s instead of 6. Training autocasts only
    where bf16 is native; the loss is computed in the dtype that decides."""
    import torch

    import engine.train as tr

    seen = []
    real, fast = tr.loss_fn, tr.bf16_fast

    def spy(model, batch, certainty=0.0):
        seen.append(torch.is_autocast_enabled("cpu"))
        return real(model, batch, certainty)

    monkeypatch.setattr(tr, "loss_fn", spy)
    cfg = TrainConfig(batch_size=2, warmup=1, log_every=100, bf16=True)
    for native in (False, True):
        monkeypatch.setattr(tr, "bf16_fast", lambda device, native=native: native)
        train(TINY, cfg, make_examples(0), TOK.special, tmp_path / str(native), max_steps=1, progress=False)
    assert seen == [False, True]
    assert fast(torch.device("cpu")) == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def test_repository_examples_take_the_part_of_their_own_file_the_context_leaves_out_and_never_the_middle():
    """As serving does (infill.retrieval `shown`): a definition far up the example's own file is repository context;
    the middle is not, though the package's index holds the whole file."""
    from infill.spans import Span

    long = ("def rescale_locally(value_in_units, factor_of_scale):\n    return value_in_units * factor_of_scale\n\n\n"
            + "".join(f"setting_{i} = {i}\n" for i in range(300))
            + "\n\nanswer = rescale_locally(unmistakable_middle_argument, 2)\n")
    files = [SourceFile(long, "python", "pkg/long.py", "pkg"),
             SourceFile("def other_helper(x):\n    return x\n", "python", "pkg/other.py", "pkg")]
    stream = ExampleStream(files, TOK, ExampleConfig(repo_p=1.0, repo_budget=256, max_budget=200), seed=0)
    at = long.index("unmistakable")
    ex = stream.make(long, Span(at, at + len("unmistakable_middle_argument, 2"), "arguments"), 0)
    assert ex is not None
    text = TOK.decode(ex.context[: ex.context.index(TOK.special.fim_suffix)])
    assert "pkg/long.py" in text and "def rescale_locally(value_in_units, factor_of_scale)" in text
    assert "unmistakable_middle_argument" not in text
    index = stream._index("pkg")[0]
    assert [d.name for d in index.file_defs("pkg/long.py")] == ["rescale_locally"]  # the whole file is back
