/**
 * The web console: what its bundle weighs, and how long its instance page (real Chromium) takes to show
 * a live stream of 10,000 events — from the composer's send to the page counting the turn's last event —
 * beside a bare WebSocket in a Chromium page and a Node client receiving the same turn from the same gateway, and the page's
 * replay of those 10,000 events from history when it is opened afterwards (after_seq=0).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { performance } from "node:perf_hooks";
import { chromium } from "playwright-core";
import { createDevServer } from "../services/dev/create-dev-server.js";
import { REPO_ROOT } from "../services/coordinator/runtime-commands.js";
import { silentLogger } from "../services/shared/logger.js";
import { chromiumPath } from "../test/helpers/chromium.js";
import { ensureConsoleBuilt } from "../test/helpers/console-build.js";
import { exchange, openWebSocket } from "./ws-exchange.js";
import type { BenchResults } from "./bench-util.js";

export async function runConsoleBench(events = 10_000): Promise<BenchResults> {
  ensureConsoleBuilt();
  const built = path.join(REPO_ROOT, "dist/console");
  let bytes = 0;
  let gzipped = 0;
  for (const name of fs.readdirSync(built)) {
    const body = fs.readFileSync(path.join(built, name));
    bytes += body.length;
    gzipped += zlib.gzipSync(body, { level: 9 }).length;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-console-bench-"));
  const server = await createDevServer({ port: 0, dataDir: dir, agentsDir: path.join(REPO_ROOT, "test/fixtures/bundles"), logger: silentLogger, coordinator: { warmRunners: 0 } });
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: ["--no-sandbox"] });
  try {
    const create = async () => {
      const res = await fetch(`${server.url}/api/v1/instances`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ deployment_id: "flood-ts:1.0.0" }) });
      return ((await res.json()) as { instance_id: string }).instance_id;
    };
    // Baseline: a Node client on /connect, the same turn of `events` updates.
    const nodeId = await create();
    const ws = await openWebSocket(`${server.url.replace("http", "ws")}/api/v1/instances/${nodeId}/connect`);
    await exchange(ws, JSON.stringify({ type: "process_message", content: { n: 100 } }), 1, (d) => d.includes('"turn.done"'));
    let started = performance.now();
    await exchange(ws, JSON.stringify({ type: "process_message", content: { n: events } }), 1, (d) => d.includes('"turn.done"'));
    const nodeMs = performance.now() - started;
    ws.close();

    const id = await create();
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 }, bypassCSP: true });
    await page.goto(`${server.url}/console/#/instances/${id}`);
    await page.getByText("● live").waitFor();
    const composer = page.locator("textarea[name=message]");
    await composer.fill(JSON.stringify({ n: 100 }));
    await composer.press("Enter");
    await page.locator(".bubble.agent.done").first().waitFor();
    const countIs = (n: number) => `(() => { const t = document.querySelector('[data-testid=event-count]')?.textContent ?? ''; return Number(t.split(' ')[0]) >= ${n}; })()`;
    await page.waitForFunction(countIs(102));
    await composer.fill(JSON.stringify({ n: events }));
    started = performance.now();
    await composer.press("Enter");
    await page.waitForFunction(countIs(102 + events + 2), undefined, { timeout: 120_000, polling: "raf" });
    const liveMs = performance.now() - started;

    // The same in the same browser without the console: a bare WebSocket in a page of that origin.
    const bare = await browser.newPage({ bypassCSP: true });
    await bare.goto(`${server.url}/console/#/deployments`);
    const bareId = await create();
    const bareMs = Number(
      await bare.evaluate(`new Promise((resolve) => {
        const ws = new WebSocket(location.origin.replace("http", "ws") + "/api/v1/instances/${bareId}/connect");
        let t0 = 0;
        let round = 0;
        ws.onopen = () => ws.send(JSON.stringify({ type: "process_message", content: { n: 100 } }));
        ws.onmessage = (m) => {
          if (JSON.parse(m.data).messageType !== "turn.done") return;
          if (round++ === 0) {
            t0 = performance.now();
            ws.send(JSON.stringify({ type: "process_message", content: { n: ${events} } }));
          } else {
            ws.close();
            resolve(performance.now() - t0);
          }
        };
      })`),
    );

    started = performance.now();
    const fresh = await browser.newPage({ viewport: { width: 1280, height: 860 }, bypassCSP: true });
    await fresh.goto(`${server.url}/console/#/instances/${id}`);
    await fresh.waitForFunction(countIs(102 + events + 2), undefined, { timeout: 120_000, polling: "raf" });
    const replayMs = performance.now() - started;
    return {
      "console bundle bytes (js + css + html)": bytes,
      "console bundle bytes gzipped": gzipped,
      [`live stream of ${events} events shown by the instance page (ms)`]: liveMs,
      "same turn, a bare WebSocket in a Chromium page (ms)": bareMs,
      "same turn, a Node ws client (ms)": nodeMs,
      [`page opened afterwards: ${events} events replayed and shown (ms, incl. page load)`]: replayMs,
    };
  } finally {
    await browser.close();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
