"""Ecosystem test: a Python client generated from Tessera's OpenAPI document.

Usage: python_client.py BASE_URL WORKDIR   (run with target/ecosystem/venv/bin/python)

Downloads BASE_URL/openapi.json, validates it with openapi-spec-validator,
generates a client with openapi-python-client into WORKDIR, imports it and
drives sign-up -> sign-in -> getMe -> listSessions -> refresh -> signout ->
refresh-after-signout through the generated typed functions only, then checks
that 401 and 422 answers parse into the generated problem model. Then it
changes the password (changePassword) and resets it (resetPassword) with a
token from the operator CLI, checking which sessions survive each.
Exits 0 on success, 1 with a message on the first mismatch.

The CLI step needs TESSERA_BIN (the tessera binary), TESSERA_REPO (the
repository root, its working directory) and the server's configuration as
TESSERA_ENV, TESSERA__DATABASE__URL, TESSERA__REDIS__URL and
TESSERA__REDIS__KEY_PREFIX; tests/ecosystem.rs sets them all.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import subprocess
import sys
import traceback
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

PACKAGE = "tessera_client"
STRONG_PASSWORD = "correct-Horse-battery-9-staple"
CHANGED_PASSWORD = "quiet-Lantern-river-7-orchard"
RESET_PASSWORD = "third-Lantern-river-8-orchard"
WEAK_PASSWORD = "abcabcabcabc"  # scores 45 of 100: too_weak
PROBLEMS = "https://tessera.dev/problems/"


class Mismatch(Exception):
    pass


def step(message: str) -> None:
    print(f"[python client] {message}", flush=True)


def fail(message: str) -> NoReturn:
    raise Mismatch(message)


def check(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


def fetch_document(base_url: str) -> dict[str, Any]:
    step(f"GET {base_url}/openapi.json")
    with urllib.request.urlopen(f"{base_url}/openapi.json", timeout=15) as response:
        check(response.status == 200, f"GET /openapi.json answered {response.status}")
        return json.load(response)


def validate_document(document: dict[str, Any]) -> None:
    from jsonschema_path import SchemaPath
    from openapi_spec_validator.shortcuts import get_validator_cls

    cls = get_validator_cls(document)
    step(f"validating with openapi-spec-validator ({cls.__name__})")
    errors = list(cls(SchemaPath.from_dict(document)).iter_errors())
    if errors:
        for error in errors:
            path = "/".join(str(part) for part in getattr(error, "absolute_path", []) or [])
            print(f"  validation error at /{path}: {error.message}", file=sys.stderr)
        fail(f"openapi-spec-validator reported {len(errors)} error(s)")


def generate_client(document: dict[str, Any], workdir: Path) -> None:
    spec_path = workdir / "openapi.json"
    spec_path.write_text(json.dumps(document, indent=2))
    config_path = workdir / "openapi-python-client.yaml"
    config_path.write_text(f"package_name_override: {PACKAGE}\nproject_name_override: {PACKAGE}\n")
    generator = Path(sys.executable).parent / "openapi-python-client"
    command = [
        str(generator), "generate",
        "--path", str(spec_path),
        "--config", str(config_path),
        "--meta", "none",
        "--output-path", str(workdir / PACKAGE),
        "--overwrite",
    ]
    step("generating: " + " ".join(command[1:]))
    # The generator runs the venv's ruff on its output: put the venv first on PATH.
    env = dict(os.environ, PATH=f"{generator.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    output = (result.stdout + result.stderr).strip()
    if output:
        print("\n".join("  | " + line for line in output.splitlines()))
    check(result.returncode == 0, f"openapi-python-client exited {result.returncode}")
    # A generator warning means part of the document was skipped (e.g. an
    # unsupported response content type): fail, since that is exactly what
    # this test exists to catch.
    check("Warning" not in output and "WARNING" not in output,
          "openapi-python-client warned about the document (see above)")


def expect(response: Any, status: int, model: type | None, what: str) -> Any:
    """The typed body of a response, after checking status and parsed class."""
    body = response.content.decode(errors="replace")[:500]
    check(int(response.status_code) == status,
          f"{what}: expected HTTP {status}, got {int(response.status_code)}: {body}")
    if model is None:
        check(response.parsed is None, f"{what}: expected no body, parsed {response.parsed!r}")
        return None
    check(isinstance(response.parsed, model),
          f"{what}: expected a generated {model.__name__}, got {type(response.parsed).__name__}: "
          f"{response.parsed!r} (body {body})")
    return response.parsed


def expect_problem(response: Any, status: int, code: str, problem_cls: type, what: str) -> Any:
    problem = expect(response, status, problem_cls, what)
    check(problem.status == status, f"{what}: problem.status is {problem.status}, expected {status}")
    check(problem.type_ == PROBLEMS + code,
          f"{what}: problem.type_ is {problem.type_!r}, expected {PROBLEMS + code!r}")
    content_type = response.headers.get("content-type", "")
    check(content_type.startswith("application/problem+json"),
          f"{what}: Content-Type is {content_type!r}, expected application/problem+json")
    return problem


def expect_validation(response: Any, field: str, problem_cls: type, field_error_cls: type,
                      what: str) -> list[Any]:
    """The errors of a 422 `validation` problem whose first error is about `field`."""
    problem = expect_problem(response, 422, "validation", problem_cls, what)
    errors = problem.errors
    check(isinstance(errors, list) and errors and all(isinstance(e, field_error_cls) for e in errors),
          f"{what}: expected errors: list[FieldError], got {errors!r}")
    check(errors[0].field == field, f"{what}: errors[0].field is {errors[0].field!r}, expected {field!r}")
    return errors


def issue_reset_token(username: str) -> str:
    """A reset token from the operator CLI: the last line it prints."""
    command = [os.environ["TESSERA_BIN"], "users", "reset-password", username]
    step("operator CLI: " + " ".join(command[1:]))
    try:
        result = subprocess.run(command, cwd=os.environ["TESSERA_REPO"], env=os.environ,
                                capture_output=True, check=True, timeout=60)
    except subprocess.CalledProcessError as error:
        fail(f"tessera users reset-password exited {error.returncode}: "
             f"{error.stdout.decode(errors='replace')}{error.stderr.decode(errors='replace')}")
    lines = result.stdout.decode().strip().splitlines()
    check(bool(lines), "tessera users reset-password printed nothing")
    token = lines[-1].strip()
    check(token.startswith("tsp_") and len(token) == 4 + 43,
          f"tessera users reset-password: last line {token!r} is not a tsp_ token")
    return token


def run(base_url: str, workdir: Path) -> None:
    document = fetch_document(base_url)
    validate_document(document)
    generate_client(document, workdir)

    sys.path.insert(0, str(workdir))
    importlib.invalidate_caches()
    client_mod = importlib.import_module(PACKAGE)
    models = importlib.import_module(f"{PACKAGE}.models")
    signup = importlib.import_module(f"{PACKAGE}.api.auth.signup")
    signin = importlib.import_module(f"{PACKAGE}.api.auth.signin")
    refresh = importlib.import_module(f"{PACKAGE}.api.auth.refresh")
    signout = importlib.import_module(f"{PACKAGE}.api.auth.signout")
    get_me = importlib.import_module(f"{PACKAGE}.api.account.get_me")
    list_sessions = importlib.import_module(f"{PACKAGE}.api.account.list_sessions")
    change_password = importlib.import_module(f"{PACKAGE}.api.account.change_password")
    reset_password = importlib.import_module(f"{PACKAGE}.api.auth.reset_password")
    step(f"imported generated package {PACKAGE} from {workdir}")

    Client = client_mod.Client
    AuthenticatedClient = client_mod.AuthenticatedClient
    Credentials = models.Credentials
    RefreshRequest = models.RefreshRequest
    TokenPair = models.TokenPair
    UserView = models.UserView
    SessionView = models.SessionView
    Problem = models.Problem
    FieldError = models.FieldError
    ChangePasswordRequest = models.ChangePasswordRequest
    ResetPasswordRequest = models.ResetPasswordRequest

    # Undocumented status codes raise instead of parsing to None.
    client = Client(base_url=base_url, raise_on_unexpected_status=True, timeout=30.0)

    def authed(token: str) -> Any:
        return AuthenticatedClient(base_url=base_url, token=token,
                                   raise_on_unexpected_status=True, timeout=30.0)

    username = "py-" + secrets.token_hex(6)
    credentials = Credentials(username=username, password=STRONG_PASSWORD)

    step(f"signup {username}")
    user = expect(signup.sync_detailed(client=client, body=credentials), 201, UserView, "signup")
    check(user.username == username, f"signup: username {user.username!r}, expected {username!r}")

    step("signin")
    pair = expect(signin.sync_detailed(client=client, body=credentials), 200, TokenPair, "signin")
    check(pair.token_type == "Bearer", f"signin: token_type {pair.token_type!r}")
    check(bool(pair.access_token) and bool(pair.refresh_token), "signin: empty token")
    session_id = str(pair.session_id)

    step("getMe")
    me = expect(get_me.sync_detailed(client=authed(pair.access_token)), 200, UserView, "getMe")
    check(me.username == username and str(me.id) == str(user.id),
          f"getMe: got {me.username!r}/{me.id}, expected {username!r}/{user.id}")

    step("listSessions")
    sessions = list_sessions.sync_detailed(client=authed(pair.access_token))
    check(int(sessions.status_code) == 200, f"listSessions: HTTP {int(sessions.status_code)}")
    check(isinstance(sessions.parsed, list) and all(isinstance(s, SessionView) for s in sessions.parsed),
          f"listSessions: expected list[SessionView], got {sessions.parsed!r}")
    current = [s for s in sessions.parsed if s.current]
    check(len(current) == 1 and str(current[0].id) == session_id,
          f"listSessions: expected the current session {session_id}, got {sessions.parsed!r}")

    step("refresh")
    renewed = expect(refresh.sync_detailed(client=client, body=RefreshRequest(refresh_token=pair.refresh_token)),
                     200, TokenPair, "refresh")
    check(str(renewed.session_id) == session_id,
          f"refresh: session_id {renewed.session_id}, expected {session_id}")
    check(renewed.refresh_token != pair.refresh_token, "refresh: the refresh token did not rotate")

    step("signout")
    expect(signout.sync_detailed(client=client, body=RefreshRequest(refresh_token=renewed.refresh_token)),
           204, None, "signout")

    step("refresh with the signed-out token -> 401 invalid_token")
    expect_problem(refresh.sync_detailed(client=client, body=RefreshRequest(refresh_token=renewed.refresh_token)),
                   401, "invalid_token", Problem, "refresh after signout")

    step("getMe with a bad token -> 401 invalid_token")
    expect_problem(get_me.sync_detailed(client=authed("not-a-jwt")), 401, "invalid_token", Problem,
                   "getMe with a bad token")

    step("signin with a wrong password -> 401 invalid_credentials")
    expect_problem(signin.sync_detailed(client=client, body=Credentials(username=username, password=STRONG_PASSWORD + "x")),
                   401, "invalid_credentials", Problem, "signin with a wrong password")

    step("signup with a weak password -> 422 validation (too_weak)")
    weak = Credentials(username="py-" + secrets.token_hex(6), password=WEAK_PASSWORD)
    problem = expect_problem(signup.sync_detailed(client=client, body=weak), 422, "validation", Problem,
                             "signup with a weak password")
    errors = problem.errors
    check(isinstance(errors, list) and errors and all(isinstance(e, FieldError) for e in errors),
          f"422: expected errors: list[FieldError], got {errors!r}")
    codes = {(e.field, e.code) for e in errors}
    check(("password", "too_weak") in codes, f"422: expected password/too_weak among {sorted(codes)}")

    def refreshed(refresh_token: str, what: str) -> Any:
        return expect(refresh.sync_detailed(client=client, body=RefreshRequest(refresh_token=refresh_token)),
                      200, TokenPair, what)

    def refresh_rejected(refresh_token: str, what: str) -> None:
        expect_problem(refresh.sync_detailed(client=client, body=RefreshRequest(refresh_token=refresh_token)),
                       401, "invalid_token", Problem, what)

    # --- changePassword: the calling session survives, every other one ends.
    step("signin twice: the session that changes the password and another one")
    caller = expect(signin.sync_detailed(client=client, body=credentials), 200, TokenPair, "signin (caller)")
    other = expect(signin.sync_detailed(client=client, body=credentials), 200, TokenPair, "signin (other)")

    def change(current: str, new: str) -> Any:
        return change_password.sync_detailed(
            client=authed(caller.access_token),
            body=ChangePasswordRequest(current_password=current, new_password=new))

    step("changePassword with a wrong current password -> 401 invalid_credentials")
    expect_problem(change(STRONG_PASSWORD + "x", CHANGED_PASSWORD), 401, "invalid_credentials", Problem,
                   "changePassword with a wrong current password")

    step("changePassword to a weak password -> 422 validation (new_password)")
    errors = expect_validation(change(STRONG_PASSWORD, WEAK_PASSWORD), "new_password", Problem, FieldError,
                               "changePassword to a weak password")
    check(errors[0].code == "too_weak", f"changePassword to a weak password: code {errors[0].code!r}")

    step("changePassword to the same password -> 422 validation (unchanged)")
    errors = expect_validation(change(STRONG_PASSWORD, STRONG_PASSWORD), "new_password", Problem, FieldError,
                               "changePassword to the same password")
    check(errors[0].code == "unchanged", f"changePassword to the same password: code {errors[0].code!r}")

    step("changePassword -> 204")
    expect(change(STRONG_PASSWORD, CHANGED_PASSWORD), 204, None, "changePassword")

    step("refresh the calling session -> 200; the other session -> 401 invalid_token")
    caller = refreshed(caller.refresh_token, "refresh of the calling session after changePassword")
    refresh_rejected(other.refresh_token, "refresh of another session after changePassword")

    step("signin with the old password -> 401, with the new one -> 200")
    expect_problem(signin.sync_detailed(client=client, body=credentials), 401, "invalid_credentials", Problem,
                   "signin with the old password after changePassword")
    expect(signin.sync_detailed(client=client, body=Credentials(username=username, password=CHANGED_PASSWORD)),
           200, TokenPair, "signin with the changed password")

    # --- resetPassword with a token from the operator CLI: every session ends.
    reset_token = issue_reset_token(username)

    def reset(new: str) -> Any:
        return reset_password.sync_detailed(
            client=client, body=ResetPasswordRequest(reset_token=reset_token, new_password=new))

    step("resetPassword to a weak password -> 422 validation (new_password)")
    expect_validation(reset(WEAK_PASSWORD), "new_password", Problem, FieldError, "resetPassword to a weak password")

    step("resetPassword (the same token, still usable after the 422) -> 204")
    expect(reset(RESET_PASSWORD), 204, None, "resetPassword")

    step("resetPassword with the spent token -> 401 invalid_token")
    expect_problem(reset(RESET_PASSWORD), 401, "invalid_token", Problem, "resetPassword with the spent token")

    step("signin with the reset password -> 200; the session from before the reset -> 401 on refresh")
    expect(signin.sync_detailed(client=client, body=Credentials(username=username, password=RESET_PASSWORD)),
           200, TokenPair, "signin with the reset password")
    refresh_rejected(caller.refresh_token, "refresh of a session from before the reset")

    step("all checks passed")


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    base_url = sys.argv[1].rstrip("/")
    workdir = Path(sys.argv[2]).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        run(base_url, workdir)
    except Mismatch as error:
        print(f"[python client] FAILED: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # a crash is a failure too, with its traceback
        traceback.print_exc()
        print(f"[python client] FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
