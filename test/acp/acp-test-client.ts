/**
 * An ACP client for tests, built with @agentclientprotocol/sdk: records every session/update,
 * answers session/request_permission (and elicitation/create) with a responder the test sets, and
 * talks to `podium acp` as a child process (stdio) or to the gateway's `/acp` WebSocket.
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import * as acp from "@agentclientprotocol/sdk";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";

export type PermissionResponder = (request: acp.RequestPermissionRequest) => acp.RequestPermissionResponse | Promise<acp.RequestPermissionResponse>;
export type ElicitationResponder = (request: acp.CreateElicitationRequest) => acp.CreateElicitationResponse | Promise<acp.CreateElicitationResponse>;

export class AcpTestClient {
  readonly updates: acp.SessionNotification[] = [];
  readonly permissionRequests: acp.RequestPermissionRequest[] = [];
  readonly elicitations: acp.CreateElicitationRequest[] = [];
  permission: PermissionResponder = () => ({ outcome: { outcome: "cancelled" } });
  elicitation: ElicitationResponder = () => ({ action: "decline" });
  readonly connection: acp.ClientConnection;
  private waiters: (() => void)[] = [];

  constructor(
    stream: acp.Stream,
    private readonly child?: ChildProcess,
  ) {
    const app = acp
      .client({ name: "podium-test-client" })
      .onNotification(acp.methods.client.session.update, ({ params }) => {
        this.updates.push(params);
        for (const wake of this.waiters.splice(0)) wake();
      })
      .onRequest(acp.methods.client.session.requestPermission, async ({ params }) => {
        this.permissionRequests.push(params);
        return this.permission(params);
      })
      .onRequest(acp.methods.client.elicitation.create, async ({ params }) => {
        this.elicitations.push(params);
        return this.elicitation(params);
      });
    this.connection = app.connect(stream);
  }

  get agent(): acp.ClientContext {
    return this.connection.agent;
  }

  /** Launches `node bin/podium.js acp …` and connects to its stdio. */
  static spawn(args: string[], stderr: (text: string) => void = () => undefined): AcpTestClient {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, "bin/podium.js"), "acp", ...args], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, PODIUM_API_KEY: "" } });
    child.stderr?.on("data", (d: Buffer) => stderr(d.toString()));
    const stream = acp.ndJsonStream(Writable.toWeb(child.stdin as Writable), Readable.toWeb(child.stdout as Readable) as ReadableStream<Uint8Array>);
    return new AcpTestClient(stream, child);
  }

  /** The updates of one session, in order. */
  sessionUpdates(sessionId: string): acp.SessionUpdate[] {
    return this.updates.filter((n) => n.sessionId === sessionId).map((n) => n.update);
  }

  /** Resolves once `predicate` holds for a recorded update. */
  async waitForUpdate(predicate: (update: acp.SessionUpdate) => boolean, timeoutMs = 15_000): Promise<acp.SessionUpdate> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.updates.map((n) => n.update).find(predicate);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching update; got ${JSON.stringify(this.updates).slice(0, 2000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Polls `condition` until it holds. */
  async waitUntil(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error("condition not met in time");
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Closes the connection and waits for the child (if any) to exit. */
  async close(): Promise<number | null> {
    this.connection.close();
    const child = this.child;
    if (!child) return null;
    if (child.exitCode !== null) return child.exitCode;
    child.stdin?.end();
    return new Promise((resolve) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      child.once("exit", (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }
}

/** The text of every agent_message_chunk, joined. */
export function agentText(updates: acp.SessionUpdate[]): string {
  return updates.map((u) => (u.sessionUpdate === "agent_message_chunk" && u.content.type === "text" ? u.content.text : "")).join("");
}
