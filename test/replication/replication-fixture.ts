/**
 * Shared setup of the replication tests: a real S3 endpoint (s3rver, patched; test/helpers/s3-server.ts)
 * behind a request-counting proxy, a temp root for agent directories, and an agent writer that goes
 * through the real stores (AgentStore + Chronicle) the coordinator uses.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startS3, type S3Server } from "../helpers/s3-server.js";
import { AgentStore } from "../../services/coordinator/store/agent-store.js";
import { Chronicle } from "../../services/coordinator/chronicle/chronicle.js";
import type { ReplicationS3Settings } from "../../services/replication/replication-options.js";
import { startS3CountingProxy, type S3CountingProxy } from "./s3-counting-proxy.js";

export interface ReplicationFixture {
  s3: S3Server;
  proxy: S3CountingProxy;
  root: string;
  /** Settings that reach S3 through the counting proxy. */
  settings: ReplicationS3Settings;
  agentDir(coordinator: string, agentId: string): string;
  cleanup(): Promise<void>;
}

export async function startReplicationFixture(): Promise<ReplicationFixture> {
  const s3 = await startS3();
  const proxy = await startS3CountingProxy(s3.endpoint);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "podium-"));
  return {
    s3,
    proxy,
    root,
    settings: { bucket: s3.bucket, endpoint: proxy.endpoint, credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } },
    agentDir: (coordinator, agentId) => path.join(root, coordinator, "agents", agentId),
    async cleanup() {
      await proxy.close();
      await s3.stop();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

/** An agent's stores opened the way InstanceManager + ChronicleAccess open them. */
export class AgentWriter {
  readonly store: AgentStore;
  readonly chronicle: Chronicle;
  readonly workspace: string;
  private turn = 0;

  constructor(readonly dir: string) {
    this.workspace = path.join(dir, "workspace");
    fs.mkdirSync(this.workspace, { recursive: true });
    this.store = AgentStore.open({ dir });
    this.chronicle = Chronicle.open({ workspaceDir: this.workspace, dbPath: path.join(dir, "chronicle.db") });
  }

  /** One turn: an inbound and an outbound message, a state patch, a log line, a file change + capture, `turn.done`. */
  writeTurn(label: string): void {
    const turn = ++this.turn;
    const instanceId = "inst_test";
    this.store.messages.append({ direction: "inbound", instanceId, turn, messageType: "message", content: { text: `in ${label}` }, timestamp: Date.now() });
    this.store.state.apply([{ op: "add", path: `/turns/${label}`, value: turn }], { instanceId, turn });
    this.store.messages.append({ direction: "outbound", instanceId, turn, messageType: "reply", content: { text: `out ${label}` }, timestamp: Date.now() });
    this.store.logs.append({ level: "info", source: "agent", message: `log ${label}`, instanceId });
    fs.writeFileSync(path.join(this.workspace, `turn-${label}.txt`), `content of ${label}\n`);
    this.chronicle.capture();
    // The end of a turn, as the coordinator records it (restore reconciliation keeps whole turns only).
    this.store.messages.append({ direction: "outbound", instanceId, turn, messageType: "turn.done", content: { turn, ok: true }, timestamp: Date.now() });
  }

  /** Starts the state as `{ turns: {} }`. */
  init(): void {
    this.store.state.apply([{ op: "add", path: "/turns", value: {} }], { instanceId: "inst_test", turn: 0 });
  }

  close(): void {
    this.chronicle.close();
    this.store.close();
  }
}

/** What an agent directory holds, read back through the stores. */
export function readAgent(dir: string): { inbound: string[]; state: Record<string, unknown>; version: number; logs: string[]; files: string[]; iterations: number } {
  const store = AgentStore.open({ dir });
  const chronicle = Chronicle.open({ workspaceDir: path.join(dir, "workspace"), dbPath: path.join(dir, "chronicle.db"), watch: false });
  try {
    const inbound = store.messages.list(0, 100_000, "inbound").map((m) => String(m.content?.text));
    const { version, state } = store.state.current();
    const logs = store.logs.list(0, 100_000).map((l) => l.message);
    const files = fs
      .readdirSync(path.join(dir, "workspace"))
      .filter((name) => name.startsWith("turn-"))
      .sort();
    return { inbound, state: JSON.parse(JSON.stringify(state)) as Record<string, unknown>, version, logs, files, iterations: chronicle.latestIteration };
  } finally {
    chronicle.close();
    store.close();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}
