/**
 * Chronicle through the client contract's file API: agents in both runtimes write, modify, delete
 * and re-create files with ordinary I/O (and from a child process); the API returns the exact
 * history and the contents at every iteration, for running and stopped agents.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createHash } from "node:crypto";
import { API_KEY, startDevFixture, type DevFixture, type WsClient } from "../helpers/dev-fixture.js";
import type { JsonObject } from "../../services/shared/json.js";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { FileService } from "../../gen/podium/v1/file_service_pb.js";

let podium: DevFixture;
beforeAll(async () => {
  podium = await startDevFixture();
});
afterAll(async () => {
  await podium.close();
});

async function turn(ws: WsClient, ops: JsonObject[]): Promise<number> {
  const before = ws.frames.length;
  ws.send({ type: "process_message", content: { ops } });
  await ws.waitFor((f) => f.messageType === "turn.done" && ws.frames.indexOf(f) >= before);
  const changed = ws.frames.slice(before).find((f) => f.messageType === "workspace.changed");
  return changed ? ((changed.content as JsonObject).iteration as number) : 0;
}

describe.each([["files-ts"], ["files-py"]])("%s", (deployment) => {
  it("records every change as an iteration and serves list, read, history and at-iteration", async () => {
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: `${deployment}:1.0.0@local` });
    const id = created.json.instance_id as string;
    const agentId = created.json.agent_id as string;
    const ws = await podium.connect(id);
    const binary = Buffer.from([0, 1, 2, 255, 254, 0, 10]).toString("base64");
    const i1 = await turn(ws, [
      { write: "notes.md", content: "v1" },
      { write: "src/app.ts", content: "let a = 1;" },
      { write: "img.bin", base64: binary },
    ]);
    const i2 = await turn(ws, [{ write: "notes.md", content: "v2" }, { shell: "mkdir -p gen && echo from-child > gen/out.txt" }]);
    const i3 = await turn(ws, [{ delete: "notes.md" }]);
    const i4 = await turn(ws, [{ write: "notes.md", content: "v3" }]);
    expect([i1, i2, i3, i4].every((n, k, all) => k === 0 || n > (all[k - 1] as number))).toBe(true);
    const changed = ws.frames.find((f) => f.messageType === "workspace.changed");
    expect((changed?.content as JsonObject).files).toEqual(expect.arrayContaining([{ path: "notes.md", change: "created" }]));

    const base = `/api/v1/instances/${id}/files`;
    const root = await podium.api("GET", `${base}?depth=1`);
    expect(root.status).toBe(200);
    const names = (root.json.entries as JsonObject[]).map((e) => `${e.type as string}:${e.path as string}`).sort();
    expect(names).toEqual(["directory:gen", "directory:src", "file:img.bin", "file:notes.md"]);
    const deep = await podium.api("GET", `${base}?path=src&depth=2`);
    expect((deep.json.entries as JsonObject[]).map((e) => e.path)).toEqual(["src/app.ts"]);

    const notes = await podium.api("GET", `${base}/notes.md`);
    expect(notes.json).toMatchObject({ path: "notes.md", content: "v3", encoding: "utf8", size: 2 });
    expect(notes.json.hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    const child = await podium.api("GET", `${base}/gen/out.txt`);
    expect(child.json.content).toBe("from-child\n");
    const img = await podium.api("GET", `${base}/img.bin`);
    expect(img.json).toMatchObject({ encoding: "base64", content: binary, size: 7 });

    const history = await podium.api("GET", `${base}/notes.md/history`);
    expect((history.json.iterations as JsonObject[]).map((m) => [m.iteration, m.change])).toEqual([
      [i1, "created"],
      [i2, "modified"],
      [i3, "deleted"],
      [i4, "created"],
    ]);
    expect((await podium.api("GET", `${base}/notes.md/at/${i1}`)).json.content).toBe("v1");
    expect((await podium.api("GET", `${base}/notes.md/at/${i2}`)).json.content).toBe("v2");
    const deleted = await podium.api("GET", `${base}/notes.md/at/${i3}`);
    expect(deleted.status).toBe(404);
    expect((deleted.json.error as JsonObject).message).toContain("notes.md");

    // Restore an old version as a new iteration, then read everything after the instance stopped.
    const restored = await podium.api("POST", `/api/v1/agents/${agentId}/files/notes.md/restore?iteration=${i1}`);
    expect(restored.status).toBe(201);
    expect((await podium.api("GET", `${base}/notes.md`)).json.content).toBe("v1");
    await podium.api("DELETE", `/api/v1/instances/${id}`);
    const after = await podium.api("GET", `/api/v1/agents/${agentId}/files/notes.md/history`);
    expect((after.json.iterations as JsonObject[]).length).toBe(5);
    expect((await podium.api("GET", `/api/v1/agents/${agentId}/files/notes.md`)).json.content).toBe("v1");

    // The workspace and its history survive a restart of the agent.
    const resumed = await podium.api("POST", "/api/v1/instances", { deployment_id: `${deployment}:1.0.0@local`, agent_id: agentId });
    const ws2 = await podium.connect(resumed.json.instance_id as string);
    const i6 = await turn(ws2, [{ write: "notes.md", content: "v4" }]);
    const final = await podium.api("GET", `/api/v1/instances/${resumed.json.instance_id as string}/files/notes.md/history`);
    expect((final.json.iterations as JsonObject[]).map((m) => m.iteration)).toContain(i6);
    await podium.api("DELETE", `/api/v1/instances/${resumed.json.instance_id as string}`);
  });
});

describe("path safety", () => {
  let id: string;
  beforeAll(async () => {
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: "files-ts:1.0.0@local" });
    id = created.json.instance_id as string;
    const ws = await podium.connect(id);
    await turn(ws, [{ write: "ok.txt", content: "fine" }, { shell: "ln -s /etc/passwd link-out && ln -s / rootlink" }]);
  });

  it.each([["../../etc/passwd"], ["%2e%2e/%2e%2e/etc/passwd"], ["%2e%2e%2f%2e%2e%2fetc%2fpasswd"], ["a/../../x"], ["%2fetc%2fpasswd"], ["ok.txt%00.png"], ["link-out"], ["rootlink/etc/passwd"]])(
    "refuses %s",
    async (path) => {
      const res = await podium.api("GET", `/api/v1/instances/${id}/files/${path}`);
      expect([400, 404]).toContain(res.status);
      expect(JSON.stringify(res.json)).not.toContain("root:x:0:0");
    },
  );

  it("refuses traversal in the list path with 400", async () => {
    const res = await podium.api("GET", `/api/v1/instances/${id}/files?path=../..&depth=2`);
    expect(res.status).toBe(400);
  });

  it("answers 404 for unknown instances and agents", async () => {
    expect((await podium.api("GET", "/api/v1/instances/inst-nope/files")).status).toBe(404);
    expect((await podium.api("GET", "/api/v1/agents/agent-nope/files")).status).toBe(404);
  });
});

describe("large files", () => {
  it("streams a file over the inline limit as raw bytes with its hash, and refuses it inline", async () => {
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: "files-ts:1.0.0@local" });
    const id = created.json.instance_id as string;
    const ws = await podium.connect(id);
    await turn(ws, [{ shell: "head -c 20000000 /dev/urandom > big.bin && printf small > small.txt" }]);
    const inline = await podium.api("GET", `/api/v1/instances/${id}/files/big.bin`);
    expect(inline.status).toBe(429);
    expect((inline.json.error as JsonObject).message).toContain("raw=1");
    const res = await fetch(`${podium.url}/api/v1/instances/${id}/files/big.bin?raw=1`, { headers: { authorization: `Bearer ${API_KEY}` } });
    expect(res.status).toBe(200);
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(bytes.length).toBe(20_000_000);
    expect(res.headers.get("x-podium-hash")).toBe(`sha256:${createHash("sha256").update(bytes).digest("hex")}`);
    const small = await fetch(`${podium.url}/api/v1/instances/${id}/files/small.txt?raw=1`, { headers: { authorization: `Bearer ${API_KEY}` } });
    expect(await small.text()).toBe("small");
    // Over Connect: the first message describes the file, and says its bytes come raw in `data`.
    const files = createClient(
      FileService,
      createConnectTransport({ baseUrl: podium.url, httpVersion: "1.1", interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${API_KEY}`), next(req))] }),
    );
    const messages = [];
    for await (const message of files.downloadFile({ target: { target: { case: "instanceId", value: id } }, path: "small.txt" })) messages.push(message);
    expect(messages[0]?.file).toMatchObject({ path: "small.txt", content: "", encoding: "binary", size: 5n });
    expect(Buffer.concat(messages.slice(1).map((m) => m.data)).toString()).toBe("small");
    await podium.api("DELETE", `/api/v1/instances/${id}`);
  });
});
