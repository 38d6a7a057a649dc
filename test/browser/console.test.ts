/**
 * The web console in real Chromium (Debian's `chromium` through playwright-core) against a real
 * `podium dev` with an API key: log in, deploy a bundle by dropping it on the deployments page, create
 * an instance, converse and see the streamed reply, step the state timeline back a version, open a
 * file's history and its diff, stop the instance. A screenshot of each view goes to
 * test-artifacts/console/ (git-ignored; CI keeps it as an artefact).
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import fs from "node:fs";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { API_KEY, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { chromiumPath } from "../helpers/chromium.js";
import { ensureConsoleBuilt } from "../helpers/console-build.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import { packBundle } from "../../services/registry/bundle-archive.js";

const SHOTS = path.join(REPO_ROOT, "test-artifacts/console");
const DEPLOYMENT = "console-demo:1.0.0@local";

interface DropGlobals {
  atob(base64: string): string;
  DataTransfer: new () => { items: { add(file: object): void } };
  File: new (parts: Uint8Array[], name: string, options: { type: string }) => object;
  DragEvent: new (type: string, init: { dataTransfer: object; bubbles: boolean; cancelable: boolean }) => Event;
}

let podium: DevFixture;
let browser: Browser;
let page: Page;
let instanceId = "";

const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

beforeAll(async () => {
  ensureConsoleBuilt();
  fs.mkdirSync(SHOTS, { recursive: true });
  podium = await startDevFixture();
  browser = await chromium.launch({ executablePath: chromiumPath(), args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await podium?.close();
});

describe("the web console", () => {
  it("asks for the API key and logs in with it", async () => {
    await page.goto(`${podium.url}/console`);
    await page.getByLabel("API key").fill("not-the-key");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByText("This key was refused (401).").waitFor();
    await page.getByLabel("API key").fill(API_KEY);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Instances" }).waitFor();
    expect(await page.evaluate("sessionStorage.getItem('podium.apiKey')")).toBe(API_KEY);
  }, 60_000);

  it("deploys a bundle dropped on the deployments page, and the same folder packed by the page", async () => {
    await page.getByRole("link", { name: "Deployments" }).click();
    const archive = (await packBundle(path.join(REPO_ROOT, "test/fixtures/console-bundle"))).toString("base64");
    // What a drop of the archive from the desktop dispatches (the page's DOM types, named here: this
    // project's tsconfig has no DOM lib).
    await page.getByTestId("dropzone").evaluate((zone, base64) => {
      const dom = globalThis as unknown as DropGlobals;
      const bytes = Uint8Array.from(dom.atob(base64), (c) => c.charCodeAt(0));
      const data = new dom.DataTransfer();
      data.items.add(new dom.File([bytes], "console-demo.tar.gz", { type: "application/gzip" }));
      zone.dispatchEvent(new dom.DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
    }, archive);
    await page
      .getByTestId("upload-status")
      .filter({ hasText: `Deployed ${DEPLOYMENT} (sha256:` })
      .waitFor();
    await page.locator(`tr[data-deployment="${DEPLOYMENT}"]`).waitFor();
    // The same folder picked as a folder: packed by the page itself, to the same content (same digest).
    await page.locator("input[name=bundle-folder]").setInputFiles(path.join(REPO_ROOT, "test/fixtures/console-bundle"));
    await page
      .getByTestId("upload-status")
      .filter({ hasText: `Already deployed ${DEPLOYMENT} (sha256:` })
      .waitFor();
    await shot("deployments");
  }, 60_000);

  it("creates an instance and converses with it: the reply streams in", async () => {
    await page.getByRole("link", { name: "Instances" }).click();
    await page.getByLabel("Deployment").first().selectOption(DEPLOYMENT);
    await page.getByRole("button", { name: "Create instance" }).click();
    await page.waitForURL(/#\/instances\/inst-/, { timeout: 30_000 });
    instanceId = decodeURIComponent(page.url().split("#/instances/")[1] ?? "");
    await page.getByText("● live").waitFor();
    const composer = page.locator("textarea[name=message]");
    await composer.fill("hello podium console");
    await composer.press("Enter");
    await page.locator(".bubble.agent.done").filter({ hasText: "echo: hello podium console" }).waitFor({ timeout: 30_000 });
    await composer.fill("second turn here");
    await page.getByRole("button", { name: "Send" }).click();
    await page.locator(".bubble.agent.done").filter({ hasText: "echo: second turn here" }).waitFor({ timeout: 30_000 });
    await expect(page.locator(".bubble.user").allInnerTexts()).resolves.toEqual(["hello podium console", "second turn here"]);
    await page
      .getByTestId("event-count")
      .filter({ hasText: /last seq \d+/ })
      .waitFor();
    await shot("instance-stream");
  }, 60_000);

  it("opens a turn's trace: a waterfall of its spans from the gateway, the coordinator and the agent, with durations", async () => {
    // Each message the page sends carries a sampled traceparent; its turn links to the trace.
    const link = page.locator('.turn:has-text("second turn here") [data-testid=trace-link]');
    await link.click();
    await page.waitForURL(/\/trace\/[0-9a-f]{32}$/);
    const traceId = page.url().split("/trace/")[1] ?? "";
    // The agent's span ends with the turn; the view reloads until it is there.
    await page.locator('[data-testid=span][data-service="podium-agent"]').waitFor({ timeout: 30_000 });
    const services = await page.getByTestId("span").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-service")));
    expect(new Set(services)).toEqual(new Set(["podium-gateway", "podium-coordinator", "podium-agent"]));
    const names = await page.locator("[data-testid=span] .span-name").allInnerTexts();
    expect(names.map((n) => n.replace(/\s+/g, " ").trim())).toEqual([
      "gateway WS process_message",
      "gateway podium.v1.InstanceService/SendMessage",
      "coordinator podium.v1.InstanceService/SendMessage",
      "coordinator podium.turn",
      "agent agent onMessage",
    ]);
    for (const duration of await page.getByTestId("span-duration").allInnerTexts()) expect(duration).toMatch(/^\d+(\.\d+)? (ms|s)$/);
    // Opened, a span shows its attributes: the agent's turn names the instance.
    await page.locator('[data-testid=span][data-service="podium-agent"] summary').click();
    await page.locator('[data-testid=span][data-service="podium-agent"] td', { hasText: instanceId }).waitFor();
    // The same spans from the API the page reads.
    const api = await podium.api("GET", `/api/v1/traces/${traceId}`);
    expect((api.json.spans as unknown[]).length).toBe(5);
    await shot("instance-trace");
    await page.getByRole("link", { name: "← Stream" }).click();
    await page.locator(".bubble.agent.done").filter({ hasText: "echo: second turn here" }).waitFor();
  }, 60_000);

  it("answers a permission request and a question, and cancels a running turn", async () => {
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: "acp-ts:1.0.0" });
    const other = String(created.json.instance_id);
    await page.goto(`${podium.url}/console/#/instances/${other}`);
    await page.getByText("● live").waitFor();
    const composer = page.locator("textarea[name=message]");
    await composer.fill("permission");
    await composer.press("Enter");
    await page.getByText("Permission requested").waitFor();
    await shot("instance-permission");
    await page.getByRole("button", { name: "Allow" }).click();
    await page.locator(".bubble.agent.done").filter({ hasText: 'permission:{"approved":true,"option_id":"allow_once"}' }).waitFor({ timeout: 30_000 });
    await composer.fill("question");
    await composer.press("Enter");
    await page.locator(".request").getByRole("button", { name: "blue" }).click();
    await page.locator(".bubble.agent.done").filter({ hasText: 'answer:"blue"' }).waitFor({ timeout: 30_000 });
    await composer.fill("slow");
    await composer.press("Enter");
    await page.locator(".bubble.agent.streaming").filter({ hasText: "3 " }).waitFor({ timeout: 30_000 });
    await page.getByRole("button", { name: "Cancel turn" }).click();
    await page.locator(".bubble.agent.done").filter({ hasText: "stopped" }).waitFor({ timeout: 30_000 });
    await podium.api("DELETE", `/api/v1/instances/${other}`);
  }, 60_000);

  it("lists the instance on the instances page", async () => {
    await page.goto(`${podium.url}/console/#/instances`);
    await page.locator(`tr[data-instance="${instanceId}"]`).waitFor();
    await shot("instances");
  }, 60_000);

  it("steps the state timeline back one version and shows the older state and its patch", async () => {
    await page.goto(`${podium.url}/console/#/instances/${instanceId}/state`);
    const { json: now } = await podium.api("GET", `/api/v1/instances/${instanceId}/state`);
    const latest = Number(now.version);
    await page
      .getByTestId("state-version")
      .filter({ hasText: `version ${latest} of ${latest}` })
      .waitFor();
    await page.getByTestId("state-tree").filter({ hasText: "second turn here" }).waitFor(); // the version label shows before the tree loads
    await page.getByRole("button", { name: "◀ Older" }).click();
    await page
      .getByTestId("state-version")
      .filter({ hasText: `version ${latest - 1} of ${latest}` })
      .waitFor();
    await page
      .getByTestId("state-tree")
      .filter({ hasText: `State at version ${latest - 1}` })
      .filter({ hasText: "hello podium console" }) // the heading shows while the older state still loads
      .waitFor();
    const tree = await page.getByTestId("state-tree").innerText();
    expect(tree).toContain("hello podium console");
    expect(tree).not.toContain("second turn here");
    await expect(page.getByTestId("state-patch").innerText()).resolves.toContain('"path":"/turns"');
    await shot("instance-state");
  }, 60_000);

  it("shows messages and logs, searchable", async () => {
    await page.getByRole("link", { name: "Messages & logs" }).click();
    await page.locator(".records-list").filter({ hasText: "stream_update" }).waitFor();
    await page.getByRole("button", { name: /^Logs/ }).click();
    await page.locator("input[name=search]").fill("turn 2:");
    await page.locator(".records-list").filter({ hasText: "turn 2: second turn here" }).waitFor();
    await expect(page.locator(".records-list").innerText()).resolves.not.toContain("turn 1:");
    await shot("instance-records");
  }, 60_000);

  it("opens a file's history and shows the diff between its two iterations", async () => {
    await page.getByRole("link", { name: "Workspace" }).click();
    await page
      .getByTestId("file-tree")
      .getByRole("button", { name: /journal\.txt/ })
      .click();
    await page.getByTestId("file-history").locator("tr[data-iteration]").nth(1).waitFor();
    const diff = page.getByTestId("diff");
    await diff.locator(".d-added").filter({ hasText: "2. second turn here" }).waitFor();
    await expect(diff.locator(".d-same").allInnerTexts()).resolves.toContain("  1. hello podium console");
    await shot("instance-files");
  }, 60_000);

  it("shows the coordinators page, with create latency, turns and events/s", async () => {
    await page.getByRole("link", { name: "Coordinators" }).click();
    await page.getByTestId("health").filter({ hasText: "ok" }).waitFor();
    await page.getByTestId("coordinators").locator("tbody tr").first().waitFor();
    // The conversations above ran turns and created instances; events/s needs a second poll (3 s).
    await page
      .getByTestId("turns")
      .filter({ hasText: /^[1-9]\d*$/ })
      .first()
      .waitFor();
    await page
      .getByTestId("create-latency")
      .filter({ hasText: /^\d[\d.]* s \/ [\d.]+ s$/ })
      .first()
      .waitFor();
    await page.getByTestId("events-rate").filter({ hasText: /^\d/ }).first().waitFor({ timeout: 20_000 });
    await shot("coordinators");
  }, 60_000);

  it("opens directly, without a login, on a podium dev that needs no key", async () => {
    const open = await startDevFixture({ apiKeys: [] });
    try {
      const other = await browser.newPage();
      await other.goto(`${open.url}/console/`);
      await other.getByRole("heading", { name: "Instances" }).waitFor();
      await other.getByText("no API key needed").waitFor();
      await other.close();
    } finally {
      await open.close();
    }
  }, 60_000);

  it("stops the instance", async () => {
    await page.goto(`${podium.url}/console/#/instances/${instanceId}`);
    await page.getByText("● live").waitFor();
    // Opened afresh, the page replays the conversation: the replies from the stream, the messages read back.
    await page.locator(".bubble.user").filter({ hasText: "second turn here" }).waitFor();
    await page.locator(".bubble.agent.done").filter({ hasText: "echo: hello podium console" }).waitFor();
    // Forks need replication, which this podium dev does not have: the page says so instead of offering one.
    await page.getByRole("button", { name: "Fork at a point in time…" }).click();
    await page.getByTestId("replication").filter({ hasText: "Replication is not configured" }).waitFor();
    await expect(page.getByRole("button", { name: "Fork and open" }).isDisabled()).resolves.toBe(true);
    await page.getByRole("button", { name: "Stop instance" }).click();
    await page.getByText(/ended \(stopped\)/).waitFor({ timeout: 30_000 });
    await page.getByTestId("instance-status").filter({ hasText: "terminated" }).waitFor({ timeout: 30_000 });
    const after = await podium.api("GET", `/api/v1/instances/${instanceId}`);
    expect(after.status).toBe(404);
    await shot("instance-stopped");
  }, 60_000);
});
