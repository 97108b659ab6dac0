"""`diffusion-ls doctor`: what this machine can run, and the one setting to use for each backend.

    diffusion-ls doctor                               # a report, then the recommended settings as JSON
    diffusion-ls doctor --vllm-url http://gpu:8000    # also ask a vLLM server what it serves (or DIFFUSION_LS_VLLM_URL)
    diffusion-ls doctor --models ~/checkpoints --json # look in another folder too; the whole report as JSON

It looks, never fetches: CPU cores and memory; the GPU and its memory if torch sees one; which optional packages are
installed; model directories in the usual places (the shipped model, ~/.local/share/diffusion-ls/models, the Hugging
Face cache: listed, never downloaded); a vLLM server if one is named (one GET of /v1/models, a few seconds at most);
whether an Inception API key is in the environment (the public API is not called). For each backend it says whether
it can run here and gives the settings that start it; then it picks one.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from server.config import API_KEY_ENV, MERCURY_KEY_ENV

VLLM_URL_ENV = "DIFFUSION_LS_VLLM_URL"  # a shared vLLM server to check, when --vllm-url is not given
# optional packages: (import name, distribution name, what it is for)
EXTRAS = (
    ("transformers", "transformers", "transformers backend (the `hf` extra)"),
    ("vllm", "vllm", "vllm backend, in process (the `vllm` extra, a GPU machine)"),
    ("httpx", "httpx", "vllm-remote and mercury backends"),
    ("accelerate", "accelerate", "transformers: load straight onto the GPU"),
    ("bitsandbytes", "bitsandbytes", "transformers quantizer (leaves DiffusionGemma's experts in bf16)"),
    ("optimum.quanto", "optimum-quanto", "transformers quantizer (leaves DiffusionGemma's experts in bf16)"),
    ("torchao", "torchao", "transformers quantizer (leaves DiffusionGemma's experts in bf16)"),
)
DIFFUSION_GEMMA = "diffusion_gemma"
GIB_BYTES = 2**30
CPU_GIB = 2.0  # a model up to this size answers an editor fast enough on a CPU (a 0.5B in bf16); larger ones want a GPU
VLLM_UTILIZATION = 0.9  # vLLM's --gpu-memory-utilization in the settings we suggest: the rest stays for others


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vllm-url", default=None, help=f"a vLLM server to check (default: ${VLLM_URL_ENV})")
    parser.add_argument("--models", action="append", default=[], metavar="DIR",
                        help="another folder holding model directories (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the vLLM server")


def main(args: argparse.Namespace) -> int:
    report = collect(os.environ, Path.home(), args.vllm_url, args.models, args.timeout)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(render(report))
    return 0


# -- what is here -----------------------------------------------------------------------------------------------------


def collect(env: Mapping[str, str], home: Path, vllm_url: str | None = None, extra_dirs: Iterable[str] = (),
            timeout: float = 3.0) -> dict:
    """Everything the report says, as plain data."""
    report: dict[str, Any] = {"machine": machine(), "gpu": gpus(), "extras": extras(),
                              "models": find_models(env, home, extra_dirs)}
    url = vllm_url or env.get(VLLM_URL_ENV) or None
    report["servers"] = {"vllm": probe_vllm(url, env.get(API_KEY_ENV), timeout) if url else None,
                         "mercury": {"key_env": MERCURY_KEY_ENV, "key_set": bool(env.get(MERCURY_KEY_ENV))}}
    report["backends"] = backends(report)
    report["recommended"] = recommend(report)
    return report


def machine() -> dict:
    cores = os.cpu_count() or 1
    try:  # POSIX: physical pages x page size; no psutil needed
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        mem = 0
    from engine.model import native_bf16, native_int8

    return {"cpu_cores": cores, "memory_gib": round(mem / 2**30, 1) if mem else None, "platform": sys.platform,
            "cpu_bfloat16": native_bf16("cpu"), "cpu_int8": native_int8("cpu")}


def gpus() -> dict:
    """The GPUs torch sees (CUDA), or why there are none; Apple's MPS when that is what there is."""
    try:
        import torch
    except ImportError:
        return {"devices": [], "why_none": "torch is not installed"}
    out: dict[str, Any] = {"torch": torch.__version__, "devices": []}
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            out["devices"].append({"index": i, "name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                                   "compute_capability": f"{p.major}.{p.minor}"})
        return out
    mps = getattr(torch.backends, "mps", None)
    out["mps"] = bool(mps is not None and mps.is_available())
    if torch.version.cuda is None:
        out["why_none"] = f"torch {torch.__version__} is a CPU build: it sees no CUDA GPU"
    else:
        out["why_none"] = f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no CUDA device"
    return out


def extras() -> list[dict]:
    out = []
    for module, dist, purpose in EXTRAS:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package is missing
            found = False
        version = None
        if found:
            try:
                version = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                version = "?"
        out.append({"name": dist, "installed": found, "version": version, "for": purpose})
    return out


def model_places(env: Mapping[str, str], home: Path, extra_dirs: Iterable[str] = ()) -> list[tuple[str, Path]]:
    """(kind, folder) where model directories usually are."""
    data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
    places = [("data", data / "diffusion-ls" / "models")]
    places += [("extra", Path(d).expanduser()) for d in extra_dirs]
    hub = env.get("HF_HUB_CACHE") or (Path(env["HF_HOME"]) / "hub" if env.get("HF_HOME") else None)
    cache = Path(env.get("XDG_CACHE_HOME") or home / ".cache")
    for d in dict.fromkeys([Path(hub) if hub else cache / "huggingface" / "hub", cache / "huggingface" / "hub"]):
        places.append(("hf-cache", d))
    return places


def find_models(env: Mapping[str, str], home: Path, extra_dirs: Iterable[str] = ()) -> list[dict]:
    """Model directories (a config.json inside) in the usual places; the Hugging Face cache's newest snapshot of each
    repository. Only listed: nothing is read but config.json."""
    from engine import DEFAULT_MODEL_DIR

    found = [describe(DEFAULT_MODEL_DIR, "shipped")]
    for kind, place in model_places(env, home, extra_dirs):
        if not place.is_dir():
            continue
        if kind == "hf-cache":
            for repo in sorted(place.glob("models--*")):
                snaps = sorted((repo / "snapshots").glob("*/config.json"), key=lambda p: p.stat().st_mtime)
                if snaps:
                    entry = describe(snaps[-1].parent, kind)
                    entry["repo"] = repo.name.removeprefix("models--").replace("--", "/")
                    found.append(entry)
            continue
        for d in sorted(place.iterdir()):
            if (d / "config.json").is_file():
                found.append(describe(d, kind))
    return found


def describe(d: Path, where: str) -> dict:
    """What a model directory holds, from its config.json: the family, its quantization, its weights' memory."""
    entry: dict[str, Any] = {"path": str(d), "where": where, "name": d.name}
    try:
        config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        entry["error"] = f"config.json unreadable: {exc}"
        return entry
    mtype = str(config.get("model_type") or config.get("name") or "?")
    entry["model_type"] = mtype
    if where == "shipped":
        entry["family"] = "embedded"
    elif mtype == DIFFUSION_GEMMA:
        entry["family"] = "diffusiongemma"
        try:
            from engine.memory import GIB, checkpoint_estimate

            fmt, nbytes = checkpoint_estimate(d)
            entry["format"], entry["weights_gib"] = fmt, round(nbytes / GIB, 1)
            if fmt == "bf16":  # what the transformers backend's "experts-int4" would make of it
                from engine.memory import estimate, shape_counts

                keep = {k: v for k, v in config.items() if k in ("text_config", "vision_config", "canvas_length")}
                entry["experts_int4_gib"] = round(estimate(shape_counts(keep), "experts-int4") / GIB, 1)
        except ImportError:
            entry["format"] = "?"  # transformers is needed to build the shapes
        except (ValueError, TypeError) as exc:
            entry["format"], entry["error"] = "?", str(exc)[:200]
    elif mtype.lower() in ("dream", "llada") or "mask_token_id" in config:
        entry["family"] = "masked-diffusion"
        entry["remote_code"] = "auto_map" in config  # ships its own model code: trustRemoteCode is needed
    else:
        entry["family"] = "other"
    files = list(d.glob("*.safetensors"))
    entry["weights_present"] = bool(files)
    if files and "weights_gib" not in entry:  # stored as they will be loaded (bf16 checkpoints): the files' size
        entry["weights_gib"] = round(sum(f.stat().st_size for f in files) / GIB_BYTES, 1)
    return entry


def probe_vllm(url: str, api_key: str | None, timeout: float) -> dict:
    """GET {url}/v1/models: reachable or not, and the models it serves."""
    out: dict[str, Any] = {"url": url}
    try:
        import httpx
    except ImportError:
        out.update(reachable=None, error="httpx is not installed: pip install httpx")
        return out
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        r = httpx.get(url.rstrip("/") + "/v1/models", headers=headers, timeout=timeout)
        r.raise_for_status()
        out.update(reachable=True, models=[str(m.get("id")) for m in r.json().get("data") or []])
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        out.update(reachable=False, error=f"{type(exc).__name__}: {exc}"[:300])
    return out


# -- what to use ------------------------------------------------------------------------------------------------------


def _installed(report: dict, name: str) -> bool:
    return any(e["name"] == name and e["installed"] for e in report["extras"])


def _gib(model: dict) -> float:
    """A model's weights in GiB; unknown counts as too large for anything."""
    gib = model.get("weights_gib")
    return float("inf") if gib is None else float(gib)


def _gpu_gib(report: dict) -> float:
    return max((d["memory_gib"] for d in report["gpu"]["devices"]), default=0.0)


def backends(report: dict) -> list[dict]:
    """Per backend: can it run here, why (not), and the settings that start it."""
    gpu = _gpu_gib(report)
    dgs = [m for m in report["models"] if m.get("family") == "diffusiongemma" and m.get("weights_present")]
    out = [{"backend": "embedded", "ready": True, "why": "the shipped model runs on any CPU",
            "settings": {"backend": "embedded"}}]

    def fits(m: dict, vllm: bool) -> bool:  # weights (+ vLLM's ~1 GiB buffers) within the share vLLM may take
        need = _gib(m) + (1.0 if vllm else 0.0)
        return gpu > 0 and need <= gpu * (VLLM_UTILIZATION if vllm else 0.95)

    vllm_ok = [m for m in dgs if fits(m, True)]
    if not _installed(report, "vllm"):
        out.append({"backend": "vllm", "ready": False, "why": "vllm is not installed (the `vllm` extra, a GPU machine)",
                    "settings": {"backend": "vllm", "modelPath": "<a DiffusionGemma checkpoint directory>"}})
    elif not vllm_ok:
        why = (f"no DiffusionGemma checkpoint found that fits {gpu:.0f} GiB of GPU memory" if gpu else
               "no GPU")
        out.append({"backend": "vllm", "ready": False, "why": why,
                    "settings": {"backend": "vllm", "modelPath": "<a DiffusionGemma checkpoint directory>"}})
    else:
        best = min(vllm_ok, key=lambda m: m["weights_gib"])
        out.append({"backend": "vllm", "ready": True,
                    "why": f"{best['name']} ({best['format']}, {best['weights_gib']} GiB of weights) fits the GPU",
                    "settings": {"backend": "vllm", "modelPath": best["path"]}})
    masked = [m for m in report["models"] if m.get("family") == "masked-diffusion" and m.get("weights_present")]
    runs = [m for m in masked if fits(m, False) or _gib(m) <= CPU_GIB]
    if not _installed(report, "transformers") or not runs:
        why = ("transformers is not installed (the `hf` extra)" if not _installed(report, "transformers") else
               "no Dream/LLaDA-family checkpoint found" if not masked else
               f"no Dream/LLaDA-family checkpoint small enough for {'the GPU' if gpu else 'a CPU'}")
        out.append({"backend": "masked-diffusion", "ready": False, "why": why,
                    "settings": {"backend": "masked-diffusion", "modelPath": "<a Dream/LLaDA-family checkpoint>"}})
    else:
        m = max(runs, key=lambda x: x["weights_gib"])  # the largest that runs: the strongest model here
        on_gpu = fits(m, False)
        settings = {"backend": "masked-diffusion", "modelPath": m["path"],
                    **({"device": "cuda", "dtype": "bfloat16"} if on_gpu else {}),
                    **({"trustRemoteCode": True} if m.get("remote_code") else {})}
        where = "the GPU" if on_gpu else "the CPU"
        why = f"{m.get('repo') or m['name']} ({m['weights_gib']} GiB) runs on {where}"
        if m.get("remote_code"):
            why += "; it ships its own model code: trustRemoteCode runs it"
        out.append({"backend": "masked-diffusion", "ready": True, "why": why, "settings": settings})
    tf_ok = [m for m in dgs if m.get("format") == "bf16" and fits(m, False)]
    tf_int4 = [m for m in dgs if m.get("format") == "bf16" and
               fits({"weights_gib": m.get("experts_int4_gib")}, False)]
    if not _installed(report, "transformers"):
        out.append({"backend": "transformers", "ready": False, "why": "transformers is not installed (the `hf` extra)",
                    "settings": {"backend": "transformers", "modelPath": "<a DiffusionGemma checkpoint directory>",
                                 "device": "cuda"}})
    elif not tf_ok and tf_int4:
        m = tf_int4[0]
        out.append({"backend": "transformers", "ready": True,
                    "why": f"{m['name']} with its experts in int4 ({m['experts_int4_gib']} GiB) fits; loading needs "
                           f"{m['weights_gib']} GiB of host memory for the bf16 checkpoint",
                    "settings": {"backend": "transformers", "modelPath": m["path"], "device": "cuda",
                                 "dtype": "bfloat16", "quantization": "experts-int4"}})
    elif not tf_ok:
        why = (f"no bf16 DiffusionGemma checkpoint that fits {gpu:.0f} GiB, even with its experts in int4" if gpu else
               "no GPU: DiffusionGemma 26B on a CPU is far too slow for an editor")
        out.append({"backend": "transformers", "ready": False, "why": why,
                    "settings": {"backend": "transformers", "modelPath": "<a DiffusionGemma checkpoint directory>",
                                 "device": "cuda"}})
    else:
        m = tf_ok[0]
        out.append({"backend": "transformers", "ready": True, "why": f"{m['name']} ({m['weights_gib']} GiB) fits",
                    "settings": {"backend": "transformers", "modelPath": m["path"], "device": "cuda",
                                 "dtype": "bfloat16"}})
    v = report["servers"]["vllm"]
    if v and v.get("reachable"):
        out.append({"backend": "vllm-remote", "ready": True, "why": f"{v['url']} serves {', '.join(v['models'])}",
                    "settings": {"backend": "vllm-remote", "serverUrl": v["url"],
                                 **({"serverModel": v["models"][0]} if v.get("models") else {})}})
    else:
        why = (f"{v['url']} did not answer: {v.get('error')}" if v else
               f"no server named (--vllm-url or {VLLM_URL_ENV})")
        out.append({"backend": "vllm-remote", "ready": False, "why": why,
                    "settings": {"backend": "vllm-remote", "serverUrl": (v or {}).get("url") or "http://<host>:8000"}})
    key = report["servers"]["mercury"]["key_set"]
    out.append({"backend": "mercury", "ready": key and _installed(report, "httpx"),
                "why": (f"an API key is in {MERCURY_KEY_ENV} (not tried: doctor never calls the public API)" if key
                        else f"no API key in {MERCURY_KEY_ENV}") + ("" if _installed(report, "httpx") else
                                                                   "; httpx is not installed"),
                "settings": {"backend": "mercury"}})
    return out


# strongest first: a shared GPU server, a local GPU with vLLM, a native-infill code model, DiffusionGemma through
# transformers, the hosted API, the shipped model
PREFERENCE = ("vllm-remote", "vllm", "masked-diffusion", "transformers", "mercury", "embedded")


def recommend(report: dict) -> dict:
    ready = {b["backend"]: b for b in report["backends"] if b["ready"]}
    name = next(n for n in PREFERENCE if n in ready)
    return {"backend": name, "why": ready[name]["why"], "settings": ready[name]["settings"]}


# -- the report -------------------------------------------------------------------------------------------------------


def render(report: dict) -> str:
    m, g = report["machine"], report["gpu"]
    lines = ["diffusion-ls doctor", "",
             f"machine   {m['cpu_cores']} CPU cores, {m['memory_gib']} GiB memory ({m['platform']}); bfloat16 in "
             + ("hardware" if m.get("cpu_bfloat16") else "software only")
             + "; the embedded model runs (dtype auto) its products in "
             + ("int8" if m.get("cpu_int8") else "bfloat16" if m.get("cpu_bfloat16") else "float32")
             + ", the rest in " + ("bfloat16" if m.get("cpu_bfloat16") else "float32")]
    if g["devices"]:
        for d in g["devices"]:
            lines.append(f"GPU       cuda:{d['index']} {d['name']}, {d['memory_gib']} GiB "
                         f"(compute capability {d['compute_capability']})")
    else:
        lines.append(f"GPU       none: {g['why_none']}" + ("; Apple MPS is available" if g.get("mps") else ""))
    lines.append("extras    " + ", ".join(f"{e['name']} {e['version']}" if e["installed"] else f"{e['name']}: no"
                                          for e in report["extras"]))
    lines.append("models")
    for e in report["models"]:
        extra = f", {e['format']}" if "format" in e else ""
        extra += f", {e['weights_gib']} GiB of weights" if "weights_gib" in e else ""
        extra += "" if e.get("weights_present", True) else ", no weights (config only)"
        lines.append(f"  {e['where']:9} {e.get('repo') or e['name']} ({e.get('family', '?')}{extra}): {e['path']}")
    v = report["servers"]["vllm"]
    if v is None:
        lines.append(f"vLLM      no server named (--vllm-url or {VLLM_URL_ENV})")
    elif v.get("reachable"):
        lines.append(f"vLLM      {v['url']}: reachable, serves {', '.join(v['models']) or 'nothing'}")
    else:
        lines.append(f"vLLM      {v['url']}: not reachable ({v.get('error')})")
    k = report["servers"]["mercury"]
    lines.append(f"Mercury   API key {'set' if k['key_set'] else 'not set'} in {k['key_env']}")
    lines += ["", "backends"]
    for b in report["backends"]:
        lines.append(f"  {b['backend']:13} {'ready' if b['ready'] else 'no':5}  {b['why']}")
        lines.append(f"  {'':13} {'':5}  {json.dumps(b['settings'])}")
    r = report["recommended"]
    lines += ["", f"use: {r['backend']} ({r['why']}); settings:", json.dumps(r["settings"], indent=2)]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="diffusion-ls doctor")
    configure(parser)
    sys.exit(main(parser.parse_args()))
