// TypeScript ecosystem test: openapi-fetch driven by types that
// openapi-typescript generated from Tessera's live OpenAPI document.
// run.sh puts this file next to the generated schema.d.ts and typechecks both
// (strict) before running, so a document change that breaks a client fails.
//
// Usage (via run.sh): tsx client.ts BASE_URL
// The reset step runs the operator CLI: it needs TESSERA_BIN (the tessera
// binary), TESSERA_REPO (the repository root, its working directory) and the
// server's configuration as TESSERA_ENV, TESSERA__DATABASE__URL,
// TESSERA__REDIS__URL and TESSERA__REDIS__KEY_PREFIX (tests/ecosystem.rs sets them).

import { execFileSync } from "node:child_process";
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type Problem = components["schemas"]["Problem"];
type FieldError = components["schemas"]["FieldError"];

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
  expectStatus(signinResponse, 200, "signin", pair ?? signinError);
  check(pair !== undefined, "signin: no body");
  check(pair.token_type === "Bearer", `signin: token_type ${pair.token_type}`);
  const sessionId: string = pair.session_id;

  step("getMe");
  {
    const { data, error, response } = await client.GET("/v1/me", { headers: bearer(pair.access_token) });
    assertType<Exactly<NonNullable<typeof error>, Problem>>();
    expectStatus(response, 200, "getMe", data ?? error);
    check(data?.username === username, `getMe: username ${data?.username}, expected ${username}`);
  }

  step("listSessions");
  {
    const { data, error, response } = await client.GET("/v1/sessions", { headers: bearer(pair.access_token) });
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
    body: { refresh_token: pair.refresh_token },
  });
  expectStatus(refreshResponse, 200, "refresh", renewed ?? refreshError);
  check(renewed !== undefined, "refresh: no body");
  check(renewed.session_id === sessionId, `refresh: session_id ${renewed.session_id}, expected ${sessionId}`);
  check(renewed.refresh_token !== pair.refresh_token, "refresh: the refresh token did not rotate");

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
    expectStatus(response, 200, what, data ?? error);
    check(data !== undefined, `${what}: no body`);
    return data;
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
  await signIn(RESET_PASSWORD, "signin with the reset password");
  await refreshRejected(caller.refresh_token, "refresh of a session from before the reset");

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
