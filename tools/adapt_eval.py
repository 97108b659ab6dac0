"""Per-repository adaptation, measured: fine-tune the shipped model on part of a package, fill holes in the rest.

    python tools/adapt_eval.py --minutes 5 --option default= --option "lr1e-4=--lr 1e-4" \\
        --option "mix=--mix build/corpus/train.jsonl --mix-share 0.5" --out docs/results/adapt_5min.json

Each package directory under --corpus (default build/lang/python: held-out packages, not in the training corpus) is
split by file, deterministically (a hash of each file's path): the train split stands for the user's repository,
fine-tuned on with `diffusion-ls train --corpus <train split> --minutes M <option's flags>`; the test split stands for
the code they write next: `diffusion-ls eval --suite heldout` cuts its holes from the test files only, and fills them
with the shipped model and with each fine-tuned one. With --slices K, training stops K times (it resumes from its
checkpoint, on the same schedule) and is scored at each stop: fewer steps come free with more.

Per package and pooled: holes, exact match, edit similarity, identifier match (infill.repo_context.identifiers), the
steps trained, and the holes each option turned right or wrong against the shipped model (paired, on the same holes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import DEFAULT_MODEL_DIR  # noqa: E402
from infill.sizing import corpus_files  # noqa: E402
from server.repo_eval import identifier_scores  # noqa: E402

DEFAULT_CORPUS = ROOT / "build" / "lang" / "python"


def split(paths: list[str], test_share: float = 0.3, min_test: int = 3) -> tuple[list[str], list[str]]:
    """(train, test) relative paths: the files ranked by a hash of their path, the first share (at least min_test,
    at least one file left to train on) to test: the same files give the same split whatever their order, on any
    machine."""
    if len(paths) <= min_test:
        raise ValueError(f"{len(paths)} files: too few to keep {min_test} for testing and train on the rest")
    ranked = sorted(paths, key=lambda p: (hashlib.sha1(p.encode()).hexdigest(), p))
    k = min(len(paths) - 1, max(min_test, round(test_share * len(paths))))
    return sorted(ranked[k:]), sorted(ranked[:k])


def package_files(pkg: Path) -> list[str]:
    """Source files of a package, relative to it: the files the heldout suite would cut holes from."""
    return [Path(p).relative_to(pkg).as_posix() for p, _, _ in corpus_files(pkg)]


def copy_tree(src: Path, rel: list[str], dest: Path) -> Path:
    for r in rel:
        (dest / r).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / r, dest / r)
    return dest


def _env() -> dict[str, str]:
    # one thread per process: runs go side by side on a shared machine without oversubscribing it
    return {**os.environ, "DIFFUSION_LS_THREADS": "1", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _cli(args: list[str], log: Path) -> str:
    """Run `diffusion-ls ARGS` in a fresh process; its stdout (stderr goes to log)."""
    with log.open("a") as err:
        done = subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, env=_env(), text=True,
                              stdout=subprocess.PIPE, stderr=err)
    if done.returncode:
        raise RuntimeError(f"diffusion-ls {shlex.join(args)} failed ({done.returncode}); see {log}")
    return done.stdout


def score(model: Path, test_tree: Path, limit: int | None, records: Path, log: Path) -> dict:
    """`diffusion-ls eval --suite heldout` on the test tree; the summary plus identifier match from its records."""
    args = ["eval", "--suite", "heldout", "--corpus", str(test_tree), "--model", str(model), "--threads", "1",
            "--json", "--no-progress", "--records", str(records)]
    if limit:
        args += ["--limit", str(limit)]
    res = json.loads(_cli(args, log).strip().splitlines()[-1])
    recs = [json.loads(line) for line in records.read_text().splitlines()]
    ids = [identifier_scores(r["fill"], r["middle"]) for r in recs]
    return {"n": res["n"], "exact_match": res["exact_match"], "edit_similarity": res["edit_similarity"],
            "identifier_exact": round(sum(e for e, _ in ids) / len(ids), 4),
            "identifier_f1": round(sum(f for _, f in ids) / len(ids), 4), "syntax_valid": res["syntax_valid"],
            "empty_fills": res["empty_fills"], "model": res["model"],
            "_holes": {r["task_id"]: {"exact": bool(r["exact"]), "es": r["edit_similarity"]} for r in recs}}


def paired(base: dict, other: dict) -> dict:
    """Holes the option turned right (wrong by the shipped model) and wrong (right by it); edit similarity up/down."""
    b, o = base["_holes"], other["_holes"]
    common = sorted(set(b) & set(o))
    return {"holes": len(common), "exact_gained": sum(o[t]["exact"] and not b[t]["exact"] for t in common),
            "exact_lost": sum(b[t]["exact"] and not o[t]["exact"] for t in common),
            "es_up": sum(o[t]["es"] > b[t]["es"] for t in common),
            "es_down": sum(o[t]["es"] < b[t]["es"] for t in common)}


def adapt(pkg: str, flags: list[str], trees: tuple[Path, Path], out: Path, a: argparse.Namespace, base: dict,
          stops: list[dict], on_stop: Callable[[], None]) -> None:
    """Fine-tune on the train tree in slices, scoring each stop on the test tree (appended to stops)."""
    train_tree, test_tree = trees
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    log = out / "log.txt"
    for k in range(1, a.slices + 1):
        args = ["train", "--corpus", str(train_tree), "--out", str(out), *flags]
        if a.steps:  # the schedule's horizon stays the whole run's, whatever the slice
            args += ["--steps", str(a.steps // a.slices), "--total-steps", str(a.steps)]
        else:
            args += ["--minutes", str(a.minutes / a.slices)]
        _cli(args, log)
        state = json.loads((out / "ckpt" / "state.json").read_text())
        got = score(out / "ckpt", test_tree, a.limit, out / f"records{k}.jsonl", log)
        stops.append({"steps": state["step"], "train_minutes": round(state["seconds"] / 60, 2),
                      **{k2: v for k2, v in got.items() if not k2.startswith("_")}, "vs_base": paired(base, got)})
        print(f"{pkg:<10} {out.name:<12} step {state['step']:>4}: exact {got['exact_match']:.3f} "
              f"es {got['edit_similarity']:.3f}", file=sys.stderr, flush=True)
        on_stop()


def pooled(per_pkg: list[dict]) -> dict:
    """Hole-weighted means over packages, and the paired counts summed."""
    n = sum(r["n"] for r in per_pkg)
    out: dict = {"n": n}
    for key in ("exact_match", "edit_similarity", "identifier_exact", "identifier_f1"):
        out[key] = round(sum(r[key] * r["n"] for r in per_pkg) / n, 4)
    if all("vs_base" in r for r in per_pkg):
        out["vs_base"] = {k: sum(r["vs_base"][k] for r in per_pkg) for k in per_pkg[0]["vs_base"]}
    if all("steps" in r for r in per_pkg):
        out["steps"] = [r["steps"] for r in per_pkg]
    return out


def model_commit() -> str:
    got = subprocess.run(["git", "log", "-1", "--format=%h", "--", "engine/assets/model"], cwd=ROOT, text=True,
                         capture_output=True)
    return got.stdout.strip() or "unknown"


def parse_option(spec: str) -> tuple[str, list[str]]:
    name, _, flags = spec.partition("=")
    if not name:
        raise argparse.ArgumentTypeError(f"option {spec!r}: NAME=FLAGS (FLAGS may be empty)")
    return name, shlex.split(flags)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="a folder of package folders")
    p.add_argument("--packages", nargs="*", help="only these package folders")
    p.add_argument("--minutes", type=float, default=5.0, help="training minutes per package and option")
    p.add_argument("--steps", type=int, default=None, help="train this many steps instead of --minutes")
    p.add_argument("--slices", type=int, default=1, help="stop and score this many times along the run")
    p.add_argument("--option", type=parse_option, action="append", default=None, metavar="NAME=FLAGS",
                   help="train flags to compare (repeatable; default: default=, the fine-tune's own defaults)")
    p.add_argument("--test-share", type=float, default=0.3)
    p.add_argument("--min-test", type=int, default=3)
    p.add_argument("--limit", type=int, default=None, help="at most N test holes per package")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side (one thread each)")
    p.add_argument("--work", type=Path, default=None, help="folder for the split trees and runs (default: a temp one)")
    p.add_argument("--out", type=Path, default=None, help="write the JSON here (docs/results/adapt_*.json)")
    a = p.parse_args(argv)
    options = a.option or [("default", [])]
    work = a.work or Path(tempfile.mkdtemp(prefix="adapt_eval_"))
    commit, t0 = model_commit(), time.time()
    packages = sorted(d.name for d in a.corpus.iterdir() if d.is_dir() and (not a.packages or d.name in a.packages))
    trees, splits = {}, {}
    for pkg in packages:
        train_rel, test_rel = split(package_files(a.corpus / pkg), a.test_share, a.min_test)
        splits[pkg] = {"train": train_rel, "test": test_rel}
        for side in ("train", "test"):
            if (work / side / pkg).exists():
                shutil.rmtree(work / side / pkg)
        trees[pkg] = (copy_tree(a.corpus / pkg, train_rel, work / "train" / pkg),
                      copy_tree(a.corpus / pkg, test_rel, work / "test" / pkg))
    results: dict = {pkg: {"files": {"train": len(splits[pkg]["train"]), "test": len(splits[pkg]["test"])}}
                     for pkg in packages}
    runs = {(pkg, name): {"flags": shlex.join(flags), "stops": []} for name, flags in options for pkg in packages}
    lock = threading.Lock()

    def document() -> dict:
        """The JSON as far as the runs have got: pooled figures for the stops every package has reached."""
        summary: dict = {"base": pooled([results[pkg]["base"] for pkg in packages])}
        for name, flags in options:
            for pkg in packages:
                results[pkg][name] = runs[(pkg, name)]
            reached = min(len(runs[(pkg, name)]["stops"]) for pkg in packages)
            summary[name] = {"flags": shlex.join(flags), "stops": [
                pooled([runs[(pkg, name)]["stops"][k] for pkg in packages]) for k in range(reached)]}
        return {
            "command": "python tools/adapt_eval.py " + shlex.join(shown_args(sys.argv[1:] if argv is None else argv)),
            "model": results[packages[0]]["base"]["model"], "model_commit": commit,
            "model_commit_end": model_commit(), "corpus": corpus_name(a.corpus),
            "train": {"minutes": None if a.steps else a.minutes, "steps": a.steps, "slices": a.slices},
            "eval": "diffusion-ls eval --suite heldout --corpus <test split> --threads 1"
                    + (f" --limit {a.limit}" if a.limit else ""),
            "split": {"test_share": a.test_share, "min_test": a.min_test, "files": splits},
            "complete": all(len(r["stops"]) == a.slices for r in runs.values()),
            "pooled": summary, "packages": results, "elapsed_min": round((time.time() - t0) / 60, 1),
        }

    def save() -> None:  # after every stop: a run cut short still leaves its figures
        with lock:
            if a.out:
                a.out.parent.mkdir(parents=True, exist_ok=True)
                a.out.write_text(json.dumps(document(), indent=1) + "\n")

    (work / "base").mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(a.jobs) as pool:
        bases = dict(zip(packages, pool.map(
            lambda pkg: score(DEFAULT_MODEL_DIR, trees[pkg][1], a.limit, work / "base" / f"{pkg}.jsonl",
                              work / "base" / "log.txt"), packages)))
        for pkg in packages:
            results[pkg]["base"] = {k: v for k, v in bases[pkg].items() if not k.startswith("_")}
        save()
        jobs = [pool.submit(adapt, pkg, flags, trees[pkg], work / "runs" / pkg / name, a, bases[pkg],
                            runs[(pkg, name)]["stops"], save) for name, flags in options for pkg in packages]
        for job in jobs:
            job.result()
    save()
    print(table(document()))
    return 0


def shown_args(argv: list[str]) -> list[str]:
    """The command line without --work (scratch space: a machine's own path, no bearing on the figures)."""
    out, skip = [], False
    for arg in argv:
        if skip or arg == "--work" or arg.startswith("--work="):
            skip = arg == "--work"
            continue
        out.append(arg)
    return out


def corpus_name(corpus: Path) -> str:
    """The corpus as the command names it, relative to the repository (never a machine's own path)."""
    if not corpus.is_absolute():
        return corpus.as_posix()
    return corpus.relative_to(ROOT).as_posix() if corpus.is_relative_to(ROOT) else corpus.name


def table(doc: dict) -> str:
    """The pooled figures, then each package's at the last stop, as Markdown tables (the README's)."""
    rows = ["| option | steps | holes | exact | edit sim | identifier exact | exact gained / lost |",
            "|---|---|---|---|---|---|---|"]
    options = [n for n in doc["pooled"] if n != "base"]

    def row(label: str, r: dict, steps: str) -> str:
        vs = r.get("vs_base")
        moved = f"{vs['exact_gained']} / {vs['exact_lost']}" if vs else ""
        return (f"| {label} | {steps} | {r['n']} | {100 * r['exact_match']:.1f} | {r['edit_similarity']:.3f} | "
                f"{100 * r['identifier_exact']:.1f} | {moved} |")

    rows.append(row("shipped model", doc["pooled"]["base"], "0"))
    for name in options:
        s = doc["pooled"][name]
        for stop in s["stops"]:
            rows.append(row(f"{name} (`{s['flags']}`)" if s["flags"] else name, stop,
                            " / ".join(str(x) for x in stop["steps"])))
    rows += ["", "Per package, exact / edit similarity at the last stop:", "",
             "| package | train / test files | holes | " + " | ".join(["shipped", *options]) + " |",
             "|---|---|---|" + "---|" * (1 + len(options))]
    for pkg, r in doc["packages"].items():
        cells = [f"{100 * r['base']['exact_match']:.1f} / {r['base']['edit_similarity']:.3f}"]
        for name in options:
            last = r[name]["stops"][-1] if r[name]["stops"] else None
            cells.append(f"{100 * last['exact_match']:.1f} / {last['edit_similarity']:.3f} ({last['steps']} steps)"
                         if last else "-")
        rows.append(f"| {pkg} | {r['files']['train']} / {r['files']['test']} | {r['base']['n']} | "
                    + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
