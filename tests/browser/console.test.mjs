// Drives the real console in Chromium through the real edge.
//
// Started by the Rust test `console::the_console_works_in_a_real_browser`
// (tests/it/console.rs), which runs `rampart serve` and passes:
//   RAMPART_URL          https://localhost:<port> of the edge
//   RAMPART_SETUP_TOKEN  the one-time setup token
//   RAMPART_ARTIFACTS    where screenshots go
//   CHROMIUM             the browser (default /usr/bin/chromium)
// Exits non-zero on the first failed step, on any console error, uncaught
// exception or CSP violation.

import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const base = need("RAMPART_URL");
const setupToken = need("RAMPART_SETUP_TOKEN");
const artifacts = need("RAMPART_ARTIFACTS");
const PASSWORD = "correct horse battery staple";
mkdirSync(artifacts, { recursive: true });

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

// Errors the browser logs for answers the console expects and handles: a
// 401 from the session probe before sign-in (and after sign-out).
// Everything else fails.
const EXPECTED = [[/\/api\/v1\/auth\/session$/, /status of 401/]];
const problems = [];
// Refusals a step provokes on purpose (a bad field, a conflict), each
// allowed once.
const provoked = [];
const provoke = (path, status) => provoked.push([path, `status of ${status}`]);

async function newPage(browser, name, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  const page = await context.newPage();
  // Reported as console errors, so the listener below catches them too.
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
    });
  });
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const url = msg.location().url || "";
    if (EXPECTED.some(([u, t]) => u.test(url) && t.test(msg.text()))) return;
    const i = provoked.findIndex(([path, status]) => url.endsWith(path) && msg.text().includes(status));
    if (i >= 0) return void provoked.splice(i, 1);
    problems.push(`[${name}] console error: ${msg.text()} (${url})`);
  });
  page.on("pageerror", (err) => problems.push(`[${name}] uncaught: ${err.message}`));
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

async function signIn(page, username = "admin") {
  await page.goto(`${base}/`);
  await page.getByRole("heading", { name: "Sign in to Rampart" }).waitFor();
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Dashboard" }).waitFor();
}

async function go(page, section) {
  await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: section, exact: true }).click();
}

const step = async (name, work) => {
  const started = Date.now();
  await work();
  console.log(`ok ${name} (${Date.now() - started} ms)`);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
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
});

