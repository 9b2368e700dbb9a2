#!/usr/bin/env bash
# TypeScript ecosystem test. Usage: run.sh BASE_URL WORKDIR
# Generates WORKDIR/schema.d.ts from BASE_URL/openapi.json with openapi-typescript,
# typechecks client.ts against it with `tsc --noEmit` (strict), then runs it
# with tsx. Needs tests/ecosystem/setup.sh to have run.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 BASE_URL WORKDIR" >&2
    exit 2
fi
base_url="${1%/}"
mkdir -p "$2"
workdir="$(cd "$2" && pwd)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
node_dir="${TESSERA_ECOSYSTEM_DIR:-$root/target/ecosystem}/node"
bin="$node_dir/node_modules/.bin"
[[ -x "$bin/tsc" ]] || { echo "[ts client] $bin/tsc missing: run tests/ecosystem/setup.sh" >&2; exit 1; }

step() { printf '[ts client] %s\n' "$*"; }

cp "$here/client.ts" "$here/tsconfig.json" "$workdir/"
printf '{"private": true, "type": "module"}\n' >"$workdir/package.json"
ln -sfn "$node_dir/node_modules" "$workdir/node_modules"

step "openapi-typescript $base_url/openapi.json -o $workdir/schema.d.ts"
if ! timeout 120 "$bin/openapi-typescript" "$base_url/openapi.json" -o "$workdir/schema.d.ts"; then
    echo "[ts client] FAILED: openapi-typescript could not generate types from $base_url/openapi.json" >&2
    exit 1
fi

step "tsc --noEmit -p $workdir/tsconfig.json (strict)"
if ! timeout 120 "$bin/tsc" --noEmit -p "$workdir/tsconfig.json"; then
    echo "[ts client] FAILED: client.ts does not typecheck against the generated schema" >&2
    exit 1
fi

step "tsx client.ts $base_url"
cd "$workdir"
timeout 120 "$bin/tsx" "$workdir/client.ts" "$base_url" || {
    status=$?
    [[ $status -eq 124 ]] && echo "[ts client] FAILED: client.ts did not finish within 120 s" >&2
    exit "$status"
}
