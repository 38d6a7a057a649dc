/** One running agent instance in a TestPodium: send a message, get the turn's events back. */
import { WebSocket } from "ws";
import type { JsonObject } from "./json-types.js";

export interface TestEvent {
  messageType: string;
  content?: JsonObject;
  seq: number;
}

export interface TurnResult {
  /** Every event of the turn, in order, including the one that ended it. */
  events: TestEvent[];
  /** The concatenated `text` of the turn's stream_update / update events. */
  text: string;
  /** The `message` of an `error` event, if the turn failed. */
  error?: string;
}

/** The platform's last event of every turn (after the state delta and workspace changes). */
const TURN_DONE = "turn.done";

export class TestAgent {
  private readonly events: TestEvent[] = [];
  private waiters: (() => void)[] = [];

  private constructor(
    private readonly url: string,
    private readonly ws: WebSocket,
    readonly instanceId: string,
    readonly agentId: string,
  ) {
    ws.on("message", (data) => {
      const frame = JSON.parse(String(data)) as TestEvent & { type?: string };
      if (typeof frame.messageType === "string") this.events.push(frame);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static async connect(url: string, instance: JsonObject): Promise<TestAgent> {
    const id = String(instance.instance_id);
    const ws = new WebSocket(`${url.replace("http", "ws")}/api/v1/instances/${id}/connect`);
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    return new TestAgent(url, ws, id, String(instance.agent_id));
  }

  /** Sends a process_message and resolves when its turn is done (state and files recorded). */
  async send(content: JsonObject, timeoutMs = 30_000): Promise<TurnResult> {
    const from = this.events.length;
    this.ws.send(JSON.stringify({ type: "process_message", content }));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = this.events.slice(from).findIndex((e) => e.messageType === TURN_DONE);
      if (end !== -1) {
        const events = this.events.slice(from, from + end + 1);
        const text = events
          .filter((e) => e.messageType === "stream_update" || e.messageType === "update")
          .map((e) => String(e.content?.text ?? ""))
          .join("");
        const error = events.find((e) => e.messageType === "error");
        return error ? { events, text, error: String(error.content?.message ?? "") } : { events, text };
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`turn did not end within ${timeoutMs} ms; events: ${JSON.stringify(this.events.slice(from))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The agent's current state. */
  async state(): Promise<JsonObject> {
    const res = await fetch(`${this.url}/api/v1/instances/${this.instanceId}/state`);
    return ((await res.json()) as { state: JsonObject }).state;
  }

  /** A file of the workspace as text (utf8 files) or base64. */
  async readFile(filePath: string): Promise<string> {
    const res = await fetch(`${this.url}/api/v1/instances/${this.instanceId}/files/${filePath.split("/").map(encodeURIComponent).join("/")}`);
    const body = (await res.json()) as { content?: string; error?: { message: string } };
    if (!res.ok) throw new Error(body.error?.message ?? `HTTP ${res.status}`);
    return body.content ?? "";
  }

  async stop(): Promise<void> {
    this.disconnect();
    await fetch(`${this.url}/api/v1/instances/${this.instanceId}`, { method: "DELETE" });
  }

  disconnect(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
  }
}
