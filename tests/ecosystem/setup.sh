#!/usr/bin/env bash
# Installs what the ecosystem tests need, all of it under target/ecosystem/
# (git-ignored), plus Debian's Chromium when /usr/bin/chromium is missing.
# Idempotent: a step whose stamp matches the hash of its manifest is skipped,
# so a warm run takes well under a second. Run from any directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/target/ecosystem"
mkdir -p "$out"

log() { printf '[ecosystem setup] %s\n' "$*" >&2; }

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# Serialise concurrent runs (e.g. several Rust tests calling setup at once).
exec 9>"$out/.setup.lock"
flock -w 900 9 || { log "could not take $out/.setup.lock within 15 minutes"; exit 1; }

# --- Python: venv with openapi-python-client and openapi-spec-validator ------
venv="$out/venv"
py_hash="$(hash_of "$here/requirements.txt")"
if [[ -x "$venv/bin/python" && "$(cat "$venv/.stamp" 2>/dev/null || true)" == "$py_hash" ]]; then
    log "python venv up to date"
else
    log "installing python venv into $venv"
    rm -rf "$venv"
    python="${PYTHON:-python3}"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --require-virtualenv -r "$here/requirements.txt"
    "$venv/bin/openapi-python-client" --version >/dev/null
    printf '%s\n' "$py_hash" >"$venv/.stamp"
fi

# --- Node: openapi-typescript, openapi-fetch, typescript, tsx, playwright-core
node_dir="$out/node"
js_hash="$(hash_of "$here/package.json" "$here/package-lock.json")"
if [[ -d "$node_dir/node_modules" && "$(cat "$node_dir/.stamp" 2>/dev/null || true)" == "$js_hash" ]]; then
    log "node packages up to date"
else
    log "installing node packages into $node_dir"
    rm -rf "$node_dir"
    mkdir -p "$node_dir"
    cp "$here/package.json" "$here/package-lock.json" "$node_dir/"
    # Playwright must never try to download a browser: Debian's Chromium is used.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
        npm ci --prefix "$node_dir" --no-audit --no-fund --loglevel=error >&2
    printf '%s\n' "$js_hash" >"$node_dir/.stamp"
fi

# --- Chromium from Debian (never a Playwright browser download) --------------
if [[ -x /usr/bin/chromium ]]; then
    log "chromium present"
else
    log "installing chromium with apt-get"
    if [[ "$(id -u)" -ne 0 ]]; then
        log "/usr/bin/chromium is missing and this is not root: install Debian's chromium package"
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
    [[ -x /usr/bin/chromium ]] || { log "apt-get installed chromium but /usr/bin/chromium is missing"; exit 1; }
fi

log "ready: $out"
