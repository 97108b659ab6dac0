"""`diffusion-ls doctor` on this machine: a home folder laid out with model directories (the data dir, the Hugging Face
cache), a vLLM server replayed on loopback (tests/backends/test_vllm_remote.py), an Inception key in the environment
or not. Nothing is downloaded and the public API is never called."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server import doctor
from tests.server.conftest import ENV, ROOT


def checkpoint(d: Path, config: dict, weights: bool = True) -> Path:
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(config), encoding="utf-8")
    if weights:
        (d / "model.safetensors").write_bytes(b"")  # only its presence is looked at
    return d


def dg_config(quant: dict | None = None) -> dict:
    """A DiffusionGemma config.json with the 26B's shapes (tools/moe_memory.py's CONFIG_26B)."""
    from tools.moe_memory import CONFIG_26B

    cfg = {"model_type": "diffusion_gemma", "architectures": ["DiffusionGemmaForBlockDiffusion"], **CONFIG_26B}
    return cfg | ({"quantization_config": quant} if quant else {})


@pytest.fixture
def home(tmp_path):
    """A home folder: a bf16 and an NVFP4 DiffusionGemma in the data dir, one cached Hub repo, a config-only dir."""
    h = tmp_path / "home"
    models = h / ".local" / "share" / "diffusion-ls" / "models"
    checkpoint(models / "diffusiongemma-26B-A4B-it", dg_config())
    checkpoint(models / "diffusiongemma-26B-A4B-it-NVFP4", dg_config({"quant_method": "modelopt", "quant_algo":
                                                                      "NVFP4", "group_size": 16}))
    checkpoint(models / "half-copied", dg_config(), weights=False)
    hub = h / ".cache" / "huggingface" / "hub" / "models--Dream-org--Dream-Coder-v0-Instruct-7B" / "snapshots"
    dream = checkpoint(hub / "0123abc", {"model_type": "Dream", "mask_token_id": 151666, "auto_map": {}})
    (dream / "model.safetensors").write_bytes(b"\0" * 1024)  # a small one: it runs on a CPU
    return h


def test_reports_this_machine_and_lists_models_without_fetching(home):
    pytest.importorskip("transformers", minversion="5.11")
    report = doctor.collect({}, home)
    m = report["machine"]
    assert m["cpu_cores"] == os.cpu_count() and m["memory_gib"] > 0
    from engine.model import native_bf16, native_int8

    assert m["cpu_bfloat16"] == native_bf16("cpu") and m["cpu_int8"] == native_int8("cpu")
    text = doctor.render(report)
    assert ("bfloat16 in hardware" if m["cpu_bfloat16"] else "bfloat16 in software only") in text
    assert f"its products in {'int8' if m['cpu_int8'] else 'bfloat16' if m['cpu_bfloat16'] else 'float32'}" in text
    import torch

    if torch.cuda.is_available():  # on a machine with a GPU the report names it and its memory
        assert report["gpu"]["devices"][0]["memory_gib"] > 0
        assert report["gpu"]["devices"][0]["name"] == torch.cuda.get_device_properties(0).name
    else:  # here: plainly none, and why
        assert report["gpu"]["devices"] == [] and "sees no CUDA GPU" in report["gpu"]["why_none"] or \
            "finds no CUDA device" in report["gpu"]["why_none"]
        assert "GPU       none: torch " in doctor.render(report)
    extras = {e["name"]: e for e in report["extras"]}
    assert extras["transformers"]["installed"] and extras["transformers"]["version"]
    assert set(extras) >= {"vllm", "httpx", "accelerate", "bitsandbytes", "optimum-quanto", "torchao"}
    by_name = {e.get("repo") or e["name"]: e for e in report["models"]}
    assert by_name["model"]["where"] == "shipped" and by_name["model"]["family"] == "embedded"
    bf16, fp4 = by_name["diffusiongemma-26B-A4B-it"], by_name["diffusiongemma-26B-A4B-it-NVFP4"]
    assert (bf16["family"], bf16["format"], fp4["format"]) == ("diffusiongemma", "bf16", "nvfp4")
    assert 45 < bf16["weights_gib"] < 50 and 13 < fp4["weights_gib"] < 17  # engine.memory, from the shapes
    assert by_name["half-copied"]["weights_present"] is False
    dream = by_name["Dream-org/Dream-Coder-v0-Instruct-7B"]
    assert (dream["where"], dream["family"], dream["remote_code"]) == ("hf-cache", "masked-diffusion", True)


def test_without_gpu_or_servers_it_recommends_what_runs(home):
    report = doctor.collect({}, home)
    ready = {b["backend"]: b for b in report["backends"] if b["ready"]}
    if not report["gpu"]["devices"]:
        # no key, no server, no GPU: the small masked-diffusion checkpoint on the CPU, with its model code allowed
        assert set(ready) == {"embedded", "masked-diffusion"}
        assert report["recommended"]["settings"] == {"backend": "masked-diffusion", "trustRemoteCode": True,
                                                     "modelPath": next(m["path"] for m in report["models"]
                                                                       if m["family"] == "masked-diffusion")}
        assert "ships its own model code" in report["recommended"]["why"]
        vllm = next(b for b in report["backends"] if b["backend"] == "vllm")
        assert not vllm["ready"] and ("no GPU" in vllm["why"] or "not installed" in vllm["why"])
    for d in (home / ".cache").rglob("model.safetensors"):
        d.unlink()  # without it: the shipped model
    report = doctor.collect({}, home)
    if not report["gpu"]["devices"]:
        assert report["recommended"] == {"backend": "embedded", "why": "the shipped model runs on any CPU",
                                         "settings": {"backend": "embedded"}}
    report = doctor.collect({"INCEPTION_API_KEY": "sk-x"}, home)  # a key: the hosted model
    if not report["gpu"]["devices"]:
        assert report["recommended"]["settings"] == {"backend": "mercury"}
        assert "doctor never calls the public API" in report["recommended"]["why"]


def test_a_vllm_server_is_checked_and_preferred(home):
    pytest.importorskip("httpx")
    from tests.backends.test_vllm_remote import MODEL, running_fake_vllm

    with running_fake_vllm() as srv:
        report = doctor.collect({doctor.VLLM_URL_ENV: srv.url}, home)
    assert report["servers"]["vllm"] == {"url": srv.url, "reachable": True, "models": [MODEL]}
    assert report["recommended"]["settings"] == {"backend": "vllm-remote", "serverUrl": srv.url, "serverModel": MODEL}
    text = doctor.render(report)
    assert f"vLLM      {srv.url}: reachable, serves {MODEL}" in text
    assert text.rstrip().endswith(json.dumps(report["recommended"]["settings"], indent=2))

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    report = doctor.collect({}, home, vllm_url=closed, timeout=2)
    assert report["servers"]["vllm"]["reachable"] is False and "ConnectError" in report["servers"]["vllm"]["error"]
    assert report["recommended"]["backend"] != "vllm-remote"


def test_gpu_rules_pick_the_checkpoint_that_fits(home):
    """The backend choice for a GPU, with the GPU as doctor would see it (here there is none to see)."""
    pytest.importorskip("transformers", minversion="5.11")
    report = doctor.collect({}, home)
    report["gpu"] = {"devices": [{"index": 0, "name": "24 GB card", "memory_gib": 24.0, "compute_capability": "8.9"}]}
    for e in report["extras"]:
        e["installed"] = e["installed"] or e["name"] == "vllm"
    b = {x["backend"]: x for x in doctor.backends(report)}
    assert b["vllm"]["ready"] and b["vllm"]["settings"]["modelPath"].endswith("diffusiongemma-26B-A4B-it-NVFP4")
    assert b["transformers"]["ready"] and b["transformers"]["settings"]["quantization"] == "experts-int4"
    assert "host memory for the bf16 checkpoint" in b["transformers"]["why"]
    report["gpu"]["devices"][0]["memory_gib"] = 12.0  # too small even for int4 experts
    b = {x["backend"]: x for x in doctor.backends(report)}
    assert not b["transformers"]["ready"] and "even with its experts in int4" in b["transformers"]["why"]
    report["gpu"]["devices"][0]["memory_gib"] = 80.0
    b = {x["backend"]: x for x in doctor.backends(report)}
    assert b["transformers"]["ready"] and "quantization" not in b["transformers"]["settings"]  # bf16 fits


def test_the_cli_command(home):
    env = {**ENV, "HOME": str(home), "XDG_DATA_HOME": "", "XDG_CACHE_HOME": "", "HF_HOME": "", "HF_HUB_CACHE": ""}
    env.pop("INCEPTION_API_KEY", None)
    env.pop(doctor.VLLM_URL_ENV, None)
    out = subprocess.run([sys.executable, "-m", "server.cli", "doctor", "--json"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["recommended"]["backend"] in doctor.PREFERENCE
    assert any(m["name"] == "diffusiongemma-26B-A4B-it" for m in report["models"])
    assert report["servers"]["mercury"] == {"key_env": "INCEPTION_API_KEY", "key_set": False}
