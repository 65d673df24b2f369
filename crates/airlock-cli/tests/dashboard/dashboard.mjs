// The dashboard in a real browser: Playwright (playwright-core) drives Debian's chromium,
// headless, against a running `airlock serve` whose URL and tokens come from the
// environment (crates/airlock-cli/tests/dashboard_e2e.rs starts the server). Agents act
// through the HTTP API, as they would; operators act only through the pages. Every step
// waits on what the page shows (bounded waits, never fixed sleeps) and a screenshot of each
// page goes to $AIRLOCK_SCREENSHOTS. Exits non-zero at the first step that fails.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import assert from "node:assert/strict";

const URL_ = process.env.AIRLOCK_URL;
const OP = process.env.AIRLOCK_OP;
const OP2 = process.env.AIRLOCK_OP2;
const BOT = process.env.AIRLOCK_BOT;
const SHOTS = process.env.AIRLOCK_SCREENSHOTS || "screenshots";
const WAIT = 30_000;
mkdirSync(SHOTS, { recursive: true });

/** An agent's (or operator's) call to the API. */
async function api(method, path, token, body) {
  const r = await fetch(URL_ + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text };
}

const act = (verb, target, params = {}) =>
  api("POST", "/v1/actions", BOT, { provider: "sim", verb, target, params });

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

let n = 0;
async function step(name, fn) {
  n += 1;
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    console.error(`not ok ${n} - ${name}\n${e.stack || e}`);
    throw e;
  }
  console.log(`ok ${n} - ${name} (${Date.now() - t0} ms)`);
}

