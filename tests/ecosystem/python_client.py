"""Ecosystem test: a Python client generated from Tessera's OpenAPI document.

Usage: python_client.py BASE_URL WORKDIR   (run with target/ecosystem/venv/bin/python)

Downloads BASE_URL/openapi.json, validates it with openapi-spec-validator,
generates a client with openapi-python-client into WORKDIR, imports it and
drives sign-up -> sign-in -> getMe -> listSessions -> refresh -> signout ->
refresh-after-signout through the generated typed functions only, then checks
that 401 and 422 answers parse into the generated problem model. Then it
changes the password (changePassword) and resets it (resetPassword) with a
token from the operator CLI, checking which sessions survive each. Last, the
second factor: TOTP enrolment checked with pyotp (an independent RFC 6238
implementation), confirmation, the two-step sign-in (202 + signinMfa) with a
TOTP code and with recovery codes, the `amr` of the access tokens, and
disabling TOTP again. Then, for resource servers, introspectToken with the
HTTP Basic credentials of an introspection client (live access and refresh
tokens, 401 invalid_client, 400 invalid_request) and revokeToken, after which
both tokens introspect as exactly {"active": false} and refresh gives 401.
Then the admin API (/v1/admin) with an admin token from
the CLI: create, conflict, prefix-filtered pagination, limit validation,
get, disable/enable, an admin-issued password reset, token cross-checks, the
security events (adminListEvents by user, by type, paged with limit=1, with
`since` in the future and limit=0; listMyEvents of a new user, including an
asynchronously written failed sign-in, and its 401s) and delete.
Exits 0 on success, 1 with a message on the first mismatch.

The CLI steps need TESSERA_BIN (the tessera binary), TESSERA_REPO (the
repository root, its working directory) and the server's configuration as
TESSERA_ENV, TESSERA__DATABASE__URL, TESSERA__REDIS__URL and
TESSERA__REDIS__KEY_PREFIX. The introspection steps need
TESSERA_INTROSPECTION_CLIENT (`id:secret` of a client the server lists in
`introspection.clients`). tests/ecosystem.rs sets them all.
"""

from __future__ import annotations

import base64
import datetime
import importlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
import traceback
import uuid
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

PACKAGE = "tessera_client"
STRONG_PASSWORD = "correct-Horse-battery-9-staple"
CHANGED_PASSWORD = "quiet-Lantern-river-7-orchard"
RESET_PASSWORD = "third-Lantern-river-8-orchard"
WEAK_PASSWORD = "abcabcabcabc"  # scores 45 of 100: too_weak
PROBLEMS = "https://tessera.dev/problems/"
RECOVERY_CODE = re.compile(r"^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){3}$")


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


