"""Settings parsing: every bad value falls back to its default, by name; partial updates; both wire spellings."""

from __future__ import annotations

from engine.sampler import SamplerConfig
from server.config import Settings, parse_settings


def test_defaults_and_the_diffusion_section():
    assert parse_settings(None) == (Settings(), [])
    s, problems = parse_settings({"diffusion": {"maxTokens": 9, "block_size": 4, "languages": ["Python"]}})
    assert problems == []
    assert (s.max_tokens, s.block_size, s.languages) == (9, 4, ["python"])
    assert s.sampler().max_new == 9 and s.sampler().block_size == 4
    assert s.allows("python", None) and not s.allows("rust", "rust")


def test_the_first_canvas_is_the_backends_unless_set():
    assert Settings().sampler().start == SamplerConfig().start == 8  # the shipped model starts small
    assert Settings(canvas_start=0).sampler().start == 0  # 0: the tree-sitter capacity is the first canvas
    s, problems = parse_settings({"canvasStart": 16})
    assert problems == [] and s.sampler().start == 16
    s, problems = parse_settings({"canvasStart": -1})
    assert s.canvas_start is None and "canvasStart" in problems[0]


def test_repository_context_is_what_the_model_was_trained_to_read_unless_set():
    from dataclasses import replace

    from engine.backend import EmbeddedBackend

    class Model:  # a backend as Settings reads it: its capabilities and positions
        def __init__(self, repo_context: int, max_context: int = 1536) -> None:
            self.capabilities = replace(EmbeddedBackend.capabilities, repo_context=repo_context)
            self.max_context = max_context

    trained, never = Model(256), Model(0)
    assert Settings().repo_context_budget is None
    assert (Settings().repo_wanted(trained), Settings().repo_wanted(never), Settings().repo_wanted(None)) == (256, 0, 0)
    assert Settings(repo_context_budget=0).repo_wanted(trained) == 0  # 0 turns it off for any model
    assert Settings(repo_context_budget=128).repo_wanted(never) == 128  # set: what the user asked for
    # cut to the positions left after the file context, a fill and a block
    assert Settings().repo_budget(trained) == 256
    assert Settings(context_budget=1200).repo_budget(trained) == 1536 - 1200 - 256 - 32 - 8
    s, problems = parse_settings({"repoContextBudget": -5})
    assert s.repo_context_budget is None and "repoContextBudget" in problems[0]


def test_the_canvas_delay_is_off_unless_set():
    assert Settings().canvas_delay_ms == 0
    s, problems = parse_settings({"canvasDelayMs": 150})
    assert problems == [] and s.canvas_delay_ms == 150
    s, problems = parse_settings({"canvasDelayMs": -1})
    assert s.canvas_delay_ms == 0 and "canvasDelayMs" in problems[0]


def test_lossless_is_a_strategy_with_the_samplers_own_defaults():
    s, problems = parse_settings({"strategy": "lossless"})
    cfg = s.sampler()
    assert problems == [] and cfg.strategy == "lossless" and cfg.draft == SamplerConfig().draft
    assert s.notes() == []
    elsewhere = Settings(strategy="lossless", backend="transformers", model_path="/m")
    assert "one token per forward" in elsewhere.notes()[0]  # its forwards cannot be batched: the same text, slower


def test_each_bad_value_is_named_and_replaced_by_its_default():
    s, problems = parse_settings({"steps": 0, "strategy": "best", "device": "gpu", "threshold": 0.5, "x": 1})
    assert (s.steps, s.strategy, s.device, s.threshold) == (32, "threshold", "cpu", 0.5)
    assert problems == [
        "unknown setting ignored: x",
        "invalid setting device='gpu' (must be 'cpu', 'cuda', 'cuda:N' or 'mps'); using the default 'cpu'",
        "invalid setting strategy='best' (Input should be 'confidence', 'margin', 'entropy', 'threshold', 'eb', "
        "'lossless', 'learned' or 'native'); using the default 'threshold'",
        "invalid setting steps=0 (Input should be greater than or equal to 1); using the default 32",
    ]
    assert parse_settings([1]) == (Settings(), ["settings must be an object, got list; using the defaults"])
    # a default of None (the model's own budget) has no value to name
    assert parse_settings({"repoContextBudget": -1})[1] == [
        "invalid setting repoContextBudget=-1 (Input should be greater than or equal to 0); using the default"]


def test_a_change_updates_only_what_it_names_and_null_resets():
    base, _ = parse_settings({"maxTokens": 8, "steps": 4})
    s, problems = parse_settings({"steps": 2, "modelPath": None}, base)
    assert problems == [] and (s.max_tokens, s.steps, s.model_path) == (8, 2, None)
    s, _ = parse_settings({"maxTokens": None}, base)
    assert (s.max_tokens, s.steps) == (256, 4)
    assert s.backend_key() == base.backend_key()
    assert parse_settings({"modelPath": "/m"}, base)[0].backend_key() != base.backend_key()


def test_why_repository_context_is_off_is_said_for_each_cause():
    """What diffusion/status's repo.off says (the clients show it): the setting, a model not trained to read it (any
    backend, with or without a name), no model yet."""
    from types import SimpleNamespace

    from server.config import Settings
    from server.server import create_server

    ls = create_server()
    untrained = SimpleNamespace(capabilities=SimpleNamespace(repo_context=0), model_name="remote-7b")
    trained = SimpleNamespace(capabilities=SimpleNamespace(repo_context=256))
    assert ls.repo_off(None) == "the model is not loaded yet"
    ls.backend_error = "device cuda: torch sees no CUDA GPU here"
    assert ls.repo_off(None) == "the model did not load"
    ls.backend_error = None
    assert ls.repo_off(untrained).startswith("remote-7b was not trained to read it")
    assert ls.repo_off(SimpleNamespace(capabilities=SimpleNamespace(repo_context=0))).startswith("the model was not")
    assert ls.repo_off(trained) is None
    ls.settings = Settings(repo_context_budget=0)
    assert ls.repo_off(trained) == "repoContextBudget is 0"
