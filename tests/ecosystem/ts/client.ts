// TypeScript ecosystem test: openapi-fetch driven by types that
// openapi-typescript generated from Tessera's live OpenAPI document.
// run.sh puts this file next to the generated schema.d.ts and typechecks both
// (strict) before running, so a document change that breaks a client fails.
//
// Usage (via run.sh): tsx client.ts BASE_URL
// The second-factor steps compute TOTP codes with their own RFC 6238 code
// (node:crypto HMAC-SHA1, base32 decoding) from the otpauth URI alone.
// The resource-server steps (introspectToken, revokeToken) send form bodies
// (openapi-fetch encodes `body` with URLSearchParams once the request's
// Content-Type is application/x-www-form-urlencoded, which it does not take
// from the document) and HTTP Basic as the introspection client in
// TESSERA_INTROSPECTION_CLIENT (`id:secret`).
// The admin-API steps end with the security events (adminListEvents,
// listMyEvents). The reset and admin-API steps run the operator CLI (`users reset-password`,
// `admin-tokens create`): it needs TESSERA_BIN (the tessera
// binary), TESSERA_REPO (the repository root, its working directory) and the
// server's configuration as TESSERA_ENV, TESSERA__DATABASE__URL,
// TESSERA__REDIS__URL and TESSERA__REDIS__KEY_PREFIX (tests/ecosystem.rs sets them,
// and TESSERA_INTROSPECTION_CLIENT).

import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type Problem = components["schemas"]["Problem"];
type FieldError = components["schemas"]["FieldError"];
type TokenPair = components["schemas"]["TokenPair"];
type MfaChallengeView = components["schemas"]["MfaChallengeView"];
type MeView = components["schemas"]["MeView"];
type AdminUser = components["schemas"]["AdminUser"];
type AdminUsers = components["schemas"]["AdminUsers"];
type SecurityEvent = components["schemas"]["Event"];
type EventsPage = components["schemas"]["EventsPage"];
type IntrospectionResult = components["schemas"]["IntrospectionResult"];

// Compile-time checks that errors are typed from the document: `error` of an
// operation must be exactly the Problem schema, not `unknown` or `never`.
type Exactly<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<_T extends true>(): void {}

const STRONG_PASSWORD = "correct-Horse-battery-9-staple";
const CHANGED_PASSWORD = "quiet-Lantern-river-7-orchard";
const RESET_PASSWORD = "third-Lantern-river-8-orchard";
const WEAK_PASSWORD = "abcabcabcabc"; // scores 45 of 100: too_weak
const PROBLEMS = "https://tessera.dev/problems/";
const RECOVERY_CODE = /^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){3}$/;

class Mismatch extends Error {}

function step(message: string): void {
  console.log(`[ts client] ${message}`);
}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Mismatch(message);
}

function expectStatus(response: Response, status: number, what: string, body: unknown): void {
  check(
    response.status === status,
    `${what}: expected HTTP ${status}, got ${response.status}: ${JSON.stringify(body)}`,
  );
}

function expectProblem(
  response: Response,
  problem: Problem | undefined,
  status: number,
  code: string,
  what: string,
): Problem {
  expectStatus(response, status, what, problem);
  check(problem !== undefined, `${what}: no error body`);
  const contentType = response.headers.get("content-type") ?? "";
  check(
    contentType.startsWith("application/problem+json"),
    `${what}: Content-Type is ${JSON.stringify(contentType)}, expected application/problem+json`,
  );
  check(problem.status === status, `${what}: problem.status is ${problem.status}, expected ${status}`);
  check(
    problem.type === PROBLEMS + code,
    `${what}: problem.type is ${JSON.stringify(problem.type)}, expected ${PROBLEMS + code}`,
  );
  check(typeof problem.title === "string" && typeof problem.detail === "string", `${what}: title/detail missing`);
  return problem;
}

/** The errors of a 422 `validation` problem whose first error is about `field`. */
function expectValidation(
  response: Response,
  problem: Problem | undefined,
  field: string,
  what: string,
): FieldError[] {
  const { errors } = expectProblem(response, problem, 422, "validation", what);
  check(Array.isArray(errors) && errors.length > 0, `${what}: expected errors, got ${JSON.stringify(errors)}`);
  const first = errors[0];
  check(first?.field === field, `${what}: errors[0].field is ${JSON.stringify(first?.field)}, expected ${field}`);
  return errors;
}

/**
 * The body of a 200 sign-in. openapi-fetch types `data` as the union of the
 * 2xx bodies (TokenPair | MfaChallengeView), and the status does not narrow
 * it: the shape does.
 */
function tokenPairOf(
  response: Response,
  data: TokenPair | MfaChallengeView | undefined,
  error: Problem | undefined,
  what: string,
): TokenPair {
  expectStatus(response, 200, what, data ?? error);
  check(data !== undefined && "access_token" in data, `${what}: expected a TokenPair, got ${JSON.stringify(data)}`);
  check(data.token_type === "Bearer", `${what}: token_type ${data.token_type}`);
  return data;
}

/** The body of a 202 sign-in: the second factor is on. */
function challengeOf(
  response: Response,
  data: TokenPair | MfaChallengeView | undefined,
  error: Problem | undefined,
  what: string,
): MfaChallengeView {
  expectStatus(response, 202, what, data ?? error);
  check(
    data !== undefined && "mfa_token" in data,
    `${what}: expected an MfaChallengeView, got ${JSON.stringify(data)}`,
  );
  check(/^tsm_/.test(data.mfa_token), `${what}: mfa_token ${JSON.stringify(data.mfa_token)} is not a tsm_ token`);
  check(
    Number.isInteger(data.expires_in) && data.expires_in >= 1 && data.expires_in <= 300,
    `${what}: expires_in ${data.expires_in}, expected 1..300`,
  );
  check(
    data.methods.includes("totp") && data.methods.includes("recovery_code"),
    `${what}: methods ${JSON.stringify(data.methods)}`,
  );
  check(!response.headers.has("set-cookie"), `${what}: a 202 set a cookie: ${response.headers.get("set-cookie")}`);
  return data;
}

// --- RFC 6238 TOTP, independent of the server: HMAC from node:crypto only.
const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** RFC 4648 base32 (upper case, padding optional) to bytes. */
function base32Decode(text: string): Buffer {
  const bytes: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const char of text.replace(/=+$/, "")) {
    const value = BASE32.indexOf(char);
    check(value >= 0, `base32: ${JSON.stringify(char)} is not in the alphabet`);
    buffer = (buffer << 5) | value;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((buffer >>> bits) & 0xff);
      buffer &= (1 << bits) - 1;
    }
  }
  return Buffer.from(bytes);
}

/** RFC 4226 HOTP with HMAC-SHA1 and dynamic truncation. */
function hotp(key: Buffer, counter: number, digits: number): string {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac("sha1", key).update(message).digest();
  const offset = (mac[mac.length - 1] ?? 0) & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, "0");
}

// The implementation against RFC 6238 appendix B (SHA-1, 8 digits).
{
  const key = base32Decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"); // "12345678901234567890"
  check(key.toString("ascii") === "12345678901234567890", "base32Decode fails its self-test");
  const vectors = [
    [59, "94287082"],
    [1111111109, "07081804"],
    [1234567890, "89005924"],
    [20000000000, "65353130"],
  ] as const;
  for (const [time, code] of vectors) {
    check(hotp(key, Math.floor(time / 30), 8) === code, `hotp fails RFC 6238's vector for T=${time}`);
  }
}