def create_admin_token(name: str) -> str:
    """An admin token from the operator CLI: the last line it prints."""
    command = [os.environ["TESSERA_BIN"], "admin-tokens", "create", name]
    step("operator CLI: " + " ".join(command[1:]))
    try:
        result = subprocess.run(command, cwd=os.environ["TESSERA_REPO"], env=os.environ,
                                capture_output=True, check=True, timeout=60)
    except subprocess.CalledProcessError as error:
        fail(f"tessera admin-tokens create exited {error.returncode}: "
             f"{error.stdout.decode(errors='replace')}{error.stderr.decode(errors='replace')}")
    lines = result.stdout.decode().strip().splitlines()
    check(bool(lines), "tessera admin-tokens create printed nothing")
    token = lines[-1].strip()
    check(token.startswith("tsa_") and len(token) > 4 and " " not in token,
          f"tessera admin-tokens create: last line {token!r} is not a tsa_ token")
    return token


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, decoded without verifying it."""
    parts = token.split(".")
    check(len(parts) == 3, f"access token has {len(parts)} parts, expected 3")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def check_amr(access_token: str, expected: set[str], what: str) -> dict[str, Any]:
    claims = jwt_claims(access_token)
    amr = claims.get("amr")
    check(isinstance(amr, list) and set(amr) == expected and len(amr) == len(expected),
          f"{what}: amr is {amr!r}, expected {sorted(expected)}")
    check(claims.get("client_id") == "tessera", f"{what}: client_id is {claims.get('client_id')!r}")
    auth_time = claims.get("auth_time")
    check(isinstance(auth_time, int) and not isinstance(auth_time, bool),
          f"{what}: auth_time is {auth_time!r}, expected an int")
    return claims


def wrong_code(base: str, right_codes: set[str]) -> str:
    """`base` with one digit changed, and none of `right_codes` (the codes of nearby steps)."""
    for position in range(len(base)):
        for digit in "0123456789":
            candidate = base[:position] + digit + base[position + 1:]
            if candidate not in right_codes:
                return candidate
    fail("no wrong code found")


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
    signin_mfa = importlib.import_module(f"{PACKAGE}.api.auth.signin_mfa")
    start_totp_enrollment = importlib.import_module(f"{PACKAGE}.api.account.start_totp_enrollment")
    confirm_totp = importlib.import_module(f"{PACKAGE}.api.account.confirm_totp")
    disable_totp = importlib.import_module(f"{PACKAGE}.api.account.disable_totp")
    admin_list_users = importlib.import_module(f"{PACKAGE}.api.admin.admin_list_users")
    admin_create_user = importlib.import_module(f"{PACKAGE}.api.admin.admin_create_user")
    admin_get_user = importlib.import_module(f"{PACKAGE}.api.admin.admin_get_user")
    admin_disable_user = importlib.import_module(f"{PACKAGE}.api.admin.admin_disable_user")
    admin_enable_user = importlib.import_module(f"{PACKAGE}.api.admin.admin_enable_user")
    admin_issue_password_reset = importlib.import_module(f"{PACKAGE}.api.admin.admin_issue_password_reset")
    admin_delete_user = importlib.import_module(f"{PACKAGE}.api.admin.admin_delete_user")
    admin_list_events = importlib.import_module(f"{PACKAGE}.api.admin.admin_list_events")
    list_my_events = importlib.import_module(f"{PACKAGE}.api.account.list_my_events")
    introspect_token = importlib.import_module(f"{PACKAGE}.api.resource_servers.introspect_token")
    revoke_token = importlib.import_module(f"{PACKAGE}.api.resource_servers.revoke_token")
    UNSET = importlib.import_module(f"{PACKAGE}.types").UNSET
    step(f"imported generated package {PACKAGE} from {workdir}")

    Client = client_mod.Client
    AuthenticatedClient = client_mod.AuthenticatedClient
    Credentials = models.Credentials
    RefreshRequest = models.RefreshRequest
    TokenPair = models.TokenPair
    UserView = models.UserView
    MeView = models.MeView
    SessionView = models.SessionView
    Problem = models.Problem
    FieldError = models.FieldError
    ChangePasswordRequest = models.ChangePasswordRequest
    ResetPasswordRequest = models.ResetPasswordRequest
    PasswordConfirmation = models.PasswordConfirmation
    TotpEnrollment = models.TotpEnrollment
    CodeConfirmation = models.CodeConfirmation
    RecoveryCodes = models.RecoveryCodes
    MfaChallengeView = models.MfaChallengeView
    SigninMfaRequest = models.SigninMfaRequest
    PasswordAndCode = models.PasswordAndCode
    AdminUser = models.AdminUser
    AdminUsers = models.AdminUsers
    AdminCreateUserRequest = models.AdminCreateUserRequest
    IssuedPasswordReset = models.IssuedPasswordReset
    Event = models.Event
    EventActor = models.EventActor
    EventsPage = models.EventsPage
    TokenForm = models.TokenForm
    IntrospectionResult = models.IntrospectionResult

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
    me = expect(get_me.sync_detailed(client=authed(pair.access_token)), 200, MeView, "getMe")
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
    final = Credentials(username=username, password=RESET_PASSWORD)
    current = expect(signin.sync_detailed(client=client, body=final), 200, TokenPair,
                     "signin with the reset password")
    refresh_rejected(caller.refresh_token, "refresh of a session from before the reset")

    # --- The second factor: TOTP, checked with pyotp, and recovery codes.
    import pyotp

    def me_now(token: str, what: str) -> Any:
        return expect(get_me.sync_detailed(client=authed(token)), 200, MeView, what)

    step("getMe -> mfa_enabled false, recovery_codes_left null")
    me = me_now(current.access_token, "getMe before TOTP")
    check(me.mfa_enabled is False, f"getMe before TOTP: mfa_enabled {me.mfa_enabled!r}")
    check(me.recovery_codes_left is None,
          f"getMe before TOTP: recovery_codes_left {me.recovery_codes_left!r}, expected None")
    check_amr(current.access_token, {"pwd"}, "access token of a password sign-in")

    step("startTotpEnrollment -> 200 TotpEnrollment; the otpauth URI checked with pyotp")
    enrollment = expect(
        start_totp_enrollment.sync_detailed(client=authed(current.access_token),
                                            body=PasswordConfirmation(password=RESET_PASSWORD)),
        200, TotpEnrollment, "startTotpEnrollment")
    check(re.fullmatch(r"[A-Z2-7]{32}", enrollment.secret) is not None,
          f"startTotpEnrollment: secret {enrollment.secret!r} is not 32 upper-case base32 characters")
    totp = pyotp.parse_uri(enrollment.otpauth_uri)
    check(isinstance(totp, pyotp.TOTP), f"otpauth_uri: pyotp parsed a {type(totp).__name__}, expected TOTP")
    check(totp.secret == enrollment.secret,
          f"otpauth_uri: secret {totp.secret!r}, expected {enrollment.secret!r}")
    check(totp.issuer == "Tessera", f"otpauth_uri: issuer {totp.issuer!r}")
    check(totp.name == username, f"otpauth_uri: name {totp.name!r}, expected {username!r}")
    check(totp.digits == 6 and totp.interval == 30,
          f"otpauth_uri: digits {totp.digits}, interval {totp.interval}")
    check(totp.digest().name == "sha1", f"otpauth_uri: digest {totp.digest().name}")

    def code_at(step_number: int) -> str:
        return totp.at(step_number * totp.interval)

    def confirm(code: str) -> Any:
        return confirm_totp.sync_detailed(client=authed(current.access_token),
                                          body=CodeConfirmation(code=code))

    # The step the codes are computed for; later TOTP checks use a later step
    # (the server takes each step once).
    confirm_step = int(time.time()) // totp.interval
    step("confirmTotp with a wrong code -> 422 validation (code/invalid_code)")
    bad = wrong_code(code_at(confirm_step), {code_at(confirm_step + delta) for delta in (-1, 0, 1, 2)})
    errors = expect_validation(confirm(bad), "code", Problem, FieldError, "confirmTotp with a wrong code")
    check(errors[0].code == "invalid_code", f"confirmTotp with a wrong code: code {errors[0].code!r}")

    step("confirmTotp with the current code -> 200, 10 recovery codes")
    codes = expect(confirm(code_at(confirm_step)), 200, RecoveryCodes, "confirmTotp").recovery_codes
    check(isinstance(codes, list) and len(codes) == 10 and len(set(codes)) == 10,
          f"confirmTotp: expected 10 distinct recovery codes, got {codes!r}")
    check(all(isinstance(c, str) and RECOVERY_CODE.fullmatch(c) for c in codes),
          f"confirmTotp: recovery codes not xxxx-xxxx-xxxx-xxxx Crockford base32: {codes!r}")

    step("getMe -> mfa_enabled true, recovery_codes_left 10")
    me = me_now(current.access_token, "getMe after confirmTotp")
    check(me.mfa_enabled is True and me.recovery_codes_left == 10,
          f"getMe after confirmTotp: mfa_enabled {me.mfa_enabled!r}, recovery_codes_left {me.recovery_codes_left!r}")

    def challenged(what: str) -> Any:
        response = signin.sync_detailed(client=client, body=final)
        challenge = expect(response, 202, MfaChallengeView, what)
        check(isinstance(challenge.mfa_token, str) and challenge.mfa_token.startswith("tsm_"),
              f"{what}: mfa_token {challenge.mfa_token!r} is not a tsm_ token")
        check(isinstance(challenge.expires_in, int) and 1 <= challenge.expires_in <= 300,
              f"{what}: expires_in {challenge.expires_in!r}, expected 1..300")
        check("totp" in challenge.methods and "recovery_code" in challenge.methods,
              f"{what}: methods {challenge.methods!r}")
        check("set-cookie" not in response.headers,
              f"{what}: a 202 set a cookie: {response.headers.get('set-cookie')!r}")
        return challenge

    def second_step(mfa_token: str, code: str) -> Any:
        return signin_mfa.sync_detailed(client=client, body=SigninMfaRequest(mfa_token=mfa_token, code=code))

    step("signin -> 202 MfaChallengeView (no tokens, no cookie)")
    challenge = challenged("signin with TOTP on")

    step("signinMfa with a wrong code -> 401 invalid_credentials")
    bad = wrong_code(code_at(confirm_step), {code_at(confirm_step + delta) for delta in (-1, 0, 1, 2)})
    expect_problem(second_step(challenge.mfa_token, bad), 401, "invalid_credentials", Problem,
                   "signinMfa with a wrong code")

    step("signinMfa with the next step's TOTP code -> 200; amr pwd+otp+mfa")
    response = second_step(challenge.mfa_token, code_at(confirm_step + 1))
    current = expect(response, 200, TokenPair, "signinMfa with a TOTP code")
    check("set-cookie" in response.headers, "signinMfa: the 200 set no refresh cookie")
    check(current.token_type == "Bearer", f"signinMfa: token_type {current.token_type!r}")
    check_amr(current.access_token, {"pwd", "otp", "mfa"}, "access token after a TOTP code")

    # With an unused recovery code: a dead token must not spend it (#1 is used next).
    step("signinMfa with the spent mfa_token -> 401 invalid_token")
    expect_problem(second_step(challenge.mfa_token, codes[0]), 401, "invalid_token", Problem,
                   "signinMfa with a spent mfa_token")

    step("signin -> 202; signinMfa with recovery code #1 -> 200; amr pwd+mfa; 9 left")
    challenge = challenged("second signin with TOTP on")
    current = expect(second_step(challenge.mfa_token, codes[0]), 200, TokenPair,
                     "signinMfa with a recovery code")
    check_amr(current.access_token, {"pwd", "mfa"}, "access token after a recovery code")
    me = me_now(current.access_token, "getMe after a recovery code")
    check(me.mfa_enabled is True and me.recovery_codes_left == 9,
          f"getMe after a recovery code: mfa_enabled {me.mfa_enabled!r}, "
          f"recovery_codes_left {me.recovery_codes_left!r}, expected 9")

    step("signin -> 202; signinMfa with the used recovery code #1 -> 401 invalid_credentials")
    challenge = challenged("third signin with TOTP on")
    expect_problem(second_step(challenge.mfa_token, codes[0]), 401, "invalid_credentials", Problem,
                   "signinMfa with a used recovery code")

    step("disableTotp with the password and recovery code #2 -> 204")
    expect(disable_totp.sync_detailed(client=authed(current.access_token),
                                      body=PasswordAndCode(password=RESET_PASSWORD, code=codes[1])),
           204, None, "disableTotp")

    step("signin -> 200 TokenPair again; getMe -> mfa_enabled false")
    current = expect(signin.sync_detailed(client=client, body=final), 200, TokenPair,
                     "signin after disableTotp")
    check_amr(current.access_token, {"pwd"}, "access token after disableTotp")
    me = me_now(current.access_token, "getMe after disableTotp")
    check(me.mfa_enabled is False and me.recovery_codes_left is None,
          f"getMe after disableTotp: mfa_enabled {me.mfa_enabled!r}, "
          f"recovery_codes_left {me.recovery_codes_left!r}, expected None")

    # --- For resource servers: introspectToken (RFC 7662) with the HTTP Basic
    # credentials of the introspection client tests/ecosystem.rs configured,
    # and revokeToken (RFC 7009), on the tokens of the session above. The
    # generated functions send TokenForm as application/x-www-form-urlencoded;
    # Basic goes through the generated AuthenticatedClient with prefix="Basic".
    client_id, _, client_secret = os.environ.get("TESSERA_INTROSPECTION_CLIENT", "").partition(":")
    check(bool(client_id) and bool(client_secret),
          "TESSERA_INTROSPECTION_CLIENT is not set to id:secret (tests/ecosystem.rs sets it)")

    def basic(client_id: str, secret: str) -> Any:
        encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        return AuthenticatedClient(base_url=base_url, token=encoded, prefix="Basic",
                                   raise_on_unexpected_status=True, timeout=30.0)

    resource_server = basic(client_id, client_secret)

    def introspect(token: Any, via: Any = None, hint: Any = UNSET) -> Any:
        return introspect_token.sync_detailed(client=via or resource_server,
                                              body=TokenForm(token=token, token_type_hint=hint))

    def introspected(response: Any, kind: str, keys: set[str], what: str) -> Any:
        """A typed 200 IntrospectionResult of a live token of `kind`, with exactly `keys`."""
        result = expect(response, 200, IntrospectionResult, what)
        check(result.active is True, f"{what}: active {result.active!r}, expected True")
        check(result.tessera_token_kind == kind,
              f"{what}: tessera_token_kind {result.tessera_token_kind!r}, expected {kind!r}")
        check(set(result.to_dict()) == keys,
              f"{what}: members {sorted(result.to_dict())}, expected {sorted(keys)}")
        check(str(result.sub) == str(me.id), f"{what}: sub {result.sub}, expected the user's id {me.id}")
        check(str(result.sid) == str(current.session_id),
              f"{what}: sid {result.sid}, expected the session {current.session_id}")
        check(result.username == username, f"{what}: username {result.username!r}, expected {username!r}")
        check(isinstance(result.exp, int) and result.exp > time.time(),
              f"{what}: exp {result.exp!r} is not in the future")
        return result

    def inactive(response: Any, what: str) -> None:
        """A typed 200 IntrospectionResult that is exactly {"active": false}."""
        result = expect(response, 200, IntrospectionResult, what)
        check(result.active is False and result.to_dict() == {"active": False},
              f"{what}: {result.to_dict()!r}, expected exactly {{'active': False}}")
        check(json.loads(response.content) == {"active": False},
              f"{what}: body {response.content!r}, expected exactly {{\"active\": false}}")

    def invalid_client(response: Any, what: str) -> None:
        problem = expect_problem(response, 401, "invalid_client", Problem, what)
        check(problem.error == "invalid_client", f"{what}: error {problem.error!r}, expected 'invalid_client'")
        challenge_header = response.headers.get("www-authenticate", "")
        check(challenge_header.startswith("Basic"),
              f"{what}: WWW-Authenticate {challenge_header!r}, expected Basic")

    def invalid_request(response: Any, what: str) -> None:
        problem = expect_problem(response, 400, "malformed_request", Problem, what)
        check(problem.error == "invalid_request", f"{what}: error {problem.error!r}, expected 'invalid_request'")

    def revoked(response: Any, what: str) -> None:
        expect(response, 200, None, what)
        check(response.content == b"", f"{what}: body {response.content!r}, expected empty")

    access_keys = {"active", "token_type", "tessera_token_kind", "sub", "sid", "username", "client_id",
                   "exp", "iat", "iss", "aud", "jti", "auth_time", "amr"}
    refresh_keys = {"active", "tessera_token_kind", "sub", "sid", "username", "exp"}

    step(f"introspectToken as {client_id} on the access token -> active access_token of the user")
    result = introspected(introspect(current.access_token), "access_token", access_keys,
                          "introspectToken on an access token")
    claims = jwt_claims(current.access_token)
    check(result.token_type == "Bearer", f"introspectToken on an access token: token_type {result.token_type!r}")
    check(result.client_id == "tessera", f"introspectToken on an access token: client_id {result.client_id!r}")
    check(isinstance(result.amr, list) and "pwd" in result.amr,
          f"introspectToken on an access token: amr {result.amr!r}, expected it to include 'pwd'")
    for name in ("exp", "iat", "iss", "aud", "auth_time", "amr"):
        check(getattr(result, name) == claims.get(name),
              f"introspectToken on an access token: {name} {getattr(result, name)!r}, "
              f"the token says {claims.get(name)!r}")
    check(str(result.jti) == claims.get("jti"),
          f"introspectToken on an access token: jti {result.jti}, the token says {claims.get('jti')!r}")

    step("introspectToken on the refresh token (token_type_hint access_token, ignored) -> active refresh_token")
    introspected(introspect(current.refresh_token, hint="access_token"), "refresh_token", refresh_keys,
                 "introspectToken on a refresh token")

    step("introspectToken without credentials / with a wrong secret -> 401 invalid_client")
    invalid_client(introspect(current.access_token, via=client), "introspectToken without credentials")
    invalid_client(introspect(current.access_token, via=basic(client_id, "wrong-" + client_secret)),
                   "introspectToken with a wrong secret")

    step("introspectToken without token -> 400 invalid_request")
    invalid_request(introspect(UNSET), "introspectToken without token")

    step("refresh; introspectToken on the previous refresh token -> {active: false}, on the new one -> active")
    previous = current.refresh_token
    current = refreshed(current.refresh_token, "refresh before revokeToken")
    inactive(introspect(previous), "introspectToken on the previous refresh token")
    introspected(introspect(current.refresh_token), "refresh_token", refresh_keys,
                 "introspectToken on the rotated refresh token")

    step("revokeToken with the refresh token (no client credentials) -> 200, empty body")
    revoked(revoke_token.sync_detailed(client=client,
                                       body=TokenForm(token=current.refresh_token, token_type_hint="refresh_token")),
            "revokeToken with a refresh token")

    step("introspectToken on its access and refresh tokens -> exactly {active: false}; refresh -> 401")
    inactive(introspect(current.access_token), "introspectToken on the access token of a revoked session")
    inactive(introspect(current.refresh_token), "introspectToken on a revoked refresh token")
    refresh_rejected(current.refresh_token, "refresh with a revoked refresh token")

    step("revokeToken of garbage -> 200 (with the client's credentials too); wrong secret -> 401; no token -> 400")
    revoked(revoke_token.sync_detailed(client=client, body=TokenForm(token="not-a-token")),
            "revokeToken of garbage")
    revoked(revoke_token.sync_detailed(client=resource_server, body=TokenForm(token="not-a-token")),
            "revokeToken of garbage as the introspection client")
    invalid_client(revoke_token.sync_detailed(client=basic(client_id, "wrong-" + client_secret),
                                              body=TokenForm(token="not-a-token")),
                   "revokeToken with a wrong secret")
    invalid_request(revoke_token.sync_detailed(client=client, body=TokenForm()), "revokeToken without token")
    inactive(introspect("not-a-token"), "introspectToken on garbage")

    # --- The admin API, with an admin token from the operator CLI.
    admin_token_name = "py-eco-" + secrets.token_hex(6)
    admin_token = create_admin_token(admin_token_name)
    admin = authed(admin_token)
    prefix = "pa" + secrets.token_hex(4) + "-"

    def admin_create(name: str, password: str = STRONG_PASSWORD) -> Any:
        return admin_create_user.sync_detailed(
            client=admin, body=AdminCreateUserRequest(username=name, password=password))

    def created(name: str) -> Any:
        made = expect(admin_create(name), 201, AdminUser, f"adminCreateUser {name}")
        check(made.username == name, f"adminCreateUser: username {made.username!r}, expected {name!r}")
        check(made.disabled is False and made.disabled_at is None and made.mfa_enabled is False,
              f"adminCreateUser {name}: disabled {made.disabled!r}, disabled_at {made.disabled_at!r}, "
              f"mfa_enabled {made.mfa_enabled!r}")
        check(made.password_changed_at is None and made.last_signin_at is None,
              f"adminCreateUser {name}: password_changed_at {made.password_changed_at!r}, "
              f"last_signin_at {made.last_signin_at!r}, expected None")
        check(isinstance(made.id, uuid.UUID), f"adminCreateUser {name}: id {made.id!r} is not a UUID")
        return made

    def admin_get(user_id: Any, token: Any = None) -> Any:
        return admin_get_user.sync_detailed(user_id, client=token or admin)

    def admin_signin(name: str, password: str) -> Any:
        return signin.sync_detailed(client=client, body=Credentials(username=name, password=password))

    step(f"adminCreateUser x3 (prefix {prefix}) -> 201 AdminUser")
    made = [created(prefix + suffix) for suffix in ("one", "two", "three")]

    step("adminCreateUser with a taken username -> 409 conflict")
    expect_problem(admin_create(made[0].username), 409, "conflict", Problem,
                   "adminCreateUser with a taken username")

    step("adminListUsers limit=2 by username_prefix, following next; one more user after page 1")
    listed: list[Any] = []
    after: Any = UNSET
    pages = 0
    while True:
        page = expect(admin_list_users.sync_detailed(client=admin, after=after, limit=2, username_prefix=prefix),
                      200, AdminUsers, f"adminListUsers page {pages + 1}")
        pages += 1
        check(isinstance(page.users, list) and all(isinstance(u, AdminUser) for u in page.users),
              f"adminListUsers page {pages}: expected list[AdminUser], got {page.users!r}")
        check(1 <= len(page.users) <= 2, f"adminListUsers page {pages}: {len(page.users)} users, limit 2")
        listed.extend(page.users)
        if pages == 1:
            made.append(created(prefix + "four"))
        if page.next_ is None:
            break
        check(isinstance(page.next_, str), f"adminListUsers page {pages}: next {page.next_!r} is not a string")
        check(page.next_ == str(page.users[-1].id),
              f"adminListUsers page {pages}: next {page.next_!r}, expected the last id {page.users[-1].id}")
        check(pages < 10, "adminListUsers: more than 10 pages for 4 users")
        after = uuid.UUID(page.next_)
    expected_ids = [str(u.id) for u in sorted(made, key=lambda u: u.id)]
    listed_ids = [str(u.id) for u in listed]
    check(listed_ids == expected_ids,
          f"adminListUsers: listed {[u.username for u in listed]} ({listed_ids}), "
          f"expected {[u.username for u in sorted(made, key=lambda u: u.id)]} ({expected_ids}) in ascending id")
    check(pages == 2, f"adminListUsers: {pages} pages for 4 users at limit 2, expected 2")

    step("adminListUsers limit=0 -> 422 validation (limit/out_of_range)")
    errors = expect_validation(admin_list_users.sync_detailed(client=admin, limit=0), "limit", Problem, FieldError,
                               "adminListUsers limit=0")
    check(errors[0].code == "out_of_range", f"adminListUsers limit=0: code {errors[0].code!r}")

    target = made[0]
    step(f"adminGetUser {target.username} -> 200 AdminUser")
    got = expect(admin_get(target.id), 200, AdminUser, "adminGetUser")
    check(got.id == target.id and got.username == target.username,
          f"adminGetUser: got {got.username!r}/{got.id}, expected {target.username!r}/{target.id}")

    step("signin as that user; adminDisableUser -> 204; signin -> 401; its session -> 401 on refresh")
    before = expect(admin_signin(target.username, STRONG_PASSWORD), 200, TokenPair, "signin of an admin-made user")
    expect(admin_disable_user.sync_detailed(target.id, client=admin), 204, None, "adminDisableUser")
    expect_problem(admin_signin(target.username, STRONG_PASSWORD), 401, "invalid_credentials", Problem,
                   "signin of a disabled user")
    refresh_rejected(before.refresh_token, "refresh of a session of a disabled user")
    got = expect(admin_get(target.id), 200, AdminUser, "adminGetUser after adminDisableUser")
    check(got.disabled is True and got.disabled_at is not None,
          f"adminGetUser after adminDisableUser: disabled {got.disabled!r}, disabled_at {got.disabled_at!r}")
    check(got.last_signin_at is not None, "adminGetUser after a signin: last_signin_at is None")

    step("adminEnableUser -> 204; signin -> 200")
    expect(admin_enable_user.sync_detailed(target.id, client=admin), 204, None, "adminEnableUser")
    got = expect(admin_get(target.id), 200, AdminUser, "adminGetUser after adminEnableUser")
    check(got.disabled is False and got.disabled_at is None,
          f"adminGetUser after adminEnableUser: disabled {got.disabled!r}, disabled_at {got.disabled_at!r}")
    expect(admin_signin(target.username, STRONG_PASSWORD), 200, TokenPair, "signin after adminEnableUser")

    step("adminIssuePasswordReset -> 200; resetPassword with it -> 204; the new password signs in")
    issued = expect(admin_issue_password_reset.sync_detailed(target.id, client=admin), 200, IssuedPasswordReset,
                    "adminIssuePasswordReset")
    check(re.fullmatch(r"tsp_[A-Za-z0-9_-]{43}", issued.reset_token) is not None,
          f"adminIssuePasswordReset: reset_token {issued.reset_token!r} is not a tsp_ token")
    check(isinstance(issued.expires_in, int) and issued.expires_in > 0,
          f"adminIssuePasswordReset: expires_in {issued.expires_in!r}")
    expect(reset_password.sync_detailed(
        client=client, body=ResetPasswordRequest(reset_token=issued.reset_token, new_password=CHANGED_PASSWORD)),
        204, None, "resetPassword with an admin-issued token")
    expect_problem(admin_signin(target.username, STRONG_PASSWORD), 401, "invalid_credentials", Problem,
                   "signin with the password from before the admin reset")
    user_pair = expect(admin_signin(target.username, CHANGED_PASSWORD), 200, TokenPair,
                       "signin with the admin-reset password")
    got = expect(admin_get(target.id), 200, AdminUser, "adminGetUser after the reset")
    check(got.password_changed_at is not None, "adminGetUser after the reset: password_changed_at is None")

    step("a user's access token on adminGetUser -> 401 invalid_token; the admin token on getMe -> 401")
    expect_problem(admin_get(target.id, authed(user_pair.access_token)), 401, "invalid_token", Problem,
                   "adminGetUser with a user's access token")
    expect_problem(get_me.sync_detailed(client=admin), 401, "invalid_token", Problem,
                   "getMe with an admin token")

    # --- Security events: adminListEvents on the users above, listMyEvents on a new one.
    def events_page(response: Any, what: str) -> Any:
        """A typed 200 EventsPage: Event / EventActor models, UUID ids, aware `at`, newest first."""
        page = expect(response, 200, EventsPage, what)
        check(isinstance(page.events, list) and all(isinstance(e, Event) for e in page.events),
              f"{what}: expected list[Event], got {page.events!r}")
        for event in page.events:
            check(isinstance(event.id, uuid.UUID), f"{what}: id {event.id!r} is not a UUID")
            check(isinstance(event.at, datetime.datetime) and event.at.tzinfo is not None,
                  f"{what}: at {event.at!r} is not an RFC 3339 date-time with an offset")
            check(isinstance(event.type_, str) and event.type_, f"{what}: type {event.type_!r}")
            check(isinstance(event.actor, EventActor) and isinstance(event.actor.kind, str),
                  f"{what}: actor {event.actor!r} is not an EventActor")
        ats = [e.at for e in page.events]
        check(all(a >= b for a, b in zip(ats, ats[1:])),
              f"{what}: not newest first: {[(e.type_, e.at.isoformat()) for e in page.events]}")
        # The document leaves `next` optional; the server always sends it (a cursor or null).
        check(page.next_ is None or isinstance(page.next_, str),
              f"{what}: next {page.next_!r} is neither a string nor null")
        return page

    def admin_events(what: str, **query: Any) -> Any:
        return events_page(admin_list_events.sync_detailed(client=admin, **query), what)

    def types_of(events: list[Any]) -> list[str]:
        return [e.type_ for e in events]

    step(f"adminListEvents user_id={target.username} -> user.created/disabled/enabled "
         f"by admin_token {admin_token_name!r}, newest first")
    page = admin_events("adminListEvents by user_id", user_id=target.id, limit=200)
    check(page.next_ is None, f"adminListEvents by user_id: next {page.next_!r} on a page of "
                              f"{len(page.events)} events at limit 200")
    check(all(e.user_id == target.id for e in page.events),
          f"adminListEvents by user_id: events of other users: {[(e.type_, e.user_id) for e in page.events]}")
    admin_made: dict[str, Any] = {}
    for kind in ("user.created", "user.disabled", "user.enabled"):
        found = [e for e in page.events if e.type_ == kind]
        check(len(found) == 1, f"adminListEvents by user_id: {len(found)} {kind} events, expected 1, "
                               f"in {types_of(page.events)}")
        event = found[0]
        check(event.actor.kind == "admin_token" and event.actor.name == admin_token_name,
              f"adminListEvents by user_id: {kind} actor {event.actor.kind!r}/{event.actor.name!r}, "
              f"expected 'admin_token'/{admin_token_name!r}")
        admin_made[kind] = event
    order = types_of(page.events)
    check(order.index("user.enabled") < order.index("user.disabled") < order.index("user.created"),
          f"adminListEvents by user_id: expected user.enabled before user.disabled before user.created "
          f"(newest first), got {order}")
    check(admin_made["user.enabled"].at >= admin_made["user.disabled"].at >= admin_made["user.created"].at,
          f"adminListEvents by user_id: at not newest first: "
          f"{[(k, e.at.isoformat()) for k, e in admin_made.items()]}")

    step("adminListEvents type=user.disabled&type=user.enabled -> only those types")
    wanted = ["user.disabled", "user.enabled"]
    page = admin_events("adminListEvents by two types", type_=wanted, limit=200)
    check(page.events and all(e.type_ in wanted for e in page.events),
          f"adminListEvents by two types: got types {sorted(set(types_of(page.events)))}, expected only {wanted}")
    typed_ids = {e.id for e in page.events}
    check(admin_made["user.disabled"].id in typed_ids and admin_made["user.enabled"].id in typed_ids,
          f"adminListEvents by two types: the target's user.disabled/user.enabled events are missing "
          f"from {types_of(page.events)}")

    step("adminListEvents by user_id and the two types, limit=1, following next until null")
    paged: list[Any] = []
    after = UNSET
    pages = 0
    while True:
        page = admin_events(f"adminListEvents limit=1 page {pages + 1}", user_id=target.id, type_=wanted,
                            limit=1, after=after)
        pages += 1
        check(len(page.events) <= 1, f"adminListEvents limit=1 page {pages}: {len(page.events)} events")
        check(all(e.type_ in wanted and e.user_id == target.id for e in page.events),
              f"adminListEvents limit=1 page {pages}: unfiltered event {page.events!r}")
        check(not {e.id for e in page.events} & {e.id for e in paged},
              f"adminListEvents limit=1 page {pages}: repeats an id of an earlier page")
        paged.extend(page.events)
        if page.next_ is None:
            break
        check(len(page.events) == 1, f"adminListEvents limit=1 page {pages}: next {page.next_!r} "
                                     f"on an empty page")
        check(pages < 10, "adminListEvents limit=1: more than 10 pages for 2 events")
        after = uuid.UUID(page.next_)
    check(types_of(paged) == ["user.enabled", "user.disabled"],
          f"adminListEvents limit=1: paged through {types_of(paged)}, expected ['user.enabled', 'user.disabled']")
    check([e.id for e in paged] == [admin_made["user.enabled"].id, admin_made["user.disabled"].id],
          "adminListEvents limit=1: paged through other events than the unpaged list")

    step("adminListEvents since=now+1h -> no events, next null")
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    page = admin_events("adminListEvents since=now+1h", since=later)
    check(page.events == [] and page.next_ is None,
          f"adminListEvents since=now+1h: {types_of(page.events)}, next {page.next_!r}, expected [] and null")

    step("adminListEvents limit=0 -> 422 validation (limit/out_of_range)")
    errors = expect_validation(admin_list_events.sync_detailed(client=admin, limit=0), "limit", Problem,
                               FieldError, "adminListEvents limit=0")
    check(errors[0].code == "out_of_range", f"adminListEvents limit=0: code {errors[0].code!r}")

    events_name = "py-" + secrets.token_hex(6)
    events_credentials = Credentials(username=events_name, password=STRONG_PASSWORD)
    step(f"signup + signin {events_name}; listMyEvents -> user.signed_in, user.signed_up by the user")
    events_user = expect(signup.sync_detailed(client=client, body=events_credentials), 201, UserView,
                         "signup for listMyEvents")
    events_pair = expect(signin.sync_detailed(client=client, body=events_credentials), 200, TokenPair,
                         "signin for listMyEvents")

    def my_events(what: str) -> Any:
        page = events_page(list_my_events.sync_detailed(client=authed(events_pair.access_token), limit=200), what)
        check(page.next_ is None, f"{what}: next {page.next_!r} on a page of {len(page.events)} events")
        check(all(e.user_id == events_user.id for e in page.events),
              f"{what}: events of other users: {[(e.type_, e.user_id) for e in page.events]}")
        check(all(e.actor.name is None for e in page.events),
              f"{what}: actor.name set in a user's own list: {[(e.type_, e.actor.name) for e in page.events]}")
        return page

    page = my_events("listMyEvents")
    check(types_of(page.events) == ["user.signed_in", "user.signed_up"],
          f"listMyEvents: types {types_of(page.events)}, expected ['user.signed_in', 'user.signed_up']")
    check(all(e.actor.kind == "user" for e in page.events),
          f"listMyEvents: actor kinds {[e.actor.kind for e in page.events]}, expected 'user'")
    check(str(page.events[0].session_id) == str(events_pair.session_id),
          f"listMyEvents: user.signed_in session_id {page.events[0].session_id}, "
          f"expected {events_pair.session_id}")

    step("signin with a wrong password -> 401; listMyEvents shows user.signin_failed (written after the answer)")
    expect_problem(admin_signin(events_name, STRONG_PASSWORD + "x"), 401, "invalid_credentials", Problem,
                   "signin with a wrong password for listMyEvents")
    deadline = time.monotonic() + 2.0
    while True:
        page = my_events("listMyEvents after a wrong password")
        failed = [e for e in page.events if e.type_ == "user.signin_failed"]
        if failed or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    check(len(failed) == 1, f"listMyEvents after a wrong password: {len(failed)} user.signin_failed events "
                            f"within 2 s, expected 1, in {types_of(page.events)}")
    check(page.events[0].type_ == "user.signin_failed",
          f"listMyEvents after a wrong password: newest is {page.events[0].type_!r}, expected user.signin_failed")
    check(failed[0].actor.kind == "user" and failed[0].actor.name is None,
          f"listMyEvents: user.signin_failed actor {failed[0].actor.kind!r}/{failed[0].actor.name!r}")

    step("listMyEvents without a token -> 401 invalid_token; with the admin token -> 401 invalid_token")
    response = list_my_events.sync_detailed(client=client)
    expect_problem(response, 401, "invalid_token", Problem, "listMyEvents without a token")
    challenge_header = response.headers.get("www-authenticate", "")
    check(challenge_header.startswith("Bearer"),
          f"listMyEvents without a token: WWW-Authenticate {challenge_header!r}, expected Bearer")
    expect_problem(list_my_events.sync_detailed(client=admin), 401, "invalid_token", Problem,
                   "listMyEvents with an admin token")

    step("adminDeleteUser -> 204; adminGetUser -> 404 not_found")
    expect(admin_delete_user.sync_detailed(target.id, client=admin), 204, None, "adminDeleteUser")
    expect_problem(admin_get(target.id), 404, "not_found", Problem, "adminGetUser after adminDeleteUser")

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
