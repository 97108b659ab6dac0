#!/usr/bin/env bash
# Installs what the VS Code e2e needs, once, into a cache folder outside the repository:
# node 24 (code-server refuses older), code-server from npm (compiles native modules: ~8 min on 2 cores),
# and Debian's chromium (headless browser for playwright-core). Prints the paths as shell assignments.
set -euo pipefail

# npm >= 11.19 skips dependencies' install scripts unless allowed; code-server's postinstall builds its native modules
# and installs VS Code's own dependencies (whose install scripts build more), so these installs allow them all.
# Older npm ignores the setting.
export npm_config_dangerously_allow_all_scripts=true

CACHE="${DIFFUSION_LS_E2E_CACHE:-$HOME/.cache/diffusion-ls-e2e}"
CS_VERSION="${DIFFUSION_LS_CODE_SERVER_VERSION:-4.139.1}"
mkdir -p "$CACHE"

NODE24_BIN="$CACHE/node24/node_modules/node/bin"
if [ ! -x "$NODE24_BIN/node" ]; then
  echo "e2e-setup: installing node 24" >&2
  npm install --prefix "$CACHE/node24" --no-save node@24 >&2
fi

# Native modules must be compiled against node 24's headers (a user npmrc may point nodedir elsewhere).
HEADERS="$(dirname "$(dirname "$(dirname "$(find "$CACHE/node24" -name node_version.h -path '*include/node/*' | head -n1)")")")"

if ! command -v chromium >/dev/null || ! pkg-config --exists libsecret-1 krb5 xkbfile 2>/dev/null; then
  echo "e2e-setup: installing chromium and build deps (apt)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    chromium libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev pkg-config >&2
fi

# Written only once the install, postinstall included, succeeded: a half-done install is done again.
CS_DONE="$CACHE/cs/installed-$CS_VERSION"
if [ ! -f "$CS_DONE" ]; then
  echo "e2e-setup: installing code-server@$CS_VERSION (slow: native modules)" >&2
  rm -rf "$CACHE/cs"
  PATH="$NODE24_BIN:$PATH" npm_config_nodedir="$HEADERS" \
    npm install --prefix "$CACHE/cs" --no-save "code-server@$CS_VERSION" >&2
  [ -d "$CACHE/cs/node_modules/code-server/lib/vscode/node_modules" ] || {
    echo "e2e-setup: code-server's postinstall did not run (lib/vscode/node_modules is missing)" >&2
    exit 1
  }
  touch "$CS_DONE"
fi

echo "NODE24_BIN=$NODE24_BIN"
echo "CODE_SERVER=$CACHE/cs/node_modules/.bin/code-server"
echo "CHROMIUM=$(command -v chromium)"