interface OtpAuth {
  issuer: string;
  name: string;
  secret: string;
  algorithm: string;
  digits: number;
  period: number;
}

/** An `otpauth://totp/Issuer:name?secret=…` URI, parsed with URL/URLSearchParams. */
function parseOtpAuthUri(uri: string): OtpAuth {
  const url = new URL(uri);
  check(url.protocol === "otpauth:" && url.host === "totp", `otpauth_uri: not otpauth://totp: ${uri}`);
  const label = decodeURIComponent(url.pathname.replace(/^\//, ""));
  const colon = label.indexOf(":");
  check(colon > 0, `otpauth_uri: label ${JSON.stringify(label)} has no issuer prefix`);
  const params = url.searchParams;
  for (const key of ["secret", "issuer", "algorithm", "digits", "period"]) {
    check(params.getAll(key).length === 1, `otpauth_uri: expected exactly one ${key} parameter: ${uri}`);
  }
  const issuer = params.get("issuer") ?? "";
  check(label.slice(0, colon) === issuer, `otpauth_uri: label issuer ${label.slice(0, colon)} is not ${issuer}`);
  return {
    issuer,
    name: label.slice(colon + 1),
    secret: params.get("secret") ?? "",
    algorithm: params.get("algorithm") ?? "",
    digits: Number(params.get("digits")),
    period: Number(params.get("period")),
  };
}

/** The claims of a JWT, decoded without verifying it. */
function jwtClaims(token: string): Record<string, unknown> {
  const parts = token.split(".");
  check(parts.length === 3, `access token has ${parts.length} parts, expected 3`);
  return JSON.parse(Buffer.from(parts[1] ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
}

function checkAmr(accessToken: string, expected: string[], what: string): void {
  const claims = jwtClaims(accessToken);
  const amr = claims["amr"];
  check(
    Array.isArray(amr) &&
      amr.length === expected.length &&
      new Set(amr).size === expected.length &&
      expected.every((method) => amr.includes(method)),
    `${what}: amr is ${JSON.stringify(amr)}, expected ${JSON.stringify(expected)} (as a set)`,
  );
  check(claims["client_id"] === "tessera", `${what}: client_id is ${JSON.stringify(claims["client_id"])}`);
  check(Number.isInteger(claims["auth_time"]), `${what}: auth_time is ${JSON.stringify(claims["auth_time"])}`);
}

/** `base` with one digit changed, and none of `right` (the codes of nearby steps). */
function wrongCode(base: string, right: string[]): string {
  for (let position = 0; position < base.length; position++) {
    for (const digit of "0123456789") {
      const candidate = base.slice(0, position) + digit + base.slice(position + 1);
      if (!right.includes(candidate)) return candidate;
    }
  }
  throw new Mismatch("no wrong code found");
}

function requiredEnv(name: string): string {
  const value = process.env[name];
  check(value, `${name} is not set (tests/ecosystem.rs sets it)`);
  return value;
}

/** A reset token from the operator CLI: the last line it prints. */
function issueResetToken(username: string): string {
  const args = ["users", "reset-password", username];
  step(`operator CLI: ${args.join(" ")}`);
  let stdout: string;
  try {
    stdout = execFileSync(requiredEnv("TESSERA_BIN"), args, {
      cwd: requiredEnv("TESSERA_REPO"),
      env: process.env,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 60_000,
    });
  } catch (error) {
    const { status, stdout: out, stderr } = error as { status?: number | null; stdout?: string; stderr?: string };
    throw new Mismatch(`tessera users reset-password exited ${status}: ${out ?? ""}${stderr ?? ""}`);
  }
  const token = stdout.trim().split("\n").at(-1)?.trim() ?? "";
  check(
    /^tsp_[A-Za-z0-9_-]{43}$/.test(token),
    `tessera users reset-password: last line ${JSON.stringify(token)} is not a tsp_ token`,
  );
  return token;
}

/** An admin token from the operator CLI: the last line it prints. */
function createAdminToken(name: string): string {
  const args = ["admin-tokens", "create", name];
  step(`operator CLI: ${args.join(" ")}`);
  let stdout: string;
  try {
    stdout = execFileSync(requiredEnv("TESSERA_BIN"), args, {
      cwd: requiredEnv("TESSERA_REPO"),
      env: process.env,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 60_000,
    });
  } catch (error) {
    const { status, stdout: out, stderr } = error as { status?: number | null; stdout?: string; stderr?: string };
    throw new Mismatch(`tessera admin-tokens create exited ${status}: ${out ?? ""}${stderr ?? ""}`);
  }
  const token = stdout.trim().split("\n").at(-1)?.trim() ?? "";
  check(/^tsa_\S+$/.test(token), `tessera admin-tokens create: last line ${JSON.stringify(token)} is not a tsa_ token`);
  return token;
}

function randomName(): string {
  return "ts-" + Math.random().toString(16).slice(2, 14);
}

async function run(baseUrl: string): Promise<void> {
  const client = createClient<paths>({
    baseUrl,
    fetch: (request: Request) => fetch(request, { signal: AbortSignal.timeout(30_000) }),
  });
  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

  const username = randomName();
  const credentials = { username, password: STRONG_PASSWORD };

  step(`signup ${username}`);
  {
    const { data, error, response } = await client.POST("/v1/auth/signup", { body: credentials });
    assertType<Exactly<NonNullable<typeof error>, Problem>>();
    expectStatus(response, 201, "signup", data ?? error);
    check(data?.username === username, `signup: username ${data?.username}, expected ${username}`);
  }

  step("signin");
  const { data: pair, error: signinError, response: signinResponse } = await client.POST("/v1/auth/signin", {
    body: credentials,
  });
  assertType<Exactly<NonNullable<typeof signinError>, Problem>>();
  // 200 and 202 bodies in one union: tokenPairOf / challengeOf narrow it by shape.
  assertType<Exactly<NonNullable<typeof pair>, TokenPair | MfaChallengeView>>();
  const signedIn = tokenPairOf(signinResponse, pair, signinError, "signin");
  check(signinResponse.headers.has("set-cookie"), "signin: the 200 set no refresh cookie");
  const sessionId: string = signedIn.session_id;

  step("getMe");
  {
    const { data, error, response } = await client.GET("/v1/me", { headers: bearer(signedIn.access_token) });
    assertType<Exactly<NonNullable<typeof error>, Problem>>();
    assertType<Exactly<NonNullable<typeof data>, MeView>>();
    expectStatus(response, 200, "getMe", data ?? error);
    check(data?.username === username, `getMe: username ${data?.username}, expected ${username}`);
  }

  step("listSessions");
  {
    const { data, error, response } = await client.GET("/v1/sessions", { headers: bearer(signedIn.access_token) });
    expectStatus(response, 200, "listSessions", data ?? error);
    check(Array.isArray(data), "listSessions: expected an array");
    const current = data.filter((session) => session.current);
    check(
      current.length === 1 && current[0]?.id === sessionId,
      `listSessions: expected the current session ${sessionId}, got ${JSON.stringify(data)}`,
    );
  }

  step("refresh");
  const { data: renewed, error: refreshError, response: refreshResponse } = await client.POST("/v1/auth/refresh", {
    body: { refresh_token: signedIn.refresh_token },
  });
  expectStatus(refreshResponse, 200, "refresh", renewed ?? refreshError);
  check(renewed !== undefined, "refresh: no body");
  check(renewed.session_id === sessionId, `refresh: session_id ${renewed.session_id}, expected ${sessionId}`);
  check(renewed.refresh_token !== signedIn.refresh_token, "refresh: the refresh token did not rotate");

  step("signout");
  {
    const { error, response } = await client.POST("/v1/auth/signout", {
      body: { refresh_token: renewed.refresh_token },
    });
    expectStatus(response, 204, "signout", error);
  }

  step("refresh with the signed-out token -> 401 invalid_token");
  {
    const { error, response } = await client.POST("/v1/auth/refresh", {
      body: { refresh_token: renewed.refresh_token },
    });
    assertType<Exactly<NonNullable<typeof error>, Problem>>();
    expectProblem(response, error, 401, "invalid_token", "refresh after signout");
  }

  step("getMe with a bad token -> 401 invalid_token");
  {
    const { error, response } = await client.GET("/v1/me", { headers: bearer("not-a-jwt") });
    expectProblem(response, error, 401, "invalid_token", "getMe with a bad token");
  }

  step("signin with a wrong password -> 401 invalid_credentials");
  {
    const { error, response } = await client.POST("/v1/auth/signin", {
      body: { username, password: STRONG_PASSWORD + "x" },
    });
    expectProblem(response, error, 401, "invalid_credentials", "signin with a wrong password");
  }

  step("signup with a weak password -> 422 validation (too_weak)");
  {
    const { error, response } = await client.POST("/v1/auth/signup", {
      body: { username: randomName(), password: WEAK_PASSWORD },
    });
    const problem = expectProblem(response, error, 422, "validation", "signup with a weak password");
    // Typed access: `errors` is FieldError[] per the document.
    const errors: FieldError[] | null | undefined = problem.errors;
    check(Array.isArray(errors) && errors.length > 0, `422: expected errors, got ${JSON.stringify(errors)}`);
    const codes = errors.map((e) => `${e.field}/${e.code}`);
    check(codes.includes("password/too_weak"), `422: expected password/too_weak among ${codes.join(", ")}`);
  }

  const signIn = async (password: string, what: string) => {
    const { data, error, response } = await client.POST("/v1/auth/signin", { body: { username, password } });
    return tokenPairOf(response, data, error, what);
  };
  const refreshRejected = async (refreshToken: string, what: string) => {
    const { error, response } = await client.POST("/v1/auth/refresh", { body: { refresh_token: refreshToken } });
    expectProblem(response, error, 401, "invalid_token", what);
  };

  // --- changePassword: the calling session survives, every other one ends.
  step("signin twice: the session that changes the password and another one");
  let caller = await signIn(STRONG_PASSWORD, "signin (caller)");
  const other = await signIn(STRONG_PASSWORD, "signin (other)");
  const change = (current_password: string, new_password: string) =>
    client.POST("/v1/me/password", {
      headers: bearer(caller.access_token),
      body: { current_password, new_password },
    });

  step("changePassword with a wrong current password -> 401 invalid_credentials");
  {
    const { error, response } = await change(STRONG_PASSWORD + "x", CHANGED_PASSWORD);
    assertType<Exactly<NonNullable<typeof error>, Problem>>();
    expectProblem(response, error, 401, "invalid_credentials", "changePassword with a wrong current password");
  }

  step("changePassword to a weak password -> 422 validation (new_password)");
  {
    const { error, response } = await change(STRONG_PASSWORD, WEAK_PASSWORD);
    const errors = expectValidation(response, error, "new_password", "changePassword to a weak password");
    check(errors[0]?.code === "too_weak", `changePassword to a weak password: code ${errors[0]?.code}`);
  }

  step("changePassword to the same password -> 422 validation (unchanged)");
  {
    const { error, response } = await change(STRONG_PASSWORD, STRONG_PASSWORD);
    const errors = expectValidation(response, error, "new_password", "changePassword to the same password");
    check(errors[0]?.code === "unchanged", `changePassword to the same password: code ${errors[0]?.code}`);
  }

  step("changePassword -> 204");
  {
    const { error, response } = await change(STRONG_PASSWORD, CHANGED_PASSWORD);
    expectStatus(response, 204, "changePassword", error);
  }

  step("refresh the calling session -> 200; the other session -> 401 invalid_token");
  {
    const { data, error, response } = await client.POST("/v1/auth/refresh", {
      body: { refresh_token: caller.refresh_token },
    });
    expectStatus(response, 200, "refresh of the calling session after changePassword", data ?? error);
    check(data !== undefined, "refresh of the calling session after changePassword: no body");
    check(data.session_id === caller.session_id, `refresh: session_id ${data.session_id}, expected ${caller.session_id}`);
    caller = data;
  }
  await refreshRejected(other.refresh_token, "refresh of another session after changePassword");

  step("signin with the old password -> 401, with the new one -> 200");
  {
    const { error, response } = await client.POST("/v1/auth/signin", {
      body: { username, password: STRONG_PASSWORD },
    });
    expectProblem(response, error, 401, "invalid_credentials", "signin with the old password after changePassword");
  }
  await signIn(CHANGED_PASSWORD, "signin with the changed password");

  // --- resetPassword with a token from the operator CLI: every session ends.
  const resetToken = issueResetToken(username);
  const reset = (new_password: string) =>
    client.POST("/v1/auth/password-reset", { body: { reset_token: resetToken, new_password } });

  step("resetPassword to a weak password -> 422 validation (new_password)");
  {
    const { error, response } = await reset(WEAK_PASSWORD);
    assertType<Exactly<NonNullable<typeof error>, Problem>>();
    expectValidation(response, error, "new_password", "resetPassword to a weak password");
  }

  step("resetPassword (the same token, still usable after the 422) -> 204");
  {
    const { error, response } = await reset(RESET_PASSWORD);
    expectStatus(response, 204, "resetPassword", error);
  }

  step("resetPassword with the spent token -> 401 invalid_token");
  {
    const { error, response } = await reset(RESET_PASSWORD);
    expectProblem(response, error, 401, "invalid_token", "resetPassword with the spent token");
  }

  step("signin with the reset password -> 200; the session from before the reset -> 401 on refresh");
  let current = await signIn(RESET_PASSWORD, "signin with the reset password");
  await refreshRejected(caller.refresh_token, "refresh of a session from before the reset");

  // --- The second factor: TOTP with codes from our own RFC 6238, and recovery codes.
  const meNow = async (accessToken: string, what: string): Promise<MeView> => {
    const { data, error, response } = await client.GET("/v1/me", { headers: bearer(accessToken) });
    expectStatus(response, 200, what, data ?? error);
    check(data !== undefined, `${what}: no body`);
    return data;
  };

  step("getMe -> mfa_enabled false, recovery_codes_left null");
  {
    const me = await meNow(current.access_token, "getMe before TOTP");
    check(
      me.mfa_enabled === false && me.recovery_codes_left === null,
      `getMe before TOTP: mfa_enabled ${me.mfa_enabled}, recovery_codes_left ${JSON.stringify(me.recovery_codes_left)}`,
    );
    checkAmr(current.access_token, ["pwd"], "access token of a password sign-in");
  }

  step("startTotpEnrollment -> 200 TotpEnrollment; the otpauth URI parsed with URL");
  let otp: OtpAuth;
  {
    const { data, error, response } = await client.POST("/v1/me/mfa/totp", {
      headers: bearer(current.access_token),
      body: { password: RESET_PASSWORD },
    });
    assertType<Exactly<NonNullable<typeof error>, Problem>>();
    assertType<Exactly<NonNullable<typeof data>, components["schemas"]["TotpEnrollment"]>>();
    expectStatus(response, 200, "startTotpEnrollment", data ?? error);
    check(data !== undefined, "startTotpEnrollment: no body");
    check(
      /^[A-Z2-7]{32}$/.test(data.secret),
      `startTotpEnrollment: secret ${JSON.stringify(data.secret)} is not 32 upper-case base32 characters`,
    );
    otp = parseOtpAuthUri(data.otpauth_uri);
    check(otp.secret === data.secret, `otpauth_uri: secret ${otp.secret}, expected ${data.secret}`);
    check(otp.issuer === "Tessera", `otpauth_uri: issuer ${otp.issuer}`);
    check(otp.name === username, `otpauth_uri: name ${otp.name}, expected ${username}`);
    check(
      otp.algorithm === "SHA1" && otp.digits === 6 && otp.period === 30,
      `otpauth_uri: algorithm ${otp.algorithm}, digits ${otp.digits}, period ${otp.period}`,
    );
  }
  const key = base32Decode(otp.secret);
  const codeAt = (stepNumber: number) => hotp(key, stepNumber, otp.digits);

  // The step the codes are computed for; later TOTP checks use a later step
  // (the server takes each step once).
  const confirmStep = Math.floor(Date.now() / 1000 / otp.period);
  const nearby = [-1, 0, 1, 2].map((delta) => codeAt(confirmStep + delta));
  const confirm = (code: string) =>
    client.POST("/v1/me/mfa/totp/confirm", { headers: bearer(current.access_token), body: { code } });

  step("confirmTotp with a wrong code -> 422 validation (code/invalid_code)");
  {
    const { error, response } = await confirm(wrongCode(codeAt(confirmStep), nearby));
    assertType<Exactly<NonNullable<typeof error>, Problem>>();
    const errors = expectValidation(response, error, "code", "confirmTotp with a wrong code");
    check(errors[0]?.code === "invalid_code", `confirmTotp with a wrong code: code ${errors[0]?.code}`);
  }

  step("confirmTotp with the current code -> 200, 10 recovery codes");
  let recoveryCodes: string[];
  {
    const { data, error, response } = await confirm(codeAt(confirmStep));
    assertType<Exactly<NonNullable<typeof data>, components["schemas"]["RecoveryCodes"]>>();
    expectStatus(response, 200, "confirmTotp", data ?? error);
    check(data !== undefined, "confirmTotp: no body");
    recoveryCodes = data.recovery_codes;
    check(
      recoveryCodes.length === 10 && new Set(recoveryCodes).size === 10,
      `confirmTotp: expected 10 distinct recovery codes, got ${JSON.stringify(recoveryCodes)}`,
    );
    check(
      recoveryCodes.every((code) => RECOVERY_CODE.test(code)),
      `confirmTotp: recovery codes not xxxx-xxxx-xxxx-xxxx Crockford base32: ${JSON.stringify(recoveryCodes)}`,
    );
  }
  const [firstRecoveryCode, secondRecoveryCode] = recoveryCodes;
  check(firstRecoveryCode !== undefined && secondRecoveryCode !== undefined, "confirmTotp: no recovery codes");

  step("getMe -> mfa_enabled true, recovery_codes_left 10");
  {
    const me = await meNow(current.access_token, "getMe after confirmTotp");
    check(
      me.mfa_enabled === true && me.recovery_codes_left === 10,
      `getMe after confirmTotp: mfa_enabled ${me.mfa_enabled}, recovery_codes_left ${me.recovery_codes_left}`,
    );
  }

  const challenged = async (what: string): Promise<MfaChallengeView> => {
    const { data, error, response } = await client.POST("/v1/auth/signin", {
      body: { username, password: RESET_PASSWORD },
    });
    return challengeOf(response, data, error, what);
  };
  const secondStep = (mfa_token: string, code: string) =>
    client.POST("/v1/auth/signin/mfa", { body: { mfa_token, code } });

  step("signin -> 202 MfaChallengeView (no tokens, no cookie)");
  let challenge = await challenged("signin with TOTP on");

  step("signinMfa with a wrong code -> 401 invalid_credentials");
  {
    const { data, error, response } = await secondStep(challenge.mfa_token, wrongCode(codeAt(confirmStep), nearby));
    assertType<Exactly<NonNullable<typeof error>, Problem>>();
    assertType<Exactly<NonNullable<typeof data>, TokenPair>>();
    expectProblem(response, error, 401, "invalid_credentials", "signinMfa with a wrong code");
  }

  step("signinMfa with the next step's TOTP code -> 200; amr pwd+otp+mfa");
  {
    const { data, error, response } = await secondStep(challenge.mfa_token, codeAt(confirmStep + 1));
    current = tokenPairOf(response, data, error, "signinMfa with a TOTP code");
    check(response.headers.has("set-cookie"), "signinMfa: the 200 set no refresh cookie");
    checkAmr(current.access_token, ["pwd", "otp", "mfa"], "access token after a TOTP code");
  }

  // With an unused recovery code: a dead token must not spend it (#1 is used next).
  step("signinMfa with the spent mfa_token -> 401 invalid_token");
  {
    const { error, response } = await secondStep(challenge.mfa_token, firstRecoveryCode);
    expectProblem(response, error, 401, "invalid_token", "signinMfa with a spent mfa_token");
  }

  step("signin -> 202; signinMfa with recovery code #1 -> 200; amr pwd+mfa; 9 left");
  challenge = await challenged("second signin with TOTP on");
  {
    const { data, error, response } = await secondStep(challenge.mfa_token, firstRecoveryCode);
    current = tokenPairOf(response, data, error, "signinMfa with a recovery code");
    checkAmr(current.access_token, ["pwd", "mfa"], "access token after a recovery code");
    const me = await meNow(current.access_token, "getMe after a recovery code");
    check(
      me.mfa_enabled === true && me.recovery_codes_left === 9,
      `getMe after a recovery code: mfa_enabled ${me.mfa_enabled}, ` +
        `recovery_codes_left ${me.recovery_codes_left}, expected 9`,
    );
  }

  step("signin -> 202; signinMfa with the used recovery code #1 -> 401 invalid_credentials");
  challenge = await challenged("third signin with TOTP on");
  {
    const { error, response } = await secondStep(challenge.mfa_token, firstRecoveryCode);
    expectProblem(response, error, 401, "invalid_credentials", "signinMfa with a used recovery code");
  }

  step("disableTotp with the password and recovery code #2 -> 204");
  {
    const { error, response } = await client.POST("/v1/me/mfa/totp/disable", {
      headers: bearer(current.access_token),
      body: { password: RESET_PASSWORD, code: secondRecoveryCode },
    });
    assertType<Exactly<NonNullable<typeof error>, Problem>>();
    expectStatus(response, 204, "disableTotp", error);
  }

  step("signin -> 200 TokenPair again; getMe -> mfa_enabled false");
  current = await signIn(RESET_PASSWORD, "signin after disableTotp");
  checkAmr(current.access_token, ["pwd"], "access token after disableTotp");
  {
    const me = await meNow(current.access_token, "getMe after disableTotp");
    check(
      me.mfa_enabled === false && me.recovery_codes_left === null,
      `getMe after disableTotp: mfa_enabled ${me.mfa_enabled}, ` +
        `recovery_codes_left ${JSON.stringify(me.recovery_codes_left)}`,
    );
  }

  // --- For resource servers: introspectToken (RFC 7662) with the HTTP Basic
  // credentials of the introspection client tests/ecosystem.rs configured,
  // and revokeToken (RFC 7009), on the tokens of the session above.
  const [clientId = "", ...secretParts] = requiredEnv("TESSERA_INTROSPECTION_CLIENT").split(":");
  const clientSecret = secretParts.join(":");
  check(clientId !== "" && clientSecret !== "", "TESSERA_INTROSPECTION_CLIENT is not id:secret");
  // openapi-fetch picks the body serializer by the request's Content-Type, not by the document.
  const FORM = { "Content-Type": "application/x-www-form-urlencoded" } as const;
  const basic = (id: string, secret: string) => ({
    Authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`,
  });
  const resourceServer = basic(clientId, clientSecret);
  const wrongSecret = basic(clientId, "wrong-" + clientSecret);
  type TokenForm = components["schemas"]["TokenForm"];
  const introspect = async (body: TokenForm, headers: Record<string, string> = resourceServer) => {
    const result = await client.POST("/oauth/introspect", { headers: { ...FORM, ...headers }, body });
    assertType<Exactly<NonNullable<typeof result.error>, Problem>>();
    assertType<Exactly<NonNullable<typeof result.data>, IntrospectionResult>>();
    return result;
  };
  const revoke = async (body: TokenForm, headers: Record<string, string> = {}) => {
    const result = await client.POST("/oauth/revoke", { headers: { ...FORM, ...headers }, body });
    assertType<Exactly<NonNullable<typeof result.error>, Problem>>();
    // The document gives its 200 no body: `data` is exactly undefined.
    assertType<Exactly<typeof result.data, undefined>>();
    return result;
  };
  const introspectionMe = await meNow(current.access_token, "getMe before introspectToken");
  /** A 200 IntrospectionResult of a live token of `kind`, with exactly `keys`. */
  const introspected = (
    response: Response,
    data: IntrospectionResult | undefined,
    error: Problem | undefined,
    kind: string,
    keys: string[],
    what: string,
  ): IntrospectionResult => {
    expectStatus(response, 200, what, data ?? error);
    check(data !== undefined, `${what}: no body`);
    check(data.active === true, `${what}: active ${data.active}, expected true`);
    check(data.tessera_token_kind === kind, `${what}: tessera_token_kind ${data.tessera_token_kind}, expected ${kind}`);
    check(
      JSON.stringify(Object.keys(data).sort()) === JSON.stringify([...keys].sort()),
      `${what}: members ${JSON.stringify(Object.keys(data).sort())}, expected ${JSON.stringify([...keys].sort())}`,
    );
    check(data.sub === introspectionMe.id, `${what}: sub ${data.sub}, expected the user's id ${introspectionMe.id}`);
    check(data.sid === current.session_id, `${what}: sid ${data.sid}, expected the session ${current.session_id}`);
    check(data.username === username, `${what}: username ${data.username}, expected ${username}`);
    check(
      Number.isInteger(data.exp) && (data.exp ?? 0) > Date.now() / 1000,
      `${what}: exp ${data.exp} is not in the future`,
    );
    return data;
  };
  const inactive = (
    response: Response,
    data: IntrospectionResult | undefined,
    error: Problem | undefined,
    what: string,
  ): void => {
    expectStatus(response, 200, what, data ?? error);
    check(
      JSON.stringify(data) === JSON.stringify({ active: false }),
      `${what}: ${JSON.stringify(data)}, expected exactly {"active":false}`,
    );
  };
  const invalidClient = (response: Response, error: Problem | undefined, what: string): void => {
    const problem = expectProblem(response, error, 401, "invalid_client", what);
    check(problem.error === "invalid_client", `${what}: error ${problem.error}, expected invalid_client`);
    const challengeHeader = response.headers.get("www-authenticate") ?? "";
    check(
      challengeHeader.startsWith("Basic"),
      `${what}: WWW-Authenticate ${JSON.stringify(challengeHeader)}, expected Basic`,
    );
  };
  const invalidRequest = (response: Response, error: Problem | undefined, what: string): void => {
    const problem = expectProblem(response, error, 400, "malformed_request", what);
    check(problem.error === "invalid_request", `${what}: error ${problem.error}, expected invalid_request`);
  };
  const revoked = async (response: Response, error: Problem | undefined, what: string): Promise<void> => {
    expectStatus(response, 200, what, error);
    // openapi-fetch leaves a Content-Length: 0 body unread.
    const text = await response.text();
    check(
      response.headers.get("content-length") === "0" && text === "",
      `${what}: body ${JSON.stringify(text)}, expected empty`,
    );
  };
  const accessKeys = [
    "active", "token_type", "tessera_token_kind", "sub", "sid", "username", "client_id",
    "exp", "iat", "iss", "aud", "jti", "auth_time", "amr",
  ];
  const refreshKeys = ["active", "tessera_token_kind", "sub", "sid", "username", "exp"];

  step(`introspectToken as ${clientId} on the access token -> active access_token of the user`);
  {
    const { data, error, response } = await introspect({ token: current.access_token });
    const result = introspected(response, data, error, "access_token", accessKeys, "introspectToken on an access token");
    const claims = jwtClaims(current.access_token);
    check(result.token_type === "Bearer", `introspectToken on an access token: token_type ${result.token_type}`);
    check(result.client_id === "tessera", `introspectToken on an access token: client_id ${result.client_id}`);
    check(
      Array.isArray(result.amr) && result.amr.includes("pwd"),
      `introspectToken on an access token: amr ${JSON.stringify(result.amr)}, expected it to include pwd`,
    );
    for (const name of ["exp", "iat", "iss", "aud", "jti", "auth_time", "amr"] as const) {
      check(
        JSON.stringify(result[name]) === JSON.stringify(claims[name]),
        `introspectToken on an access token: ${name} ${JSON.stringify(result[name])}, ` +
          `the token says ${JSON.stringify(claims[name])}`,
      );
    }
  }

  step("introspectToken on the refresh token (token_type_hint access_token, ignored) -> active refresh_token");
  {
    const { data, error, response } = await introspect({ token: current.refresh_token, token_type_hint: "access_token" });
    introspected(response, data, error, "refresh_token", refreshKeys, "introspectToken on a refresh token");
  }

  step("introspectToken without credentials / with a wrong secret -> 401 invalid_client");
  {
    const { error, response } = await introspect({ token: current.access_token }, {});
    invalidClient(response, error, "introspectToken without credentials");
  }
  {
    const { error, response } = await introspect({ token: current.access_token }, wrongSecret);
    invalidClient(response, error, "introspectToken with a wrong secret");
  }

  step("introspectToken without token -> 400 invalid_request");
  {
    const { error, response } = await introspect({});
    invalidRequest(response, error, "introspectToken without token");
  }

  step("refresh; introspectToken on the previous refresh token -> {active: false}, on the new one -> active");
  {
    const previous = current.refresh_token;
    const { data, error, response } = await client.POST("/v1/auth/refresh", { body: { refresh_token: previous } });
    expectStatus(response, 200, "refresh before revokeToken", data ?? error);
    check(data !== undefined, "refresh before revokeToken: no body");
    current = data;
    const old = await introspect({ token: previous });
    inactive(old.response, old.data, old.error, "introspectToken on the previous refresh token");
    const renewedNow = await introspect({ token: current.refresh_token });
    introspected(
      renewedNow.response,
      renewedNow.data,
      renewedNow.error,
      "refresh_token",
      refreshKeys,
      "introspectToken on the rotated refresh token",
    );
  }

  step("revokeToken with the refresh token (no client credentials) -> 200, empty body");
  {
    const { error, response } = await revoke({ token: current.refresh_token, token_type_hint: "refresh_token" });
    await revoked(response, error, "revokeToken with a refresh token");
  }

  step("introspectToken on its access and refresh tokens -> exactly {active: false}; refresh -> 401");
  {
    const access = await introspect({ token: current.access_token });
    inactive(access.response, access.data, access.error, "introspectToken on the access token of a revoked session");
    const refreshed = await introspect({ token: current.refresh_token });
    inactive(refreshed.response, refreshed.data, refreshed.error, "introspectToken on a revoked refresh token");
  }
  await refreshRejected(current.refresh_token, "refresh with a revoked refresh token");

  step("revokeToken of garbage -> 200 (with the client's credentials too); wrong secret -> 401; no token -> 400");
  {
    const { error, response } = await revoke({ token: "not-a-token" });
    await revoked(response, error, "revokeToken of garbage");
  }
  {
    const { error, response } = await revoke({ token: "not-a-token" }, resourceServer);
    await revoked(response, error, "revokeToken of garbage as the introspection client");
  }
  {
    const { error, response } = await revoke({ token: "not-a-token" }, wrongSecret);
    invalidClient(response, error, "revokeToken with a wrong secret");
  }
  {
    const { error, response } = await revoke({});
    invalidRequest(response, error, "revokeToken without token");
  }
  {
    const { data, error, response } = await introspect({ token: "not-a-token" });
    inactive(response, data, error, "introspectToken on garbage");
  }

  // --- The admin API, with an admin token from the operator CLI.
  const adminTokenName = "ts-eco-" + Math.random().toString(16).slice(2, 14);
  const adminToken = createAdminToken(adminTokenName);
  const admin = bearer(adminToken);
  const prefix = "ta" + Math.random().toString(16).slice(2, 10) + "-";
  const adminCreate = (name: string) =>
    client.POST("/v1/admin/users", { headers: admin, body: { username: name, password: STRONG_PASSWORD } });
  const created = async (name: string): Promise<AdminUser> => {
    const { data, error, response } = await adminCreate(name);
    assertType<Exactly<NonNullable<typeof error>, Problem>>();
    assertType<Exactly<NonNullable<typeof data>, AdminUser>>();
    expectStatus(response, 201, `adminCreateUser ${name}`, data ?? error);
    check(data !== undefined, `adminCreateUser ${name}: no body`);
    check(data.username === name, `adminCreateUser: username ${data.username}, expected ${name}`);
    check(
      data.disabled === false && data.disabled_at === null && data.mfa_enabled === false,
      `adminCreateUser ${name}: disabled ${data.disabled}, disabled_at ${data.disabled_at}, mfa_enabled ${data.mfa_enabled}`,
    );
    check(
      data.password_changed_at === null && data.last_signin_at === null,
      `adminCreateUser ${name}: password_changed_at ${data.password_changed_at}, last_signin_at ${data.last_signin_at}`,
    );
    return data;
  };
  const adminGet = (id: string, headers = admin) =>
    client.GET("/v1/admin/users/{id}", { headers, params: { path: { id } } });
  const adminUser = async (id: string, what: string): Promise<AdminUser> => {
    const { data, error, response } = await adminGet(id);
    assertType<Exactly<NonNullable<typeof error>, Problem>>();
    expectStatus(response, 200, what, data ?? error);
    check(data !== undefined, `${what}: no body`);
    return data;
  };
  const signInAs = (name: string, password: string) =>
    client.POST("/v1/auth/signin", { body: { username: name, password } });

  step(`adminCreateUser x3 (prefix ${prefix}) -> 201 AdminUser`);
  const made: AdminUser[] = [];
  for (const suffix of ["one", "two", "three"]) made.push(await created(prefix + suffix));
  const target = made[0];
  check(target !== undefined, "adminCreateUser: no user");

  step("adminCreateUser with a taken username -> 409 conflict");
  {
    const { error, response } = await adminCreate(target.username);
    expectProblem(response, error, 409, "conflict", "adminCreateUser with a taken username");
  }

  step("adminListUsers limit=2 by username_prefix, following next; one more user after page 1");
  {
    const listed: AdminUser[] = [];
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const { data, error, response } = await client.GET("/v1/admin/users", {
        headers: admin,
        params: { query: { limit: 2, username_prefix: prefix, ...(after === undefined ? {} : { after }) } },
      });
      assertType<Exactly<NonNullable<typeof error>, Problem>>();
      assertType<Exactly<NonNullable<typeof data>, AdminUsers>>();
      pages += 1;
      expectStatus(response, 200, `adminListUsers page ${pages}`, data ?? error);
      check(data !== undefined, `adminListUsers page ${pages}: no body`);
      check(
        data.users.length >= 1 && data.users.length <= 2,
        `adminListUsers page ${pages}: ${data.users.length} users, limit 2`,
      );
      listed.push(...data.users);
      if (pages === 1) made.push(await created(prefix + "four"));
      // The document leaves `next` optional (`next?: string | null`); the server always sends it.
      const next = data.next;
      check(next !== undefined, `adminListUsers page ${pages}: no next (expected a cursor or null)`);
      if (next === null) break;
      check(
        next === data.users.at(-1)?.id,
        `adminListUsers page ${pages}: next ${next}, expected the last id ${data.users.at(-1)?.id}`,
      );
      check(pages < 10, "adminListUsers: more than 10 pages for 4 users");
      after = next;
    }
    // Ascending id: UUIDs in canonical lower-case form compare like their bytes.
    const expected = [...made].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    check(
      JSON.stringify(listed.map((u) => u.id)) === JSON.stringify(expected.map((u) => u.id)),
      `adminListUsers: listed ${JSON.stringify(listed.map((u) => u.username))}, ` +
        `expected ${JSON.stringify(expected.map((u) => u.username))} in ascending id`,
    );
    check(pages === 2, `adminListUsers: ${pages} pages for 4 users at limit 2, expected 2`);
  }

  step("adminListUsers limit=0 -> 422 validation (limit/out_of_range)");
  {
    const { error, response } = await client.GET("/v1/admin/users", {
      headers: admin,
      params: { query: { limit: 0 } },
    });
    const errors = expectValidation(response, error, "limit", "adminListUsers limit=0");
    check(errors[0]?.code === "out_of_range", `adminListUsers limit=0: code ${errors[0]?.code}`);
  }

  step(`adminGetUser ${target.username} -> 200 AdminUser`);
  {
    const got = await adminUser(target.id, "adminGetUser");
    check(
      got.id === target.id && got.username === target.username,
      `adminGetUser: got ${got.username}/${got.id}, expected ${target.username}/${target.id}`,
    );
  }

  step("signin as that user; adminDisableUser -> 204; signin -> 401; its session -> 401 on refresh");
  {
    const signed = await signInAs(target.username, STRONG_PASSWORD);
    const before = tokenPairOf(signed.response, signed.data, signed.error, "signin of an admin-made user");
    const { error, response } = await client.POST("/v1/admin/users/{id}/disable", {
      headers: admin,
      params: { path: { id: target.id } },
    });
    expectStatus(response, 204, "adminDisableUser", error);
    const refused = await signInAs(target.username, STRONG_PASSWORD);
    expectProblem(refused.response, refused.error, 401, "invalid_credentials", "signin of a disabled user");
    await refreshRejected(before.refresh_token, "refresh of a session of a disabled user");
    const got = await adminUser(target.id, "adminGetUser after adminDisableUser");
    check(
      got.disabled === true && got.disabled_at !== null,
      `adminGetUser after adminDisableUser: disabled ${got.disabled}, disabled_at ${got.disabled_at}`,
    );
    check(got.last_signin_at !== null, "adminGetUser after a signin: last_signin_at is null");
  }

  step("adminEnableUser -> 204; signin -> 200");
  {
    const { error, response } = await client.POST("/v1/admin/users/{id}/enable", {
      headers: admin,
      params: { path: { id: target.id } },
    });
    expectStatus(response, 204, "adminEnableUser", error);
    const got = await adminUser(target.id, "adminGetUser after adminEnableUser");
    check(
      got.disabled === false && got.disabled_at === null,
      `adminGetUser after adminEnableUser: disabled ${got.disabled}, disabled_at ${got.disabled_at}`,
    );
    const signed = await signInAs(target.username, STRONG_PASSWORD);
    tokenPairOf(signed.response, signed.data, signed.error, "signin after adminEnableUser");
  }

  step("adminIssuePasswordReset -> 200; resetPassword with it -> 204; the new password signs in");
  let userPair: TokenPair;
  {
    const { data, error, response } = await client.POST("/v1/admin/users/{id}/password-reset", {
      headers: admin,
      params: { path: { id: target.id } },
    });
    assertType<Exactly<NonNullable<typeof data>, components["schemas"]["IssuedPasswordReset"]>>();
    expectStatus(response, 200, "adminIssuePasswordReset", data ?? error);
    check(data !== undefined, "adminIssuePasswordReset: no body");
    check(
      /^tsp_[A-Za-z0-9_-]{43}$/.test(data.reset_token),
      `adminIssuePasswordReset: reset_token ${JSON.stringify(data.reset_token)} is not a tsp_ token`,
    );
    check(Number.isInteger(data.expires_in) && data.expires_in > 0, `adminIssuePasswordReset: expires_in ${data.expires_in}`);
    const reset = await client.POST("/v1/auth/password-reset", {
      body: { reset_token: data.reset_token, new_password: CHANGED_PASSWORD },
    });
    expectStatus(reset.response, 204, "resetPassword with an admin-issued token", reset.error);
    const old = await signInAs(target.username, STRONG_PASSWORD);
    expectProblem(old.response, old.error, 401, "invalid_credentials", "signin with the password from before the admin reset");
    const signed = await signInAs(target.username, CHANGED_PASSWORD);
    userPair = tokenPairOf(signed.response, signed.data, signed.error, "signin with the admin-reset password");
    const got = await adminUser(target.id, "adminGetUser after the reset");
    check(got.password_changed_at !== null, "adminGetUser after the reset: password_changed_at is null");
  }

  step("a user's access token on adminGetUser -> 401 invalid_token; the admin token on getMe -> 401");
  {
    const { error, response } = await adminGet(target.id, bearer(userPair.access_token));
    expectProblem(response, error, 401, "invalid_token", "adminGetUser with a user's access token");
  }
  {
    const { error, response } = await client.GET("/v1/me", { headers: admin });
    expectProblem(response, error, 401, "invalid_token", "getMe with an admin token");
  }

  // --- Security events: adminListEvents on the users above, listMyEvents on a new one.
  /** A 200 EventsPage, newest first, whose `next` is present (a cursor or null). */
  const eventsPage = (
    response: Response,
    data: EventsPage | undefined,
    error: Problem | undefined,
    what: string,
  ): EventsPage & { next: string | null } => {
    expectStatus(response, 200, what, data ?? error);
    check(data !== undefined && Array.isArray(data.events), `${what}: expected an EventsPage, got ${JSON.stringify(data)}`);
    for (const event of data.events) {
      check(typeof event.type === "string" && event.type !== "", `${what}: type ${JSON.stringify(event.type)}`);
      check(typeof event.actor.kind === "string", `${what}: actor ${JSON.stringify(event.actor)}`);
      check(!Number.isNaN(Date.parse(event.at)), `${what}: at ${JSON.stringify(event.at)} is not a date-time`);
    }
    const ats = data.events.map((event) => Date.parse(event.at));
    check(
      ats.every((at, index) => index === 0 || (ats[index - 1] ?? at) >= at),
      `${what}: not newest first: ${JSON.stringify(data.events.map((e) => [e.type, e.at]))}`,
    );
    // The document leaves `next` optional (`next?: string | null`); the server always sends it.
    const next = data.next;
    check(next !== undefined, `${what}: no next (expected a cursor or null)`);
    return { ...data, next };
  };
  type AdminEventsQuery = NonNullable<paths["/v1/admin/events"]["get"]["parameters"]["query"]>;
  const adminEvents = async (query: AdminEventsQuery, what: string) => {
    const { data, error, response } = await client.GET("/v1/admin/events", { headers: admin, params: { query } });
    assertType<Exactly<NonNullable<typeof error>, Problem>>();
    assertType<Exactly<NonNullable<typeof data>, EventsPage>>();
    return eventsPage(response, data, error, what);
  };
  const typesOf = (events: SecurityEvent[]) => events.map((event) => event.type);

  step(
    `adminListEvents user_id=${target.username} -> user.created/disabled/enabled ` +
      `by admin_token ${JSON.stringify(adminTokenName)}, newest first`,
  );
  const adminMade = new Map<string, SecurityEvent>();
  {
    const page = await adminEvents({ user_id: target.id, limit: 200 }, "adminListEvents by user_id");
    check(page.next === null, `adminListEvents by user_id: next ${page.next} on a page at limit 200`);
    check(
      page.events.every((event) => event.user_id === target.id),
      `adminListEvents by user_id: events of other users: ${JSON.stringify(page.events.map((e) => [e.type, e.user_id]))}`,
    );
    for (const kind of ["user.created", "user.disabled", "user.enabled"]) {
      const found = page.events.filter((event) => event.type === kind);
      check(
        found.length === 1,
        `adminListEvents by user_id: ${found.length} ${kind} events, expected 1, in ${JSON.stringify(typesOf(page.events))}`,
      );
      const [event] = found;
      check(event !== undefined, `adminListEvents by user_id: no ${kind}`);
      check(
        event.actor.kind === "admin_token" && event.actor.name === adminTokenName,
        `adminListEvents by user_id: ${kind} actor ${event.actor.kind}/${JSON.stringify(event.actor.name)}, ` +
          `expected admin_token/${JSON.stringify(adminTokenName)}`,
      );
      adminMade.set(kind, event);
    }
    const order = typesOf(page.events);
    check(
      order.indexOf("user.enabled") < order.indexOf("user.disabled") &&
        order.indexOf("user.disabled") < order.indexOf("user.created"),
      `adminListEvents by user_id: expected user.enabled before user.disabled before user.created ` +
        `(newest first), got ${JSON.stringify(order)}`,
    );
  }
  const disabledEvent = adminMade.get("user.disabled");
  const enabledEvent = adminMade.get("user.enabled");
  check(disabledEvent !== undefined && enabledEvent !== undefined, "adminListEvents: no user.disabled/user.enabled");

  step("adminListEvents type=user.disabled&type=user.enabled -> only those types");
  const wanted = ["user.disabled", "user.enabled"];
  {
    const page = await adminEvents({ type: wanted, limit: 200 }, "adminListEvents by two types");
    check(
      page.events.length > 0 && page.events.every((event) => wanted.includes(event.type)),
      `adminListEvents by two types: got types ${JSON.stringify([...new Set(typesOf(page.events))])}, ` +
        `expected only ${JSON.stringify(wanted)}`,
    );
    const ids = page.events.map((event) => event.id);
    check(
      ids.includes(disabledEvent.id) && ids.includes(enabledEvent.id),
      `adminListEvents by two types: the target's user.disabled/user.enabled events are missing from ` +
        JSON.stringify(typesOf(page.events)),
    );
  }

  step("adminListEvents by user_id and the two types, limit=1, following next until null");
  {
    const paged: SecurityEvent[] = [];
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      pages += 1;
      const page = await adminEvents(
        { user_id: target.id, type: wanted, limit: 1, ...(after === undefined ? {} : { after }) },
        `adminListEvents limit=1 page ${pages}`,
      );
      check(page.events.length <= 1, `adminListEvents limit=1 page ${pages}: ${page.events.length} events`);
      check(
        page.events.every((event) => wanted.includes(event.type) && event.user_id === target.id),
        `adminListEvents limit=1 page ${pages}: unfiltered event ${JSON.stringify(page.events)}`,
      );
      check(
        page.events.every((event) => !paged.some((seen) => seen.id === event.id)),
        `adminListEvents limit=1 page ${pages}: repeats an id of an earlier page`,
      );
      paged.push(...page.events);
      if (page.next === null) break;
      check(page.events.length === 1, `adminListEvents limit=1 page ${pages}: next ${page.next} on an empty page`);
      check(pages < 10, "adminListEvents limit=1: more than 10 pages for 2 events");
      after = page.next;
    }
    check(
      JSON.stringify(paged.map((event) => event.id)) === JSON.stringify([enabledEvent.id, disabledEvent.id]),
      `adminListEvents limit=1: paged through ${JSON.stringify(typesOf(paged))}, expected ["user.enabled","user.disabled"]`,
    );
  }

  step("adminListEvents since=now+1h -> no events, next null");
  {
    const since = new Date(Date.now() + 3_600_000).toISOString();
    const page = await adminEvents({ since }, "adminListEvents since=now+1h");
    check(
      page.events.length === 0 && page.next === null,
      `adminListEvents since=now+1h: ${JSON.stringify(typesOf(page.events))}, next ${page.next}, expected [] and null`,
    );
  }

  step("adminListEvents limit=0 -> 422 validation (limit/out_of_range)");
  {
    const { error, response } = await client.GET("/v1/admin/events", {
      headers: admin,
      params: { query: { limit: 0 } },
    });
    const errors = expectValidation(response, error, "limit", "adminListEvents limit=0");
    check(errors[0]?.code === "out_of_range", `adminListEvents limit=0: code ${errors[0]?.code}`);
  }

  const eventsName = randomName();
  step(`signup + signin ${eventsName}; listMyEvents -> user.signed_in, user.signed_up by the user`);
  let eventsUserId: string;
  {
    const { data, error, response } = await client.POST("/v1/auth/signup", {
      body: { username: eventsName, password: STRONG_PASSWORD },
    });
    expectStatus(response, 201, "signup for listMyEvents", data ?? error);
    check(data !== undefined, "signup for listMyEvents: no body");
    eventsUserId = data.id;
  }
  const eventsSigned = await signInAs(eventsName, STRONG_PASSWORD);
  const eventsPair = tokenPairOf(eventsSigned.response, eventsSigned.data, eventsSigned.error, "signin for listMyEvents");
  const myEvents = async (what: string) => {
    const { data, error, response } = await client.GET("/v1/me/events", {
      headers: bearer(eventsPair.access_token),
      params: { query: { limit: 200 } },
    });
    assertType<Exactly<NonNullable<typeof error>, Problem>>();
    assertType<Exactly<NonNullable<typeof data>, EventsPage>>();
    const page = eventsPage(response, data, error, what);
    check(page.next === null, `${what}: next ${page.next} on a page of ${page.events.length} events`);
    check(
      page.events.every((event) => event.user_id === eventsUserId),
      `${what}: events of other users: ${JSON.stringify(page.events.map((e) => [e.type, e.user_id]))}`,
    );
    check(
      page.events.every((event) => event.actor.name === null),
      `${what}: actor.name not null in a user's own list: ${JSON.stringify(page.events.map((e) => [e.type, e.actor.name]))}`,
    );
    return page;
  };
  {
    const page = await myEvents("listMyEvents");
    check(
      JSON.stringify(typesOf(page.events)) === JSON.stringify(["user.signed_in", "user.signed_up"]),
      `listMyEvents: types ${JSON.stringify(typesOf(page.events))}, expected ["user.signed_in","user.signed_up"]`,
    );
    check(
      page.events.every((event) => event.actor.kind === "user"),
      `listMyEvents: actor kinds ${JSON.stringify(page.events.map((e) => e.actor.kind))}, expected user`,
    );
    check(
      page.events[0]?.session_id === eventsPair.session_id,
      `listMyEvents: user.signed_in session_id ${page.events[0]?.session_id}, expected ${eventsPair.session_id}`,
    );
  }

  step("signin with a wrong password -> 401; listMyEvents shows user.signin_failed (written after the answer)");
  {
    const refused = await signInAs(eventsName, STRONG_PASSWORD + "x");
    expectProblem(refused.response, refused.error, 401, "invalid_credentials", "signin with a wrong password for listMyEvents");
    const deadline = Date.now() + 2_000;
    let page = await myEvents("listMyEvents after a wrong password");
    while (!page.events.some((event) => event.type === "user.signin_failed") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      page = await myEvents("listMyEvents after a wrong password");
    }
    const failed = page.events.filter((event) => event.type === "user.signin_failed");
    check(
      failed.length === 1,
      `listMyEvents after a wrong password: ${failed.length} user.signin_failed events within 2 s, expected 1, ` +
        `in ${JSON.stringify(typesOf(page.events))}`,
    );
    check(
      page.events[0]?.type === "user.signin_failed",
      `listMyEvents after a wrong password: newest is ${page.events[0]?.type}, expected user.signin_failed`,
    );
    check(
      failed[0]?.actor.kind === "user" && failed[0]?.actor.name === null,
      `listMyEvents: user.signin_failed actor ${failed[0]?.actor.kind}/${JSON.stringify(failed[0]?.actor.name)}`,
    );
  }

  step("listMyEvents without a token -> 401 invalid_token; with the admin token -> 401 invalid_token");
  {
    const { error, response } = await client.GET("/v1/me/events");
    expectProblem(response, error, 401, "invalid_token", "listMyEvents without a token");
    const challengeHeader = response.headers.get("www-authenticate") ?? "";
    check(
      challengeHeader.startsWith("Bearer"),
      `listMyEvents without a token: WWW-Authenticate ${JSON.stringify(challengeHeader)}, expected Bearer`,
    );
  }
  {
    const { error, response } = await client.GET("/v1/me/events", { headers: admin });
    expectProblem(response, error, 401, "invalid_token", "listMyEvents with an admin token");
  }

  step("adminDeleteUser -> 204; adminGetUser -> 404 not_found");
  {
    const { error, response } = await client.DELETE("/v1/admin/users/{id}", {
      headers: admin,
      params: { path: { id: target.id } },
    });
    expectStatus(response, 204, "adminDeleteUser", error);
  }
  {
    const { error, response } = await adminGet(target.id);
    expectProblem(response, error, 404, "not_found", "adminGetUser after adminDeleteUser");
  }

  step("all checks passed");
}

const baseUrl = process.argv[2]?.replace(/\/+$/, "");
if (!baseUrl) {
  console.error("usage: client.ts BASE_URL");
  process.exit(2);
}
try {
  await run(baseUrl);
} catch (error) {
  const message = error instanceof Mismatch ? error.message : String(error instanceof Error ? error.stack : error);
  console.error(`[ts client] FAILED: ${message}`);
  process.exit(1);
}
