// TypeScript ecosystem test: openapi-fetch driven by types that
// openapi-typescript generated from Tessera's live OpenAPI document.
// run.sh puts this file next to the generated schema.d.ts and typechecks both
// (strict) before running, so a document change that breaks a client fails.
//
// Usage (via run.sh): tsx client.ts BASE_URL

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
