#!/usr/bin/env bash
# Every row of the performance targets in BENCHMARKS.md from one command:
# the release server on SQLite and on PostgreSQL with 1,000 and with
# 1,000,000 users, the flood, and Redis memory per session; with OLD_BIN,
# the 1,000-user runs of an older build beside this one's. From the
# workspace root, after `cargo build --release --workspace`:
#
#   bench/targets.sh [tessera-bench options, e.g. --duration-secs 2]
#
#   OLD_BIN=old/target/release/tessera OLD_CONFIG=old/config \
#   OLD_SRC=old bench/targets.sh      # an older build (its own config, as
#                                     # settings refuse unknown keys) and the
#                                     # session layout of an older checkout
#
# PostgreSQL: PG_URL (default postgres://postgres@127.0.0.1:5432/test); each
# run makes a database of its own there and drops it. Results go to
# target/bench/targets/, summed up at the end by bench/scripts/targets.py.
set -euo pipefail
cd "$(dirname "$0")/.."

bench=target/release/tessera-bench
pg=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
out=target/bench/targets
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.txt

run() { # name, then tessera-bench options
  local name=$1
  shift
  echo "== $name" >&2
  "$bench" --out "$out/$name.json" "$@"
}

# The 1,000-user runs carry every ratio; the 1,000,000-user runs only what
# the size of the users table could change.
for build in new ${OLD_BIN:+old}; do
  server=()
  if [[ $build == old ]]; then
    server=(--server-bin "$OLD_BIN" --config-dir "${OLD_CONFIG:?OLD_CONFIG: the old build\'s config directory}")
  fi
  run "$build-sqlite-1k" "${server[@]}" --users 1000 \
    --scenarios me,framework,signin,refresh,signup,flood "$@"
  run "$build-postgres-1k" "${server[@]}" --users 1000 --database-url "$pg" \
    --scenarios me,signin,refresh,signup "$@"
done
run new-sqlite-1m --users 1000000 --scenarios me,signin,signup "$@"
run new-postgres-1m --users 1000000 --database-url "$pg" --scenarios me,signin,signup "$@"
# `me` answers the seeded users from the user cache: its database read, the
# cache off, at both sizes.
for users in 1000 1000000; do
  for db in sqlite postgres; do
    database=()
    if [[ $db == postgres ]]; then database=(--database-url "$pg"); fi
    TESSERA__SERVER__USER_CACHE_CAPACITY=0 run "new-$db-$users-uncached" \
      --users "$users" "${database[@]}" --scenarios me "$@"
  done
done

echo "== Redis memory per session" >&2
python3 bench/scripts/session_memory.py 100000 | tee "$out/memory-new.txt"
if [[ -n ${OLD_SRC:-} ]]; then
  python3 "$OLD_SRC/bench/scripts/session_memory.py" 100000 | tee "$out/memory-old.txt"
fi
python3 bench/scripts/targets.py "$out"
