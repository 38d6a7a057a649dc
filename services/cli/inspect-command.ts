/**
 * The verbs that read a running Podium from a terminal, through the public REST + WebSocket API (the
 * client package), so they work against any gateway: `ps`, `logs [-f]`, `state [--at V]`,
 * `files [PATH] [--history]` and `send` (streams the reply). Tables and colours at a terminal; JSON with
 * `--json` or when the output is piped (streams: one JSON object per line).
 */
import { parseArgs } from "node:util";
import { PodiumClient, PodiumConnectionError, type LogRecord, type PodiumEvent } from "../../packages/client/src/index.js";
import { UsageError } from "./usage-error.js";
import { bytes, cliOutput, paint, shortTime, statusColour, table, type CliOutput } from "./cli-output.js";
import { PlatformEvent } from "../shared/platform-events.js";

export const INSPECT_VERBS = ["ps", "logs", "state", "files", "send"] as const;
export type InspectVerb = (typeof INSPECT_VERBS)[number];

export interface InspectIo {
  env: Record<string, string | undefined>;
  isTTY: boolean;
  write(text: string): void;
  /** Ends a `logs -f` or a `send` early (Ctrl-C). */
  signal?: AbortSignal;
  /** How often `logs -f` asks for new lines. Default 500 ms. */
  followMs?: number;
}

const COMMON = { url: { type: "string" }, "api-key": { type: "string" }, json: { type: "boolean" } } as const;

export async function runInspect(verb: InspectVerb, args: string[], io: InspectIo): Promise<number> {
  const options = { ...COMMON, follow: { type: "boolean", short: "f" }, at: { type: "string" }, history: { type: "boolean" }, agent: { type: "string" }, deployment: { type: "string" } } as const;
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options });
  const allowed: Record<InspectVerb, string[]> = { ps: ["agent", "deployment"], logs: ["follow"], state: ["at"], files: ["history"], send: [] };
  for (const name of ["follow", "at", "history", "agent", "deployment"] as const) {
    if (values[name] !== undefined && !allowed[verb].includes(name)) throw new UsageError(`podium ${verb} has no --${name}`);
  }
  const out = cliOutput({ json: values.json === true, isTTY: io.isTTY, env: io.env, write: io.write });
  const url = values.url ?? io.env.PODIUM_URL ?? "http://127.0.0.1:7070";
  const apiKey =
    values["api-key"] ??
    io.env.PODIUM_API_KEY?.split(",")
      .map((k) => k.trim())
      .find((k) => k.length > 0);
  const client = new PodiumClient({ url, ...(apiKey ? { apiKey } : {}) });
  const id = () => {
    const instanceId = positionals[0];
    if (!instanceId) throw new UsageError(`podium ${verb} needs an instance id (podium ps lists them)`);
    return instanceId;
  };
  const signal = io.signal;
  try {
    switch (verb) {
      case "ps":
        return await ps(client, out, { ...(values.agent ? { agentId: values.agent } : {}), ...(values.deployment ? { deploymentId: values.deployment } : {}) }, signal);
      case "logs":
        return await logs(client, out, id(), values.follow === true, io.followMs ?? 500, signal);
      case "state":
        return await state(client, out, id(), values.at === undefined ? undefined : version(values.at), signal);
      case "files":
        return await files(client, out, id(), positionals[1], values.history === true, signal);
      case "send": {
        const text = positionals.slice(1).join(" ");
        if (!text) throw new UsageError("podium send needs a message: podium send ID TEXT");
        return await send(client, out, id(), text, signal);
      }
    }
  } finally {
    await client.close();
  }
}

function version(text: string): number {
  if (!/^\d{1,15}$/.test(text)) throw new UsageError(`--at must be a state version (a non-negative integer), got "${text}"`);
  return Number(text);
}

/** Prints `value` as JSON (indented for a person); returns exit code 0. */
function json(out: CliOutput, value: unknown): number {
  out.write(JSON.stringify(value, null, out.human ? 2 : undefined) + "\n");
  return 0;
}

/** Prints a gray note; returns exit code 0. */
function note(out: CliOutput, text: string): number {
  out.write(paint(out, "gray", text) + "\n");
  return 0;
}

async function ps(client: PodiumClient, out: CliOutput, filter: { agentId?: string; deploymentId?: string }, signal?: AbortSignal): Promise<number> {
  const instances = await client.listInstances(filter, signal ? { signal } : {});
  if (!out.human) return json(out, instances);
  if (instances.length === 0) return note(out, "no live instances");
  const rows = instances.map((i) => [i.instanceId, i.agentId, i.deploymentId, paint(out, statusColour(i.status), i.status), shortTime(i.createdAt), String(i.lastSeq)]);
  out.write(table(out, ["INSTANCE", "AGENT", "DEPLOYMENT", "STATUS", "CREATED (UTC)", "LAST SEQ"], rows));
  return 0;
}

function logLine(out: CliOutput, log: LogRecord): string {
  if (!out.human) return JSON.stringify(log) + "\n";
  const fields = log.fields ? " " + paint(out, "gray", JSON.stringify(log.fields)) : "";
  return `${paint(out, "gray", shortTime(log.timestamp))} ${paint(out, statusColour(log.level), log.level.padEnd(5))} ${paint(out, "cyan", log.source.padEnd(8))} ${log.message}${fields}\n`;
}

const ENDED = new Set(["terminated", "failed"]);

