#!/usr/bin/env bash
# CI entry point for the VS Code extension: npm ci, type-check + bundle, unit tests, .vsix; with
# DIFFUSION_LS_E2E_VSCODE=1 also the end-to-end test in a real VS Code (code-server + headless Chromium), installing
# node 24, code-server and chromium first when missing (cached under ~/.cache/diffusion-ls-e2e).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { # step NAME COMMAND...: run it and report how long it took
  local name=$1 t0=$SECONDS
  shift
  echo "== $name"
  "$@"
  echo "== $name: $((SECONDS - t0)) s"
}

step "npm ci" npm ci --no-audit --no-fund
step "build (tsc + esbuild)" npm run build
step "unit tests" npm test
step "package (.vsix)" npm run package

if [ "${DIFFUSION_LS_E2E_VSCODE:-0}" = "1" ]; then
  t0=$SECONDS
  echo "== e2e setup (node 24, code-server, chromium; cached)"
  eval "$(bash scripts/e2e-setup.sh)"
  echo "== e2e setup: $((SECONDS - t0)) s"
  export NODE24_BIN CODE_SERVER CHROMIUM
  step "e2e (code-server + chromium)" node e2e/run.mjs
else
  echo "== e2e skipped (set DIFFUSION_LS_E2E_VSCODE=1 to run it)"
fi
