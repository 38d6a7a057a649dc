/**
 * A page on another origin, in real Chromium (Debian's `chromium`, driven by playwright-core), against
 * a real `podium dev` that allows that origin: it creates an instance over REST, converses over the
 * `/events` WebSocket, and calls a Connect method with fetch (what connect-web does). A page on an
 * origin that is not allowed cannot read any response.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { chromium, type Browser } from "playwright-core";
import { API_KEY, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { chromiumPath } from "../helpers/chromium.js";

let podium: DevFixture;
let browser: Browser;
let pages: http.Server;
let pagePort: number;

beforeAll(async () => {
  // 127.0.0.2 is loopback too, but not one of the origins podium dev allows by itself.
  podium = await startDevFixture({ gateway: { corsOrigins: ["http://127.0.0.2:*"] } });
  pages = http.createServer((_req, res) => res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>another origin</title>"));
  await new Promise<void>((resolve) => pages.listen(0, "0.0.0.0", resolve));
  pagePort = (pages.address() as AddressInfo).port;
  browser = await chromium.launch({ executablePath: chromiumPath(), args: ["--no-sandbox"] });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => pages?.close(resolve));
  await podium?.close();
});

interface PageResult {
  created: number;
  instanceId: string;
  reply: string;
  eventTypes: string[];
  connectInstanceId: string;
}

describe("a browser page on another origin", () => {
  it("creates an instance over REST, converses over /events and calls Connect", async () => {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.2:${pagePort}/`);
    const result = await page.evaluate(
      async ({ api, key }): Promise<PageResult> => {
        const created = await fetch(`${api}/api/v1/instances`, {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
          body: JSON.stringify({ deployment_id: "echo-ts:1.0.0@local" }),
        });
        const { instance_id: instanceId } = (await created.json()) as { instance_id: string };
        const ws = new WebSocket(`${api.replace("http", "ws")}/api/v1/instances/${instanceId}/events?api_key=${key}`);
        const events: { type: string; data?: { text?: string } }[] = [];
        await new Promise<void>((resolve, reject) => {
          ws.onerror = () => reject(new Error("websocket error"));
          ws.onopen = () => ws.send(JSON.stringify({ type: "process_message", id: "m1", content: { text: "from the browser" } }));
          ws.onmessage = (message) => {
            const frame = JSON.parse(String(message.data)) as { type: string; data?: { text?: string } };
            if (frame.type === "reply") return;
            events.push(frame);
            if (frame.type === "turn_complete") resolve();
          };
        });
        ws.close();
        const call = await fetch(`${api}/podium.v1.InstanceService/GetInstance`, {
          method: "POST",
          headers: { "content-type": "application/json", "connect-protocol-version": "1", authorization: `Bearer ${key}` },
          body: JSON.stringify({ instanceId }),
        });
        const got = (await call.json()) as { instance: { instanceId: string } };
        return {
          created: created.status,
          instanceId,
          reply: events
            .filter((e) => e.type === "text_delta")
            .map((e) => e.data?.text ?? "")
            .join(""),
          eventTypes: events.map((e) => e.type),
          connectInstanceId: got.instance.instanceId,
        };
      },
      { api: podium.url, key: API_KEY },
    );
    expect(result.created).toBe(201);
    expect(result.reply).toContain("from the browser");
    expect(result.eventTypes[result.eventTypes.length - 1]).toBe("turn_complete");
    expect(result.connectInstanceId).toBe(result.instanceId);
    await page.close();
  }, 60_000);

  it("cannot read a response when its origin is not allowed", async () => {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.3:${pagePort}/`);
    const outcome = await page.evaluate(
      async ({ api, key }) => {
        try {
          const res = await fetch(`${api}/api/v1/instances`, { headers: { authorization: `Bearer ${key}` } });
          return `read ${res.status}`;
        } catch (err) {
          return `refused: ${String(err)}`;
        }
      },
      { api: podium.url, key: API_KEY },
    );
    expect(outcome).toMatch(/^refused: TypeError/);
    await page.close();
  }, 60_000);
});