/** Every kept log line, then (with follow) new ones as they come, until the instance ended or the signal. */
async function logs(client: PodiumClient, out: CliOutput, instanceId: string, follow: boolean, followMs: number, signal?: AbortSignal): Promise<number> {
  const options = signal ? { signal } : {};
  let after = 0;
  /** Prints every line after `after`; false when the instance is gone (followed to its end). */
  const drain = async (): Promise<boolean> => {
    for (;;) {
      let page;
      try {
        page = await client.listLogs(instanceId, { after, limit: 1000, ...options });
      } catch (err) {
        if (after > 0 && err instanceof PodiumConnectionError && err.status === 404) return false;
        throw err;
      }
      for (const log of page.logs) out.write(logLine(out, log));
      after = page.logs.at(-1)?.id ?? after;
      if (page.nextAfter === undefined) return page.logs.length > 0 || !follow || (await live());
    }
  };
  const live = async (): Promise<boolean> => {
    try {
      return !ENDED.has((await client.getInstance(instanceId, options)).status);
    } catch (err) {
      if (err instanceof PodiumConnectionError && err.status === 404) return false;
      throw err;
    }
  };
  while (await drain()) {
    if (!follow || signal?.aborted) return 0;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, followMs);
      signal?.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
    });
    if (signal?.aborted) return 0;
  }
  // Ended: what it logged last (its stop) may have come after the page that found it idle.
  if (follow) await drain().catch(() => false);
  return 0;
}

async function state(client: PodiumClient, out: CliOutput, instanceId: string, at: number | undefined, signal?: AbortSignal): Promise<number> {
  const view = await client.getState(instanceId, { ...(at !== undefined ? { at } : {}), ...(signal ? { signal } : {}) });
  if (!out.human) return json(out, view);
  const patch = view.patches[0];
  const made = patch ? `, made by ${patch.ops.length} operation${patch.ops.length === 1 ? "" : "s"}${patch.timestamp ? ` at ${shortTime(patch.timestamp)}` : ""}` : "";
  out.write(paint(out, "gray", `# version ${view.version}${at === undefined ? " (current)" : ""}${made}`) + "\n");
  json(out, view.state ?? {});
  if (patch) out.write(paint(out, "gray", `# patch ${JSON.stringify(patch.ops)}`) + "\n");
  return 0;
}

async function files(client: PodiumClient, out: CliOutput, instanceId: string, path: string | undefined, history: boolean, signal?: AbortSignal): Promise<number> {
  const options = signal ? { signal } : {};
  if (history) {
    if (!path) throw new UsageError("podium files ID PATH --history needs the file's path");
    const iterations = await client.fileHistory(instanceId, path, options);
    if (!out.human) return json(out, iterations);
    const rows = iterations.map((it) => [
      String(it.iteration),
      shortTime(it.timestamp),
      paint(out, it.change === "deleted" ? "red" : it.change === "created" ? "green" : "yellow", it.change || "?"),
      bytes(it.size),
      it.hash.replace(/^sha256:/, "").slice(0, 12),
    ]);
    out.write(table(out, ["ITERATION", "TIME (UTC)", "CHANGE", "SIZE", "SHA-256"], rows));
    return 0;
  }
  const entries = await client.listFiles(instanceId, path, undefined, options);
  if (!out.human) return json(out, entries);
  if (entries.length === 0) return note(out, "no files");
  const rows = entries.map((e) => [
    e.type === "directory" ? paint(out, "blue", e.path + "/") : e.path,
    e.type === "directory" ? "" : bytes(e.size),
    shortTime(e.modifiedAt),
    e.iteration === undefined ? "" : String(e.iteration),
  ]);
  out.write(table(out, ["PATH", "SIZE", "MODIFIED (UTC)", "ITERATION"], rows));
  return 0;
}

/** Sends TEXT as a turn and streams that turn's events until its turn.done; exit 1 when the turn failed. */
async function send(client: PodiumClient, out: CliOutput, instanceId: string, text: string, signal?: AbortSignal): Promise<number> {
  const sent = await client.postMessage(instanceId, { text }, signal ? { signal } : {});
  // Replays from the message on: nothing of its turn is missed, whatever ran before it.
  const connection = await client.connect(instanceId, { afterSeq: sent.seq, ...(signal ? { signal } : {}) });
  let midLine = false;
  try {
    for await (const event of connection.events) {
      if (!out.human) out.write(JSON.stringify(event) + "\n");
      else midLine = printEvent(out, event, midLine);
      if (event.messageType === PlatformEvent.turnDone && event.content?.turn === sent.turn) {
        if (midLine) out.write("\n");
        return event.content.ok === true ? 0 : 1;
      }
      if (event.messageType === PlatformEvent.terminated) break;
    }
  } catch (err) {
    if (!(signal?.aborted && err instanceof PodiumConnectionError)) throw err;
    return 130;
  } finally {
    await connection.close();
  }
  if (midLine) out.write("\n");
  return signal?.aborted ? 130 : 1;
}

/** A person's view of one event: streamed text as it comes, anything else on its own dim line. */
function printEvent(out: CliOutput, event: PodiumEvent, midLine: boolean): boolean {
  const content = event.content ?? {};
  if ((event.messageType === "stream_update" || event.messageType === PlatformEvent.complete) && typeof content.text === "string") {
    out.write(content.text);
    return !content.text.endsWith("\n");
  }
  if (event.messageType === "stream_end" || event.messageType === PlatformEvent.turnDone) return midLine;
  const line = event.messageType === PlatformEvent.error ? paint(out, "red", `error: ${String(content.message ?? "")}`) : paint(out, "gray", `[${event.messageType}] ${JSON.stringify(content)}`);
  out.write(`${midLine ? "\n" : ""}${line}\n`);
  return false;
}
