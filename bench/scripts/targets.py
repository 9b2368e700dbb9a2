#!/usr/bin/env python3
"""The performance targets' table from one `bench/targets.sh` run.

Reads the JSON results and memory lines in DIR (target/bench/targets) and
prints, per target, this build's figure beside the older build's where one
ran (`old-*`), as Markdown.

    python3 bench/scripts/targets.py [DIR]
"""
import json
import re
import sys
from pathlib import Path

DIR = Path(sys.argv[1] if len(sys.argv) > 1 else "target/bench/targets")


def load(name):
    path = DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def scenario(report, name):
    """The Tessera scenario `name` (not a baseline row) of a report."""
    for s in (report or {}).get("scenarios", []):
        if s["name"] == name and not s["baseline_scenario"]:
            return s
    return None


def rate(report, name):
    s = scenario(report, name)
    m = s and s.get("measurement")
    return f"{m['requests_per_sec']:,.0f} req/s, p99 {m['p99_ms']:.2f} ms" if m else "—"


def ratio(report, name, baseline):
    s = scenario(report, name)
    for r in (s or {}).get("baselines", []):
        if r["name"] == baseline and r.get("ratio") is not None:
            return f"{r['ratio']:.3f}"
    return "—"


def requests_per_sec(report, name):
    s = scenario(report, name)
    m = s and s.get("measurement")
    return m["requests_per_sec"] if m else None


def size_change(small, large, name):
    a, b = requests_per_sec(small, name), requests_per_sec(large, name)
    return f"{b / a - 1:+.1%}" if a and b else "—"


def mib(kib):
    return f"{kib / 1024:.1f} MiB" if kib is not None else "—"


def memory(name):
    path = DIR / f"memory-{name}.txt"
    if not path.exists():
        return "—"
    found = re.search(r"(\d+) bytes per session", path.read_text())
    return f"{found.group(1)} B" if found else "—"


def server(report):
    return (report or {}).get("server") or {}


def row(cells):
    print("| " + " | ".join(cells) + " |")


def main():
    builds = [b for b in ("new", "old") if load(f"{b}-sqlite-1k")]
    runs = {b: {db: load(f"{b}-{db}-1k") for db in ("sqlite", "postgres")} for b in builds}
    row(["target", "run", *builds])
    row(["---"] * (2 + len(builds)))
    checks = [
        ("`me` ≥ 0.5 × framework-bearer, p99 < 5 ms", "me", "framework-bearer"),
        ("`refresh` ≥ 0.5 × storage", "refresh", "storage"),
        ("`refresh` ≥ 0.35 × framework-post", "refresh", "framework-post"),
        ("`signin` ≥ 0.9 × hashing", "signin", "hashing"),
        ("`signup` (÷ hashing)", "signup", "hashing"),
    ]
    for db in ("sqlite", "postgres"):
        for label, name, baseline in checks:
            cells = [f"{ratio(runs[b][db], name, baseline)} ({rate(runs[b][db], name)})" for b in builds]
            row([label, f"{db}, 1,000 users", *cells])
    sizes = [("signin", "", "1k", "1m"), ("me", "", "1k", "1m"), ("signup", "", "1k", "1m"),
             ("me", " (user cache off)", "1000-uncached", "1000000-uncached")]
    for db in ("sqlite", "postgres"):
        for name, note, small_run, large_run in sizes:
            small, large = load(f"new-{db}-{small_run}"), load(f"new-{db}-{large_run}")
            row([f"`{name}`{note}: 1,000,000 users within 20 % of 1,000", db,
                 f"{rate(small, name)} → {rate(large, name)}: {size_change(small, large, name)}",
                 *([""] * (len(builds) - 1))])
    row(["Redis memory per session ≤ 600 B", "100,000 sessions, 120-char UA",
         memory("new"), *([memory("old")] if len(builds) > 1 else [])])
    flood = {b: scenario(runs[b]["sqlite"], "flood") for b in builds}
    row(["idle RSS < 32 MiB", "sqlite", *[mib(server(runs[b]["sqlite"]).get("idle_rss_kib")) for b in builds]])
    row(["peak RSS under the flood < 256 MiB", "256 sign-in connections",
         *[mib(((flood[b] or {}).get("flood") or {}).get("server_peak_rss_kib")) for b in builds]])
    row(["ready < 300 ms", "sqlite", *[f"{server(runs[b]['sqlite']).get('ready_ms', 0):.0f} ms" for b in builds]])
    for db in ("sqlite", "postgres"):
        filled = ((load(f"new-{db}-1m") or {}).get("database") or {}).get("users")
        if not filled:
            continue
        print(f"\nQuery plans, {db}, {filled['count']:,} users (filled in {filled['fill_secs']:.1f} s):\n")
        for plan in filled["plans"]:
            print(f"- {plan['statement']}: `" + " / ".join(line.strip() for line in plan["plan"]) + "`")


if __name__ == "__main__":
    main()
