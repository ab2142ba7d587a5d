#!/usr/bin/env bash
# The Python tools the tests drive the market with, in a virtualenv of their own:
# Playwright (drives Debian's Chromium, for the market page test) and Schemathesis (runs
# the OpenAPI document against a live node). Installs what is missing (Chromium with
# apt-get, the packages with pip, pinned below) and prints the virtualenv's python.
# The virtualenv lives in $PROOF_MARKET_PYENV (default ~/.cache/proof-market/pyenv) and is
# reused while its pins match.
set -euo pipefail

PLAYWRIGHT_VERSION=1.65.2
SCHEMATHESIS_VERSION=4.32.5
venv="${PROOF_MARKET_PYENV:-$HOME/.cache/proof-market/pyenv}"
pins="playwright==$PLAYWRIGHT_VERSION schemathesis==$SCHEMATHESIS_VERSION"

# Tests run in parallel and may call this at once: one sets up, the others wait.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

if ! command -v chromium >/dev/null 2>&1; then
  echo "chromium not found; installing Debian's with apt-get" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]; then
  echo "setting up $venv ($pins)" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv" >&2
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q --disable-pip-version-check $pins >&2
  echo "$pins" > "$venv/.pins"
fi
echo "$venv/bin/python"