let failed = null;
try {
  const a = await newPage(browser, "A");
  a.setDefaultTimeout(15000);

  await step("first-admin setup from the banner's link", async () => {
    await a.goto(`${base}/setup#token=${setupToken}`);
    await a.getByRole("heading", { name: "Create the first admin" }).waitFor();
    check((await a.getByLabel("Setup token").inputValue()) === setupToken, "the token is taken from the fragment");
    check(!a.url().includes("token="), "the token is removed from the address bar");
    await shot(a, "01-setup");
    // A short password: the API's problem names the field, shown beside it.
    await a.getByLabel("Password (12 characters or more)").fill("short");
    provoke("/api/v1/setup", 400);
    await a.getByRole("button", { name: "Create admin" }).click();
    await a.locator('[data-field="password"] .error:not(:empty)').waitFor();
    await a.getByLabel("Password (12 characters or more)").fill(PASSWORD);
    await a.getByRole("button", { name: "Create admin" }).click();
    await a.getByText("The first admin exists. Sign in.").waitFor();
  });

  await step("sign in; nothing in web storage, the cookie out of reach", async () => {
    await signIn(a);
    const stored = await a.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]);
    check(stored[0] === 0 && stored[1] === 0, `web storage is empty: ${stored}`);
    check(stored[2] === "", "the session cookie is HttpOnly");
    await a.getByText("No servers yet — create one under Servers.").waitFor();
    await a.locator("#live.on").waitFor();
    await shot(a, "02-dashboard");
  });

  let orgUrl;
  await step("organization; a conflict is shown next to its field", async () => {
    await go(a, "Organizations");
    await a.getByText("No organizations yet — create one.").waitFor();
    const form = a.getByRole("form", { name: "New organization" });
    await form.getByLabel("Name").fill("Acme");
    await form.getByRole("button", { name: "Create organization" }).click();
    await a.getByRole("link", { name: "Acme" }).waitFor();
    await form.getByLabel("Name").fill("Acme");
    provoke("/api/v1/orgs", 409);
    await form.getByRole("button", { name: "Create organization" }).click();
    await form.locator('[data-field="name"] .error:not(:empty)').waitFor();
    await shot(a, "03-orgs");
    await a.getByRole("link", { name: "Acme" }).click();
    await a.getByRole("heading", { name: "Acme" }).waitFor();
    orgUrl = a.url();
  });

  await step("server: the network is checked as you type; attach the org", async () => {
    await go(a, "Servers");
    const form = a.getByRole("form", { name: "New server" });
    await form.getByLabel("Name").fill("Edge one");
    await form.getByLabel("IPv4 network").fill("198.18.0.1/24");
    await form.locator('[data-field="network"] .error', { hasText: "host bits" }).waitFor();
    await form.getByLabel("IPv4 network").fill("198.18.0.0/24");
    check((await form.locator('[data-field="network"] .error').textContent()) === "", "the error goes away");
    await form.getByRole("button", { name: "Create server" }).click();
    await a.getByRole("link", { name: "Edge one" }).click();
    await a.getByRole("heading", { name: /Edge one/ }).waitFor();
    await a.getByText("No live sessions.").waitFor();
    await a.getByRole("form", { name: "Attach an organization" }).getByRole("button", { name: "Attach" }).click();
    await a.getByRole("button", { name: "Detach Acme" }).waitFor();
    await a.getByRole("button", { name: "Start" }).click();
    await a.getByRole("button", { name: "Stop" }).waitFor();
    await shot(a, "04-server");
  });

  let userUrl;
  await step("user", async () => {
    await a.goto(orgUrl);
    const form = a.getByRole("form", { name: "New user" });
    await form.getByLabel("Name").fill("Alice");
    await form.getByLabel("Email (optional)").fill("alice@example.com");
    await form.getByRole("button", { name: "Add user" }).click();
    await a.getByRole("link", { name: "Alice" }).click();
    await a.getByRole("heading", { name: "Alice" }).waitFor();
    userUrl = a.url();
  });

  const b = await newPage(browser, "B");
  b.setDefaultTimeout(15000);
  await step("a second console watches the same user", async () => {
    await signIn(b);
    await b.goto(userUrl);
    await b.getByText("No devices yet — add one.").waitFor();
    await b.locator("#live.on").waitFor();
    await b.evaluate(() => (window.notReloaded = true));
  });

  await step("device; it appears live in the other console", async () => {
    const form = a.getByRole("form", { name: "New device" });
    await form.getByLabel("Name", { exact: true }).fill("laptop");
    await form.getByRole("button", { name: "Add device" }).click();
    await a.getByRole("cell", { name: "laptop", exact: true }).waitFor();
    await b.getByRole("cell", { name: "laptop", exact: true }).waitFor({ timeout: 5000 });
    check(await b.evaluate(() => window.notReloaded === true), "B did not reload");
    await shot(b, "05-live-device-in-second-console");
  });

  await step("download the profile and show its QR code", async () => {
    const [download] = await Promise.all([a.waitForEvent("download"), a.getByRole("link", { name: "Download profile" }).click()]);
    const profile = readFileSync(await download.path(), "utf8");
    check(profile.includes("[Interface]") && profile.includes("PrivateKey = "), "the profile has the generated key");
    check(download.suggestedFilename().endsWith(".conf"), "a .conf file");
    await a.getByRole("button", { name: /QR code for laptop/ }).click();
    const img = a.getByRole("img", { name: /QR code of laptop/ });
    await img.waitFor();
    await a.waitForFunction(() => document.querySelector(".qr img")?.naturalWidth > 0);
    await shot(a, "06-user-devices");
  });

  await step("key link, copied", async () => {
    await a.getByRole("button", { name: "Create key link" }).click();
    const url = await a.locator("code.secret").textContent();
    check(/\/k\/[A-Za-z0-9_-]{43}$/.test(url), `a key link: ${url}`);
    await a.getByRole("button", { name: "Copy link" }).click();
    await a.getByText("Copied.").waitFor();
    check((await a.evaluate(() => navigator.clipboard.readText())) === url, "the clipboard holds the link");
  });

  await step("the audit log shows the changes, newest first, and the chain verifies", async () => {
    await go(a, "Audit log");
    // Scoped to the audit table: the previous screen's rows stay in the
    // document until the new screen has loaded.
    const entries = a.getByRole("table", { name: "Audit entries, newest first" });
    await entries.locator("tbody tr").first().waitFor();
    const actions = await entries.locator("tbody tr td:nth-child(4)").allTextContents();
    for (const needed of ["setup", "auth.login", "org.create", "server.create", "user.create", "device.create", "device.config"]) {
      check(actions.includes(needed), `audit has ${needed}: ${actions}`);
    }
    const ids = (await entries.locator("tbody tr td:nth-child(1)").allTextContents()).map(Number);
    check(ids.every((id, i) => i === 0 || ids[i - 1] > id), "newest first");
    const form = a.getByRole("form", { name: "Filter the audit log" });
    await form.getByLabel("Action").fill("device.create");
    await form.getByRole("button", { name: "Apply" }).click();
    await a.waitForFunction(() => document.querySelectorAll("tbody tr").length === 1);
    await a.getByRole("button", { name: "Verify chain" }).click();
    await a.getByText(/Intact: \d+ entries verified/).waitFor();
    await shot(a, "07-audit");
  });

  await step("API token shown once; admins, account, settings", async () => {
    await go(a, "API tokens");
    await a.getByText("No API tokens yet — create one for a script.").waitFor();
    await a.getByRole("form", { name: "New API token" }).getByLabel("Name").fill("ci");
    await a.getByRole("button", { name: "Create token" }).click();
    const token = await a.locator("code.secret").textContent();
    check(/^rpt_[A-Za-z0-9_-]{43}$/.test(token), "the token is shown");
    await shot(a, "08-tokens");
    await go(a, "Admins");
    const form = a.getByRole("form", { name: "New admin" });
    await form.getByLabel("Username").fill("audrey");
    await form.getByLabel("Password (12 characters or more)").fill(PASSWORD);
    await form.getByLabel("Role").selectOption("auditor");
    await form.getByRole("button", { name: "Create admin" }).click();
    await a.getByRole("cell", { name: "audrey", exact: true }).waitFor();
    await shot(a, "09-admins");
    await go(a, "My account");
    await a.getByRole("button", { name: "Turn on TOTP" }).click();
    await a.getByRole("img", { name: "TOTP enrolment QR code" }).waitFor();
    await a.waitForFunction(() => document.querySelector("img.qr")?.naturalWidth > 0);
    await shot(a, "10-account-totp");
    await go(a, "Settings");
    await a.getByRole("heading", { name: "Certificate", exact: true }).waitFor();
    await shot(a, "11-settings");
  });

  await step("after a reload the session and its CSRF token come back", async () => {
    await a.goto(orgUrl.replace(/#.*/, "#/orgs"));
    await a.reload();
    await a.getByRole("link", { name: "Acme" }).waitFor();
    const form = a.getByRole("form", { name: "New organization" });
    await form.getByLabel("Name").fill("Globex");
    await form.getByRole("button", { name: "Create organization" }).click();
    await a.getByRole("link", { name: "Globex" }).waitFor();
  });

  await step("an auditor sees only what it may do", async () => {
    const c = await newPage(browser, "C");
    await signIn(c, "audrey");
    const nav = await c.getByRole("navigation", { name: "Sections" }).getByRole("link").allTextContents();
    check(!nav.includes("Admins") && !nav.includes("API tokens") && !nav.includes("Settings"), `auditor menu: ${nav}`);
    check(nav.includes("Audit log"), "auditors read the audit log");
    await go(c, "Organizations");
    await c.getByRole("link", { name: "Acme" }).waitFor();
    check((await c.getByRole("form", { name: "New organization" }).count()) === 0, "no create form");
    check((await c.getByRole("button", { name: /Delete/ }).count()) === 0, "no delete buttons");
    await c.context().close();
  });

  await step("readable at phone width, keyboard first", async () => {
    const p = await newPage(browser, "phone", { width: 375, height: 812 });
    await signIn(p);
    await go(p, "Servers");
    await p.getByRole("link", { name: "Edge one" }).waitFor();
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `no sideways scrolling at 375 px (overflow ${overflow})`);
    await shot(p, "12-phone-servers");
    // Keyboard: on a fresh load Tab reaches the skip link first, Enter on
    // it moves focus to the content, and the menu is reachable by Tab.
    await p.reload();
    await p.getByRole("link", { name: "Edge one" }).waitFor();
    await p.keyboard.press("Tab");
    check(await p.evaluate(() => document.activeElement?.classList.contains("skip")), "Tab reaches the skip link first");
    await p.keyboard.press("Enter");
    check(await p.evaluate(() => document.activeElement?.id === "main"), "the skip link moves focus to the content");
    await p.keyboard.press("Shift+Tab");
    await p.keyboard.press("Shift+Tab");
    const focused = await p.evaluate(() => document.activeElement?.tagName);
    check(["A", "BUTTON"].includes(focused), `the header is reachable by keyboard (${focused})`);
    await p.context().close();
  });

  await step("sign-out ends the session", async () => {
    await a.getByRole("button", { name: "Sign out" }).click();
    await a.getByText("You are signed out.").waitFor();
    const status = await a.evaluate(async () => (await fetch("/api/v1/auth/session")).status);
    check(status === 401, `the session is gone (${status})`);
    // The other console's session is its own and stays.
    await b.getByRole("cell", { name: "laptop", exact: true }).waitFor();
  });
} catch (err) {
  failed = err;
}
await browser.close();

if (failed) console.error(`FAILED: ${failed.stack || failed}`);
for (const p of problems) console.error(p);
for (const [path, status] of provoked) problems.push(`a provoked refusal never came: ${path} ${status}`);
if (failed || problems.length) process.exit(1);
console.log("console browser test passed");
