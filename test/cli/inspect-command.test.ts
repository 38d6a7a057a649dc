/**
 * `podium ps / logs / state / files / send` (services/cli/inspect-command.ts) against a real `podium dev`
 * (gateway + coordinator in process, real agents): what a person sees at a terminal and what a program
 * gets with --json, follow mode, and command lines that cannot run.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { PodiumConnectionError } from "../../packages/client/src/index.js";
import { runInspect, type InspectVerb } from "../../services/cli/inspect-command.js";
import { UsageError } from "../../services/cli/usage-error.js";
import { API_KEY, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";

let dev: DevFixture;
let counter: string;
let files: string;

async function run(verb: InspectVerb, args: string[], options: { tty?: boolean; signal?: AbortSignal; followMs?: number; onWrite?: (text: string) => void } = {}) {
  let text = "";
  const code = await runInspect(verb, [...args, "--url", dev.url, "--api-key", API_KEY], {
    env: { NO_COLOR: "1" },
    isTTY: options.tty ?? false,
    write: (chunk) => {
      text += chunk;
      options.onWrite?.(chunk);
    },
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.followMs ? { followMs: options.followMs } : {}),
  });
  return { code, text };
}

async function create(deploymentId: string): Promise<string> {
  const { status, json } = await dev.api("POST", "/api/v1/instances", { deployment_id: deploymentId });
  expect(status).toBe(201);
  return json.instance_id as string;
}

/** Polls `probe` until it returns true (the agent's turn is asynchronous to the REST answer). */
async function until(probe: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await probe()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  dev = await startDevFixture();
  counter = await create("counter-ts:1.0.0");
  files = await create("files-ts:1.0.0");
});

afterAll(async () => {
  await dev?.close();
});

describe("podium ps / send / state / logs / files", () => {
  it("send streams the reply of its own turn and exits 0; --json gives one event per line", async () => {
    const human = await run("send", [counter, "up"], { tty: true });
    expect(human).toMatchObject({ code: 0 });
    expect(human.text).toContain("count = 1");
    const piped = await run("send", [counter, "up"]);
    const events = piped.text
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { messageType: string; content?: { turn?: number; ok?: boolean; text?: string } });
    expect(events.map((e) => e.messageType)).toEqual(["complete", "state.delta", "turn.done"]);
    expect(events[0]?.content?.text).toBe("count = 2");
    expect(events[2]?.content?.ok).toBe(true);
  });

  it("ps lists live instances as a table or JSON, filtered by deployment", async () => {
    const table = await run("ps", [], { tty: true });
    expect(table.text.split("\n")[0]).toMatch(/^INSTANCE\s+AGENT\s+DEPLOYMENT\s+STATUS\s+CREATED \(UTC\)\s+LAST SEQ$/);
    expect(table.text).toContain(counter);
    expect(table.text).toContain(files);
    const only = JSON.parse((await run("ps", ["--deployment", "counter-ts:1.0.0@local"])).text) as { instanceId: string }[];
    expect(only.map((i) => i.instanceId)).toEqual([counter]);
  });

  it("state shows the state now and as it was at an earlier version, with the patch that made it", async () => {
    const now = JSON.parse((await run("state", [counter])).text) as { version: number; state: { count: number } };
    expect(now.state.count).toBe(2);
    const earlier = JSON.parse((await run("state", [counter, "--at", String(now.version - 1)])).text) as { version: number; state: { count: number }; patches: { ops: unknown[] }[] };
    expect(earlier).toMatchObject({ version: now.version - 1, state: { count: 1 } });
    expect(earlier.patches[0]?.ops).toContainEqual({ op: "replace", path: "/count", value: 1 });
    const human = await run("state", [counter, "--at", "0"], { tty: true });
    expect(human.text).toBe("# version 0\n{}\n");
    await expect(run("state", [counter, "--at", String(now.version + 5)])).rejects.toMatchObject({ status: 400 });
  });

  it("files lists the workspace and a file's history", async () => {
    const history = `/api/v1/instances/${files}/files/notes/a.txt/history`;
    for (const [n, content] of [
      [1, "one"],
      [2, "two!"],
    ] as const) {
      expect((await dev.api("POST", `/api/v1/instances/${files}/messages`, { content: { ops: [{ write: "notes/a.txt", content }] } })).status).toBe(202);
      await until(async () => ((await dev.api("GET", history)).json.iterations as unknown[] | undefined)?.length === n, `iteration ${n} of notes/a.txt`);
    }
    const listing = await run("files", [files, "notes"], { tty: true });
    expect(listing.text).toMatch(/^PATH\s+SIZE\s+MODIFIED \(UTC\)\s+ITERATION\n/);
    expect(listing.text).toMatch(/notes\/a\.txt\s+4 B/);
    const iterations = JSON.parse((await run("files", [files, "notes/a.txt", "--history"])).text) as { change: string; size: number }[];
    expect(iterations.map((h) => [h.change, h.size])).toEqual([
      ["created", 3],
      ["modified", 4],
    ]);
  });

  it("logs prints the log, and -f follows it until the instance ended", async () => {
    const all = await run("logs", [counter], { tty: true });
    expect(all.text).toMatch(/info\s+platform instance ready/);
    const stop = new AbortController();
    const guard = setTimeout(() => stop.abort(), 30_000); // a follow that never ends fails below, not by jest's timeout
    const following = run("logs", [counter, "-f"], { signal: stop.signal, followMs: 50 });
    const before = ((await dev.api("GET", `/api/v1/instances/${counter}/logs?limit=1000`)).json.logs as unknown[]).length;
    expect((await dev.api("DELETE", `/api/v1/instances/${counter}`)).status).toBe(200); // logged after the lines already printed
    const { code, text } = await following;
    clearTimeout(guard);
    expect(stop.signal.aborted).toBe(false);
    expect(code).toBe(0);
    const lines = text
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { message: string });
    expect(lines.length).toBeGreaterThan(before);
    expect(lines.some((l) => /agent stopped/.test(l.message))).toBe(true);
  });

  it("refuses command lines it cannot run, before any request", async () => {
    await expect(run("state", [])).rejects.toBeInstanceOf(UsageError);
    await expect(run("state", [counter, "--at", "two"])).rejects.toBeInstanceOf(UsageError);
    await expect(run("ps", ["--at", "1"])).rejects.toThrow("podium ps has no --at");
    await expect(run("send", [counter])).rejects.toBeInstanceOf(UsageError);
    await expect(run("logs", ["inst-nope"])).rejects.toBeInstanceOf(PodiumConnectionError);
  });
});
