// Browser ecosystem test: Tessera's Swagger UI in Debian's headless Chromium.
//
// Usage: node swagger_ui.mjs BASE_URL SCREENSHOT_PATH
//
// Signs a fresh user up with plain fetch, then, in /docs: signin -> Try it out
// -> fill the body -> Execute -> read access_token from the rendered response
// -> Authorize with it -> getMe -> Try it out -> Execute -> the rendered
// response shows 200 and the username. Every request the page makes must go to
// BASE_URL's host (the UI's assets are served by Tessera itself). Saves a
// full-page screenshot; on failure saves <name>.failure.png beside it instead
// and exits 1.

import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { dirname, join, parse, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";

const here = dirname(fileURLToPath(import.meta.url));
const ecosystemDir = process.env.TESSERA_ECOSYSTEM_DIR ?? resolve(here, "../../../target/ecosystem");
const require = createRequire(join(ecosystemDir, "node", "package.json"));

const STEP_TIMEOUT_MS = 30_000;
const OVERALL_TIMEOUT_MS = 120_000;
const PASSWORD = "correct-Horse-battery-9-staple";

function step(message) {
  console.log(`[swagger ui] ${message}`);
}

const [baseArg, screenshotArg] = process.argv.slice(2);
if (!baseArg || !screenshotArg) {
  console.error("usage: node swagger_ui.mjs BASE_URL SCREENSHOT_PATH");
  process.exit(2);
}
const baseUrl = baseArg.replace(/\/+$/, "");
const screenshotPath = resolve(screenshotArg);
const { dir: shotDir, name: shotName, ext: shotExt } = parse(screenshotPath);
const failurePath = join(shotDir, `${shotName}.failure${shotExt || ".png"}`);
mkdirSync(shotDir, { recursive: true });

let chromium;
try {
  ({ chromium } = require("playwright-core"));
} catch (error) {
  console.error(`[swagger ui] FAILED: playwright-core not found under ${ecosystemDir}/node: run tests/ecosystem/setup.sh (${error})`);
  process.exit(1);
}

let browser;
let page;

// Never hang: whatever happens, the process ends.
const watchdog = setTimeout(async () => {
  console.error(`[swagger ui] FAILED: no result after ${OVERALL_TIMEOUT_MS / 1000} s`);
  try {
    await page?.screenshot({ path: failurePath, fullPage: true, timeout: 5_000 });
  } catch {}
  process.exit(1);
}, OVERALL_TIMEOUT_MS);
watchdog.unref();

async function signupUser() {
  const username = "ui-" + randomBytes(6).toString("hex");
  const response = await fetch(`${baseUrl}/v1/auth/signup`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password: PASSWORD }),
    signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
  });
  if (response.status !== 201) {
    throw new Error(`signup via fetch answered ${response.status}: ${await response.text()}`);
  }
  return username;
}

/** Expand an operation (if collapsed), press "Try it out" and return its block. */
async function openOperation(tag, operationId) {
  const block = page.locator(`#operations-${tag}-${operationId}`);
  await block.waitFor({ state: "visible" });
  if (!(await block.evaluate((el) => el.classList.contains("is-open")))) {
    await block.locator(".opblock-summary").first().click();
  }
  await block.locator("button.try-out__btn").click();
  return block;
}

/** Press Execute and wait for the rendered live response; returns { status, body }. */
async function execute(block) {
  await block.locator("button.execute").click();
  const row = block.locator(".live-responses-table tbody .response").first();
  await row.waitFor({ state: "visible" });
  const status = (await row.locator(".response-col_status").first().innerText()).trim();
  const bodyBlock = row.locator(".response-col_description .highlight-code").first();
  await bodyBlock.waitFor({ state: "visible" });
  const body = (await bodyBlock.locator("pre, code").first().textContent()) ?? "";
  return { status, body };
}

