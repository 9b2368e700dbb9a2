#!/usr/bin/env python3
"""Redis memory per refresh session, with the server's own create script.

Creates N sessions (one user each, as most users hold one or two) with a
120-character user agent through `src/sessions/scripts/create.lua`, plus one
refresh of each through `rotate.lua` (so the rate-limit fields exist, as on
any session that was ever refreshed), and reports `INFO memory` used_memory
before and after, divided by N. Needs only `redis-cli` (pipe mode).

    python3 bench/scripts/session_memory.py [N] [--user-agent-length L] [--ip IP] [--redis-url URL]
"""
import argparse
import base64
import os
import subprocess
import uuid

parser = argparse.ArgumentParser()
parser.add_argument("n", nargs="?", type=int, default=100_000)
parser.add_argument("--user-agent-length", type=int, default=120)
parser.add_argument("--ip", default="203.0.113.77")
parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
ARGS = parser.parse_args()
N, URL = ARGS.n, ARGS.redis_url
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
# As long as the default `tessera:`, so key sizes are a default deployment's.
PREFIX = f"t{uuid.uuid4().hex[:6]}:"
UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/131.0.0.0 Safari/537.36 Tessera-bench/1")[:ARGS.user_agent_length].ljust(
          ARGS.user_agent_length, "x")


def compact(id: uuid.UUID) -> str:
    """An id as the store writes it (`sessions/layout.rs`)."""
    return base64.urlsafe_b64encode(id.bytes).rstrip(b"=").decode()


def cli(*args: str, stdin: bytes | None = None) -> str:
    return subprocess.run(["redis-cli", "-u", URL, *args], input=stdin,
                          capture_output=True, check=True).stdout.decode()


def resp(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def used_memory() -> int:
    for line in cli("info", "memory").splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    raise SystemExit("no used_memory in INFO")


def main() -> None:
    create = open(os.path.join(ROOT, "src/sessions/scripts/create.lua")).read()
    rotate = open(os.path.join(ROOT, "src/sessions/scripts/rotate.lua")).read()
    create_sha = cli("script", "load", create).strip()
    rotate_sha = cli("script", "load", rotate).strip()
    before = used_memory()
    commands = []
    for _ in range(N):
        user, session = compact(uuid.uuid4()), compact(uuid.uuid4())
        keys = (f"{PREFIX}{{{user}}}:s:{session}",
                f"{PREFIX}{{{user}}}:sessions", f"{PREFIX}{{{user}}}:epoch")
        commands.append(resp("EVALSHA", create_sha, "3", *keys, session,
                             "3600000", "2592000000", UA, ARGS.ip, "0",
                             "50", f"{PREFIX}{{{user}}}:s:", "p",
                             "1796300000"))
        commands.append(resp("EVALSHA", rotate_sha, "3", *keys, session, "0",
                             "3600000", "10000", "60", "60000", "2592000000"))
    cli("--pipe", stdin=b"".join(commands))
    after = used_memory()
    keys = int(cli("eval", f"return #redis.call('keys', '{PREFIX}*')", "0").strip())
    print(f"{N} sessions ({len(UA)}-character user agent, ip {ARGS.ip}), {keys} keys: "
          f"used_memory {before} -> {after}, "
          f"{(after - before) / N:.0f} bytes per session (hash + index entry + index key)")
    # Clean up.
    cli("eval", f"for _, k in ipairs(redis.call('keys', '{PREFIX}*')) do redis.call('del', k) end", "0")


if __name__ == "__main__":
    main()
