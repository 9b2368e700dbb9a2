"""Ecosystem test: an independent verifier (PyJWT) through an automatic key rotation.

Usage: verify_rotation.py BASE_URL   (run with target/ecosystem/venv/bin/python)

The server must run with managed keys rotating every few seconds (see
tests/ecosystem.rs: a new key every 4 s, published 2 s before it signs, the
JWKS cacheable for 1 s, access tokens valid 4 s). The script checks access
tokens offline from BASE_URL/.well-known/jwks.json the way
docs/resource-servers.md tells a resource server to: PyJWT's PyJWKClient with
its caches (the JWK Set kept for the JWKS's own Cache-Control max-age, each
key kept by kid, and a refetch on an unknown kid), `alg` pinned to EdDSA,
`typ` at+jwt, no `crit`, `iss` and `aud` tessera, `exp`/`iss`/`aud`/`sub`
required. PyJWT refetches on an unknown kid only once its cooldown_duration
(30 s) has passed since its last download, so within this run a new kid is
found only in a download the max-age expiry makes: the run relies on each key
being published before it signs, not on that refetch.

For RUN_SECS it signs one user in every TICK_SECS and verifies the fresh token
and every earlier token that is still unexpired (exp > now + MARGIN_SECS)
with one long-lived PyJWKClient, and also with a second one
without the per-kid cache, which reads the (at most max-age old) JWKS on every
check, so a key withdrawn while its tokens still live is caught too. Any
refusal of an unexpired token fails, and so do fewer than MIN_KIDS distinct
signing kids. Then forgeries must be refused: a tampered signature, a
tampered `aud`, `alg` none, HS256 keyed with the public key, an unknown kid,
`typ` JWT, a `crit` header, a genuine token checked for another audience, and
the run's first token, long expired.
Exits 0 on success, 1 with a message (last line `FAILED: ...`) otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, NoReturn

import jwt

STRONG_PASSWORD = "correct-Horse-battery-9-staple"
ISSUER = "tessera"
AUDIENCE = "tessera"
LEEWAY_SECS = 5  # as in docs/resource-servers.md
RUN_SECS = 14.0  # a new key every 4 s: at least three keys sign in this time
TICK_SECS = 0.25
MARGIN_SECS = 1  # a kept token is checked only while exp > now + this
MIN_KIDS = 3


class Mismatch(Exception):
    pass


def step(message: str) -> None:
    print(f"[verify rotation] {message}", flush=True)


def fail(message: str) -> NoReturn:
    raise Mismatch(message)


def check(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def post_json(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, {"body": error.read().decode(errors="replace")[:500]}


def jwks_now(jwks_url: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """The JWKS's Cache-Control and its keys by kid, as the server answers right now."""
    with urllib.request.urlopen(jwks_url, timeout=15) as response:
        check(response.status == 200, f"GET {jwks_url} answered {response.status}")
        cache_control = response.headers.get("Cache-Control", "")
        document = json.load(response)
    return cache_control, {key.get("kid"): key for key in document.get("keys", [])}