async function main() {
  const baseHost = new URL(baseUrl).host;

  step(`signing a user up via fetch at ${baseUrl}`);
  const username = await signupUser();
  step(`user ${username} created`);

  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: STEP_TIMEOUT_MS,
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  page = await context.newPage();

  // Every request must stay on BASE_URL's host; foreign ones are recorded and
  // aborted (there is no internet here, so letting them through would only hang).
  const foreign = [];
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if ((url.protocol === "http:" || url.protocol === "https:") && url.host !== baseHost) {
      foreign.push(url.href);
      return route.abort("blockedbyclient");
    }
    return route.continue();
  });
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (!["http:", "https:", "data:", "blob:"].includes(url.protocol)) foreign.push(url.href);
  });
  const consoleErrors = [];
  page.on("pageerror", (error) => consoleErrors.push(String(error)));

  step(`opening ${baseUrl}/docs`);
  const docs = await page.goto(`${baseUrl}/docs`, { waitUntil: "load" });
  if (!docs || docs.status() !== 200) throw new Error(`/docs answered ${docs?.status()}`);
  await page.locator(".swagger-ui .information-container").waitFor({ state: "visible" });

  step("signin: Try it out, fill the body, Execute");
  const signin = await openOperation("Auth", "signin");
  await signin
    .locator("textarea.body-param__text")
    .fill(JSON.stringify({ username, password: PASSWORD }, null, 2));
  const signinResult = await execute(signin);
  if (signinResult.status !== "200") {
    throw new Error(`signin rendered status ${signinResult.status}: ${signinResult.body.slice(0, 300)}`);
  }
  let accessToken;
  try {
    accessToken = JSON.parse(signinResult.body).access_token;
  } catch (error) {
    throw new Error(`signin response body is not JSON: ${signinResult.body.slice(0, 300)}`);
  }
  if (typeof accessToken !== "string" || accessToken.split(".").length !== 3) {
    throw new Error(`no JWT access_token in the rendered signin response: ${signinResult.body.slice(0, 300)}`);
  }
  step("signin rendered 200 with an access_token");
  await signin.locator(".opblock-summary").first().click(); // collapse, keeps the screenshot short

  step("Authorize with the bearer token");
  await page.locator(".scheme-container button.authorize").click();
  const modal = page.locator(".dialog-ux .modal-ux");
  await modal.waitFor({ state: "visible" });
  // One entry per security scheme: the user's bearer token here; the admin
  // API's `adminToken` has an entry of its own.
  const adminEntry = modal.locator(".auth-container").filter({ hasText: "adminToken" });
  if ((await adminEntry.count()) !== 1) {
    throw new Error("the Authorize dialog has no entry of its own for adminToken");
  }
  const userEntry = modal.locator(".auth-container").filter({ hasText: "bearerAuth" });
  await userEntry.locator("input").first().fill(accessToken);
  await userEntry.locator(".auth-btn-wrapper button.authorize").click();
  await userEntry.locator(".auth-btn-wrapper button.btn-done").click();
  await modal.waitFor({ state: "hidden" });

  step("getMe: Try it out, Execute");
  const getMe = await openOperation("Account", "getMe");
  const meResult = await execute(getMe);
  await getMe.scrollIntoViewIfNeeded();
  if (meResult.status !== "200") {
    throw new Error(`getMe rendered status ${meResult.status}: ${meResult.body.slice(0, 300)}`);
  }
  let me;
  try {
    me = JSON.parse(meResult.body);
  } catch {
    throw new Error(`getMe response body is not JSON: ${meResult.body.slice(0, 300)}`);
  }
  if (me.username !== username) {
    throw new Error(`getMe rendered username ${JSON.stringify(me.username)}, expected ${username}`);
  }
  step(`getMe rendered 200 for ${username}`);

  if (foreign.length > 0) {
    throw new Error(`the page requested other hosts than ${baseHost}: ${[...new Set(foreign)].join(", ")}`);
  }
  if (consoleErrors.length > 0) {
    step(`note: page errors: ${consoleErrors.join(" | ")}`);
  }

  await page.screenshot({ path: screenshotPath, fullPage: true, timeout: STEP_TIMEOUT_MS });
  step(`screenshot saved to ${screenshotPath}`);
  step("all checks passed");
}

let exitCode = 0;
try {
  await main();
} catch (error) {
  exitCode = 1;
  console.error(`[swagger ui] FAILED: ${error instanceof Error ? error.message : error}`);
  if (page) {
    try {
      await page.screenshot({ path: failurePath, fullPage: true, timeout: 10_000 });
      console.error(`[swagger ui] failure screenshot saved to ${failurePath}`);
    } catch (shotError) {
      console.error(`[swagger ui] could not save a failure screenshot: ${shotError}`);
    }
  }
} finally {
  try {
    await browser?.close();
  } catch {}
}
process.exit(exitCode);