async function login(page, token) {
  await page.goto(URL_ + "/login");
  await page.getByLabel("Operator token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
let failed = false;
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(WAIT);

  await step("a page without a session sends the browser to the sign-in form", async () => {
    await page.goto(URL_ + "/approvals");
    assert.match(page.url(), /\/login\?next=\/approvals$/);
    await shot(page, "login");
  });

  await step("an agent's token cannot sign in", async () => {
    await page.getByLabel("Operator token").fill(BOT);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#login-error").getByText("agents' tokens cannot sign in").waitFor();
    assert.match(page.url(), /\/login$/);
    const cookies = await ctx.cookies();
    assert.ok(!cookies.some((c) => c.name === "airlock_session"), "no session for an agent");
    await page.goto(URL_ + "/");
    assert.match(page.url(), /\/login/);
    await shot(page, "login-agent-refused");
  });

  await step("an operator signs in, by keyboard alone, with an HttpOnly, SameSite=Strict session cookie", async () => {
    await page.goto(URL_ + "/login");
    // The token field has the focus; Enter sends the form.
    await page.keyboard.type(OP);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Feed" }).waitFor();
    // The first Tab reaches the skip link, which moves the focus to the content.
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
    await page.keyboard.press("Enter");
    assert.equal(await page.evaluate(() => document.activeElement.id), "main");
    const c = (await ctx.cookies()).find((c) => c.name === "airlock_session");
    assert.ok(c, "session cookie set");
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, "Strict");
  });

  await step("a form without the CSRF token (or with a wrong one) is refused and changes nothing", async () => {
    const none = await page.request.post(URL_ + "/killswitch", { form: { state: "on", confirm: "yes" } });
    assert.equal(none.status(), 403);
    assert.match(await none.text(), /CSRF token is missing or wrong/);
    const wrong = await page.request.post(URL_ + "/killswitch", {
      form: { state: "on", confirm: "yes", _csrf: "0".repeat(64) },
    });
    assert.equal(wrong.status(), 403);
    const freeze = await page.request.post(URL_ + "/agents/bot/freeze", { form: {} });
    assert.equal(freeze.status(), 403);
    assert.equal((await api("GET", "/v1/killswitch", OP)).json.killswitch, "off");
    const agents = await api("GET", "/v1/agents/bot", OP);
    assert.ok(agents.status === 404 || agents.json.breaker === null, agents.text);
  });

  let scratchHold;
  await step("a hold appears in the live feed without a reload", async () => {
    await page.goto(URL_ + "/");
    await page.locator("#live-status.on").waitFor();
    const r = await act("delete", "sim:service/scratch");
    assert.equal(r.json.verdict, "hold", r.text);
    scratchHold = r.json;
    const row = page.locator(`#feed tr[data-kind="verdict"][data-verdict="hold"]`, { hasText: "scratch" });
    await row.first().waitFor();
    assert.equal(await page.locator("#live-status").textContent(), "live");
    await shot(page, "feed");
  });

  let envHold;
  await step("the approvals page shows a new hold live", async () => {
    await page.goto(URL_ + "/approvals");
    await page.locator(`tr[data-approval="${scratchHold.approval_id}"]`).waitFor();
    await page.waitForTimeout(300); // the page's stream is open before the agent acts
    const r = await act("delete", "sim:environment/prod");
    assert.equal(r.json.verdict, "hold", r.text);
    assert.equal(r.json.risk, "critical", r.text);
    envHold = r.json;
    await page.locator(`tr[data-approval="${envHold.approval_id}"]`).waitFor();
    await shot(page, "approvals");
  });

  await step("a hold's page shows the plan, blast radius, reasons and the agent", async () => {
    await page.goto(URL_ + `/approvals/${envHold.approval_id}`);
    await page.getByRole("heading", { name: "The plan (dry run)" }).waitFor();
    const body = await page.locator("main").textContent();
    for (const want of [
      "delete sim:environment/prod", "Blast radius", "Reached through the target",
      "sim:service/web", "prod-destructive-needs-approval", "What the policies say",
      "Capacity change", "Anomaly score", "Two-person rule: 2 approvals needed",
    ]) {
      assert.ok(body.includes(want), `the hold's page shows "${want}"`);
    }
    await shot(page, "approval-critical");
  });

  let scratchChange;
  await step("approving a hold applies it, and its change bakes to an end", async () => {
    await page.goto(URL_ + `/approvals/${scratchHold.approval_id}`);
    await page.getByLabel("Reason (journaled with your decision)").fill("scratch is unused");
    await shot(page, "approval");
    await page.getByRole("button", { name: "Approve" }).click();
    await page.waitForURL(/\/actions\/act_/);
    await page.getByRole("link", { name: /The change/ }).click();
    await page.waitForURL(/\/changes\/chg_/);
    scratchChange = page.url().split("/changes/")[1];
    // The page refreshes itself when the bake ends.
    await page.locator("#change .badge", { hasText: /^(unjudged|settled)$/ }).first().waitFor();
    const tl = await page.locator("ol.timeline").textContent();
    assert.match(tl, /approval by op: approve/);
    assert.match(tl, /applied: delete sim:service\/scratch/);
  });

  let badChange;
  await step("a bad deploy's automatic revert appears in the feed live", async () => {
    await page.goto(URL_ + "/?agent=bot");
    await page.locator("#live-status.on").waitFor();
    const r = await act("deploy", "sim:service/api", { version: "bad" });
    assert.equal(r.json.verdict, "allow", r.text);
    badChange = r.json.change_id;
    await page.locator(`#feed tr[data-kind="reverted"]`, { hasText: "api" }).first().waitFor({ timeout: 60_000 });
    await page.locator(`#feed tr[data-kind="breach"]`).first().waitFor();
    await shot(page, "feed-revert");
  });

  await step("the reverted change's page charts the signal against its SLO and baseline", async () => {
    await page.goto(URL_ + `/changes/${badChange}`);
    await page.locator("#change .badge", { hasText: /^reverted$/ }).first().waitFor();
    const fig = page.locator("figure.chart", { hasText: "availability of api" });
    await fig.waitFor();
    assert.ok((await fig.locator("circle").count()) >= 1, "polls are plotted");
    assert.ok((await fig.locator('circle[fill="#b3261e"]').count()) >= 1, "the breach is marked");
    assert.match(await fig.locator("figcaption").textContent(), /SLO >= 0.999/);
    assert.match(await page.locator("ol.timeline").textContent(), /reverted by /);
    await shot(page, "change-reverted");
  });

  await step("freezing an agent holds its next action", async () => {
    await page.goto(URL_ + "/agents/bot");
    await page.getByRole("button", { name: "Freeze bot" }).click();
    await page.getByRole("button", { name: "Unfreeze bot" }).waitFor();
    const r = await act("scale", "sim:service/web", { replicas: 5 });
    assert.equal(r.json.verdict, "hold", r.text);
    assert.ok(r.json.reasons.some((x) => x.startsWith("breaker-open")), r.text);
    await page.goto(URL_ + "/agents");
    await page.locator("tr", { hasText: "bot" }).getByText("open").first().waitFor();
    await shot(page, "agents");
    // Deny it from its page, then unfreeze.
    await page.goto(URL_ + `/approvals/${r.json.approval_id}`);
    await page.getByLabel("Reason (journaled with your decision)").fill("frozen for review");
    await page.getByRole("button", { name: "Deny" }).click();
    await page.waitForURL(/\/actions\//);
    await page.locator("#action .badge", { hasText: "denied" }).first().waitFor();
    await page.goto(URL_ + "/agents/bot");
    await page.getByRole("button", { name: "Unfreeze bot" }).click();
    await page.getByRole("button", { name: "Freeze bot" }).waitFor();
    await shot(page, "agent");
  });

  await step("undo shows a preview of what it reverts, then reverts it", async () => {
    const a = await act("scale", "sim:service/api", { replicas: 5 });
    assert.equal(a.json.verdict, "allow", a.text);
    const b = await act("scale", "sim:service/api", { replicas: 6 });
    assert.equal(b.json.verdict, "allow", b.text);
    await page.goto(URL_ + "/agents/bot");
    await page.getByLabel(/Undo its changes since/).fill("1h");
    await page.getByRole("button", { name: "Preview the undo" }).click();
    await page.waitForURL(/\/agents\/bot\/undo\?since=1h/);
    const rows = page.locator("table.undo tbody tr");
    // The two scales and the scratch delete, newest first; the older scale is checked
    // against what the newer one's revert restores, so it is clean too.
    assert.equal(await rows.count(), 3, await page.locator("main").textContent());
    for (const id of [a.json.change_id, b.json.change_id, scratchChange]) {
      await page.locator("table.undo tr", { hasText: id }).getByText("revert", { exact: true }).waitFor();
    }
    // Nothing changed yet.
    assert.equal((await api("GET", `/v1/changes/${b.json.change_id}`, OP)).json.status !== "reverted", true);
    await shot(page, "undo-preview");
    await page.getByRole("button", { name: /Undo: revert 3 changes/ }).click();
    await page.locator("#undo-result", { hasText: "Reverted 3 changes." }).waitFor();
    for (const id of [a.json.change_id, b.json.change_id, scratchChange]) {
      assert.equal((await api("GET", `/v1/changes/${id}`, OP)).json.status, "reverted", id);
    }
  });

  await step("under the two-person rule a second operator is needed, and nobody approves twice", async () => {
    await page.goto(URL_ + `/approvals/${envHold.approval_id}`);
    await page.getByLabel("Reason (journaled with your decision)").fill("planned rebuild");
    await page.getByRole("button", { name: "Approve" }).click();
    await page.waitForURL(/\/actions\//);
    assert.equal((await api("GET", `/v1/actions/${envHold.id}`, OP)).json.status, "held");
    await page.goto(URL_ + `/approvals/${envHold.approval_id}`);
    const approve = page.getByRole("button", { name: "Approve" });
    assert.equal(await approve.isDisabled(), true, "the same operator cannot approve again");
    await page.locator("#why-disabled", { hasText: "You approved already" }).waitFor();
    assert.match(await page.locator(".two-person").textContent(), /approved by op; 1 more needed/);
    await shot(page, "approval-two-person");

    const ctx2 = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const p2 = await ctx2.newPage();
    p2.setDefaultTimeout(WAIT);
    await login(p2, OP2);
    await p2.goto(URL_ + `/approvals/${envHold.approval_id}`);
    assert.equal(await p2.getByRole("button", { name: "Approve" }).isDisabled(), false);
    await p2.getByLabel("Reason (journaled with your decision)").fill("second pair of eyes");
    await p2.getByRole("button", { name: "Approve" }).click();
    await p2.waitForURL(/\/actions\//);
    // Both approvals count: the hold is answered, and the request is decided again with
    // them in hand (where a guard may still deny it: here the destructive budget, which the
    // scratch delete spent).
    const v = (await api("GET", `/v1/actions/${envHold.id}`, OP)).json;
    assert.notEqual(v.status, "held", JSON.stringify(v));
    const events = await p2.locator("table.events").textContent();
    assert.match(events, /approval by op: approve/);
    assert.match(events, /approval by op2: approve/);
    await shot(p2, "action-two-approvals");
    await ctx2.close();
  });

  await step("the kill switch asks for confirmation, then denies every mutation", async () => {
    await page.goto(URL_ + "/killswitch");
    await shot(page, "killswitch");
    await page.getByRole("button", { name: "Turn the kill switch on" }).click();
    // Unconfirmed: the browser does not send the form.
    assert.equal((await api("GET", "/v1/killswitch", OP)).json.killswitch, "off");
    await page.getByLabel(/I understand/).check();
    await page.getByRole("button", { name: "Turn the kill switch on" }).click();
    await page.getByRole("link", { name: "Kill switch: ON" }).waitFor();
    const r = await act("scale", "sim:service/web", { replicas: 5 });
    assert.equal(r.json.verdict, "deny", r.text);
    assert.ok(r.json.reasons.includes("killswitch"), r.text);
    await page.getByRole("button", { name: "Turn the kill switch off" }).click();
    await page.getByRole("link", { name: "Kill switch: off" }).waitFor();
  });

  await step("the journal pages newest first and verifies its chain on request", async () => {
    await page.goto(URL_ + "/journal");
    assert.ok((await page.locator("table.journal tbody tr").count()) > 10);
    await page.getByRole("button", { name: "Verify the chain now" }).click();
    await page.locator("#verify-result", { hasText: /Verified: the chain of \d+ events holds/ }).waitFor();
    await shot(page, "journal");
    await page.goto(URL_ + "/changes");
    await shot(page, "changes");
  });

  await step("proving-ground reports are listed and open sandboxed", async () => {
    await page.goto(URL_ + "/reports");
    const link = page.locator("ul.reports a").first();
    await link.waitFor();
    await shot(page, "reports");
    const resp = await page.request.get(URL_ + (await link.getAttribute("href")));
    assert.equal(resp.status(), 200);
    assert.match(resp.headers()["content-security-policy"], /sandbox/);
    const bad = await page.request.get(URL_ + "/reports/..%2Fairlock.toml");
    assert.notEqual(bad.status(), 200);
  });

  await step("signing out ends the session", async () => {
    await page.goto(URL_ + "/");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/\/login/);
    await page.goto(URL_ + "/agents");
    assert.match(page.url(), /\/login/);
  });
} catch (e) {
  failed = true;
} finally {
  await browser.close();
}
console.log(failed ? "FAILED" : `all ${n} steps passed`);
process.exit(failed ? 1 : 0);
