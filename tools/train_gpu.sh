#!/usr/bin/env bash
# Train the shipped model's architecture on one GPU: the recipe of diffusion-ls-code-17m(-r2, -r3, -r4).
#
#   bash tools/train_gpu.sh CORPUS.jsonl OUT_DIR MINUTES_NOW [TOTAL_MINUTES]
#   INIT=MODEL_DIR LR=1.2e-3 WARMUP=200 SEED=1 bash tools/train_gpu.sh ...   (start from a model's weights)
#   CERTAINTY=1.0 ...   (certainty forcing: see engine/train.py loss_fn)
#   FREE=0.5 ...   (share of canvases whose capacity is drawn independently of the fill's length: infill/training.py)
#   REPO=0.5 REPO_BUDGET=512 ...   (share of examples with repository context, chunks of other files of the same
#       package chosen as the server chooses them, and its largest budget: infill/training.py; needs a corpus whose
#       records carry "package" and "path", as tools/build_corpus.py writes them; per-package indexes cost CPU, so
#       keep the workers)
#
# Resumable: run it again with the same OUT_DIR and it goes on from OUT_DIR/ckpt (weights, optimizer, counters).
# The cosine schedule runs over TOTAL_MINUTES of training time (default 15.2), so a run split over several sessions
# ends where one long run would. Examples are built by (cores - 2) worker processes; on one H100 this config trains
# at about 0.68M token positions a second.
#   r1: from scratch, 15.2 minutes, lr 1.5e-3, 300 warm-up steps, seed 0, corpus of 107 packages
#   r2: INIT=<r1 weights> LR=1.2e-3 WARMUP=200 SEED=1, 25 minutes, corpus of 230 packages
#   r3: INIT=<r2 weights> LR=6e-4 WARMUP=200 SEED=2 CERTAINTY=1.0, 24 minutes, the odd lines of r2's corpus
#       (awk 'NR % 2 == 1' build/corpus/train.jsonl: every other file, half the bytes, to travel with the tree)
#   r4: INIT=<r3 weights> LR=5e-4 WARMUP=200 SEED=3 CERTAINTY=2.0 FREE=0.5, the even lines of r2's corpus
#       (awk 'NR % 2 == 0'), 16.3 minutes of a 17-minute schedule, then 7.7 more with TOTAL_MINUTES 24
#   r5: INIT=<r4 weights> LR=3e-4 WARMUP=100 SEED=4 CERTAINTY=2.0 FREE=0.5 REPO=0.5 REPO_BUDGET=512, 8 minutes (8 8)
#       on tools/sample_corpus.py's sample (every package, 420k characters each; gunzip'd), then from those weights
#       (exported, a new optimizer) LR=2e-4 WARMUP=30 SEED=5, the same otherwise, 3 minutes (3 3); --ckpt-every 400
# Export with
#   diffusion-ls train --export OUT_DIR --to engine/assets/model
set -euo pipefail
corpus=${1:?corpus .jsonl (tools/build_corpus.py)}
out=${2:?output directory}
minutes=${3:?minutes to train now}
total=${4:-15.2}
export TOKENIZERS_PARALLELISM=false
start=(--scratch)
[ -n "${INIT:-}" ] && start=(--init "$INIT")
exec python -m server.cli train "${start[@]}" --device cuda --corpus "$corpus" --out "$out" \
  --dim 384 --heads 6 --layers 8 --ffn 1024 --max-budget 768 --batch-size 128 --lr "${LR:-1.5e-3}" \
  --warmup "${WARMUP:-300}" --seed "${SEED:-0}" --certainty "${CERTAINTY:-0}" --free-capacity "${FREE:-0}" --ckpt-every 500 \
  --repo-context "${REPO:-0}" --repo-budget "${REPO_BUDGET:-512}" --total-minutes "$total" --minutes "$minutes"