class CountingJWKClient(jwt.PyJWKClient):
    """PyJWKClient as is, counting its JWKS downloads for the summary."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetches = 0

    def fetch_data(self) -> Any:
        data = super().fetch_data()
        self.fetches += 1
        return data


def verify(token: str, client: jwt.PyJWKClient, audience: str = AUDIENCE) -> dict[str, Any]:
    """The recipe of docs/resource-servers.md; raises jwt.PyJWTError on refusal."""
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "at+jwt" or "crit" in header:
        raise jwt.InvalidTokenError("not a Tessera access token")
    key = client.get_signing_key_from_jwt(token)  # refetches on an unknown kid
    return jwt.decode(token, key.key, algorithms=["EdDSA"],
                      audience=audience, issuer=ISSUER, leeway=LEEWAY_SECS,
                      options={"require": ["exp", "iss", "aud", "sub"]})


@dataclass
class Kept:
    token: str
    kid: str
    iat: int
    exp: int
    number: int  # the how-manieth sign-in gave it


def run(base_url: str) -> None:
    jwks_url = f"{base_url}/.well-known/jwks.json"
    cache_control, first_kids = jwks_now(jwks_url)
    match = re.fullmatch(r"public, max-age=(\d+)", cache_control)
    check(match is not None, f"JWKS Cache-Control is {cache_control!r}, expected 'public, max-age=N'")
    max_age = int(match.group(1))
    check(max_age > 0, f"JWKS max-age is {max_age}: this run needs a cacheable JWKS")
    step(f"GET /.well-known/jwks.json: Cache-Control {cache_control!r}, kids {list(first_kids)}")

    # One long-lived client, as a resource server keeps: the JWK Set cached for
    # the JWKS's max-age, each key cached by kid. And one without the per-kid
    # cache, which looks every kid up in a JWKS at most max-age old.
    cached = CountingJWKClient(jwks_url, cache_keys=True, lifespan=max_age)
    uncached = CountingJWKClient(jwks_url, cache_keys=False, lifespan=max_age)
    clients = {"cached keys": cached, "JWKS only": uncached}

    username = "rotation-" + secrets.token_hex(6)
    status, body = post_json(f"{base_url}/v1/auth/signup",
                             {"username": username, "password": STRONG_PASSWORD})
    check(status == 201, f"signup {username}: HTTP {status}: {body}")
    step(f"signed up {username}; signing in every {TICK_SECS} s for {RUN_SECS} s")

    def refused(kept: Kept, client_name: str, error: Exception, now: float) -> NoReturn:
        try:
            kids: list[str] = list(jwks_now(jwks_url)[1])
        except Exception as fetch_error:  # only for the message
            kids = [f"<JWKS fetch failed: {fetch_error}>"]
        fail(f"unexpired token #{kept.number} (kid {kept.kid}, iat {kept.iat}, exp {kept.exp}, "
             f"now {now:.3f}, {kept.exp - now:.3f} s left) refused by the {client_name!r} verifier: "
             f"{type(error).__name__}: {error}; the JWKS now holds {kids}")

    signing_kids: dict[str, float] = {}  # kid -> seconds into the run it first signed
    kept: list[Kept] = []
    first: Kept | None = None
    signins = verifications = max_kept = 0
    started = time.monotonic()
    while time.monotonic() - started < RUN_SECS:
        tick = time.monotonic()
        status, body = post_json(f"{base_url}/v1/auth/signin",
                                 {"username": username, "password": STRONG_PASSWORD})
        check(status == 200, f"signin #{signins + 1}: HTTP {status}: {body}")
        token = body.get("access_token")
        check(isinstance(token, str), f"signin #{signins + 1}: no access_token in {body}")
        signins += 1
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
        kid = header.get("kid")
        check(isinstance(kid, str) and kid, f"token #{signins}: header {header} has no kid")
        fresh = Kept(token, kid, claims["iat"], claims["exp"], signins)
        if first is None:
            first = fresh
        if kid not in signing_kids:
            signing_kids[kid] = tick - started
            step(f"{tick - started:6.2f} s: kid {kid} signs (token #{signins})")
        kept.append(fresh)

        # The fresh token always (it was just signed: its key must be
        # published), and every earlier one still more than the margin from
        # its exp.
        now = time.time()
        kept = [k for k in kept if k.exp > now + MARGIN_SECS]
        max_kept = max(max_kept, len(kept))
        for k in kept if fresh in kept else [*kept, fresh]:
            for name, client in clients.items():
                try:
                    verified = verify(k.token, client)
                except jwt.PyJWTError as error:
                    refused(k, name, error, time.time())
                check(verified.get("sub") == claims["sub"],
                      f"token #{k.number}: sub {verified.get('sub')!r}, expected {claims['sub']!r}")
                verifications += 1
        time.sleep(max(0.0, TICK_SECS - (time.monotonic() - tick)))

    kept_kids = sorted({k.kid for k in kept})
    step(f"{signins} sign-ins, {verifications} verifications, up to {max_kept} live tokens at once, "
         f"JWKS downloads: {cached.fetches} (cached keys), {uncached.fetches} (JWKS only)")
    check(len(signing_kids) >= MIN_KIDS,
          f"only {len(signing_kids)} kid(s) signed in {RUN_SECS} s ({list(signing_kids)}), "
          f"expected at least {MIN_KIDS}: did the keys rotate?")

    # --- forgeries: each must be refused by the same verifier ---------------
    assert first is not None
    genuine = fresh
    head, payload, signature = genuine.token.split(".")
    header = json.loads(unb64url(head))
    body = json.loads(unb64url(payload))
    _, published = jwks_now(jwks_url)
    check(genuine.kid in published, f"kid {genuine.kid} of a live token is not in the JWKS {list(published)}")
    jwk = published[genuine.kid]
    public_bytes = unb64url(jwk["x"])

    def encoded(part: dict[str, Any]) -> str:
        return b64url(json.dumps(part, separators=(",", ":")).encode())

    def hs256(header_part: str, payload_part: str, secret: bytes) -> str:
        mac = hmac.new(secret, f"{header_part}.{payload_part}".encode(), hashlib.sha256).digest()
        return f"{header_part}.{payload_part}.{b64url(mac)}"

    flipped = bytearray(unb64url(signature))
    flipped[0] ^= 0x01
    none_header = encoded({"alg": "none", "typ": "at+jwt", "kid": genuine.kid})
    hs_header = encoded({"alg": "HS256", "typ": "at+jwt", "kid": genuine.kid})
    forgeries: list[tuple[str, str, str]] = [
        ("a tampered signature", f"{head}.{payload}.{b64url(bytes(flipped))}", AUDIENCE),
        ("a tampered aud (another service's)",
         f"{head}.{encoded(dict(body, aud='another-service'))}.{signature}", "another-service"),
        ("a tampered sub", f"{head}.{encoded(dict(body, sub=str(uuid.uuid4())))}.{signature}", AUDIENCE),
        ("alg none", f"{none_header}.{payload}.", AUDIENCE),
        ("HS256 keyed with the public key (raw x)", hs256(hs_header, payload, public_bytes), AUDIENCE),
        ("HS256 keyed with the public key (its JWK JSON)",
         hs256(hs_header, payload, json.dumps(jwk).encode()), AUDIENCE),
        ("an unknown kid", f"{encoded(dict(header, kid='no-such-kid'))}.{payload}.{signature}", AUDIENCE),
        ("typ JWT", f"{encoded(dict(header, typ='JWT'))}.{payload}.{signature}", AUDIENCE),
        ("a crit header", f"{encoded(dict(header, crit=['exp']))}.{payload}.{signature}", AUDIENCE),
        ("a genuine token checked by another audience", genuine.token, "another-service"),
        (f"the run's first token, expired {time.time() - first.exp:.1f} s ago (leeway {LEEWAY_SECS} s)",
         first.token, AUDIENCE),
    ]
    check(time.time() > first.exp + LEEWAY_SECS + 1, "the first token is not expired past the leeway yet")
    # The genuine token itself passes, so each refusal below is the forgery's.
    verify(genuine.token, cached)
    for what, token, audience in forgeries:
        for name, client in clients.items():
            try:
                verify(token, client, audience)
            except jwt.PyJWTError as error:
                step(f"refused {what} ({name}): {type(error).__name__}: {error}")
                continue
            fail(f"{what} passed the {name!r} verifier")

    summary = ", ".join(f"{kid} from {at:.2f} s" for kid, at in signing_kids.items())
    step(f"{len(signing_kids)} kids signed: {summary}; still live at the end: {kept_kids}")
    step(f"all checks passed: {verifications} verifications of unexpired tokens, none refused; "
         f"{len(forgeries) * len(clients)} forgeries refused")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        run(sys.argv[1].rstrip("/"))
    except Mismatch as error:
        print(f"[verify rotation] FAILED: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # a crash is a failure too, with its traceback
        traceback.print_exc()
        print(f"[verify rotation] FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
