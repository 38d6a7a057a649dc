/**
 * The embedded server's gateway -> coordinator transport calls the handlers directly. Each case runs the
 * same calls through createRouterTransport (the whole Connect protocol) and checks that a caller sees the
 * same outcome: messages, error codes and messages, deadlines, and a caller's abort reaching the handler,
 * a streaming one's included. Errors a handler answered with count as answered (not retried elsewhere).
 */
import { describe, expect, it } from "@jest/globals";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { Code, ConnectError, createClient, createRouterTransport, type ConnectRouter, type Transport } from "@connectrpc/connect";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { createInProcessTransport } from "../../services/shared/in-process-transport.js";
import { callFailure } from "../../services/gateway/call-failure.js";

interface Seen {
  streamSignalAborted: boolean;
  headers: string[];
}

function routesWith(seen: Seen) {
  return (router: ConnectRouter) =>
    router.service(InstanceService, {
      getInstance(req, ctx) {
        seen.headers.push(ctx.requestHeader.get("x-test") ?? "");
        if (req.instanceId === "missing") throw new ConnectError("instance missing not found", Code.NotFound);
        if (req.instanceId === "broken") throw new Error("/secret/host/path exploded");
        return { instance: { instanceId: req.instanceId, agentId: "agent-1" } };
      },
      async stopInstance(_req, ctx) {
        // Waits for its signal: the caller's deadline or abort.
        await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
        throw ctx.signal.reason;
      },
      async *streamUpdates(req, ctx) {
        ctx.signal.addEventListener("abort", () => (seen.streamSignalAborted = true), { once: true });
        for (let seq = 1; seq <= 1000 && !ctx.signal.aborted; seq++) {
          yield { updates: [{ instanceId: req.instanceId, seq: BigInt(seq), messageType: "stream_update" }] };
          await new Promise((resolve) => setImmediate(resolve));
        }
      },
    });
}

async function outcome<T>(call: () => Promise<T>): Promise<{ ok: T } | { code: string; message: string; failure: string }> {
  try {
    return { ok: await call() };
  } catch (err) {
    const error = ConnectError.from(err);
    return { code: Code[error.code], message: error.rawMessage, failure: callFailure(err) };
  }
}

const transports: [string, (routes: (router: ConnectRouter) => void) => Transport][] = [
  ["router transport", (routes) => createRouterTransport(routes)],
  ["in-process transport", (routes) => createInProcessTransport(routes)],
];

describe.each(transports)("%s", (_name, make) => {
  it("answers unary calls, and handlers' errors with their code (an unexpected one as internal error)", async () => {
    const seen: Seen = { streamSignalAborted: false, headers: [] };
    const client = createClient(InstanceService, make(routesWith(seen)));
    const found = await client.getInstance({ instanceId: "i-1" }, { headers: { "x-test": "hello" } });
    expect(found.instance?.instanceId).toBe("i-1");
    expect(found.instance?.agentId).toBe("agent-1");
    expect(seen.headers).toEqual(["hello"]);
    expect(await outcome(() => client.getInstance({ instanceId: "missing" }))).toEqual({ code: "NotFound", message: "instance missing not found", failure: "answered" });
    expect(await outcome(() => client.getInstance({ instanceId: "broken" }))).toEqual({ code: "Internal", message: "internal error", failure: "answered" });
  });

  it("ends the handler's signal at the caller's deadline and when the caller aborts", async () => {
    const client = createClient(InstanceService, make(routesWith({ streamSignalAborted: false, headers: [] })));
    const timedOut = await outcome(() => client.stopInstance({ instanceId: "i-1" }, { timeoutMs: 50 }));
    expect(timedOut).toMatchObject({ code: "DeadlineExceeded" });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const aborted = await outcome(() => client.stopInstance({ instanceId: "i-1" }, { signal: controller.signal }));
    expect(aborted).toMatchObject({ code: "Canceled" });
  });

  it("streams in order, and a caller that aborts gets Canceled and aborts the handler's signal", async () => {
    const seen: Seen = { streamSignalAborted: false, headers: [] };
    const client = createClient(InstanceService, make(routesWith(seen)));
    const seqs: number[] = [];
    const controller = new AbortController();
    const ended = await outcome(async () => {
      for await (const res of client.streamUpdates({ instanceId: "i-1" }, { signal: controller.signal })) {
        for (const update of res.updates) seqs.push(Number(update.seq));
        if (seqs.length === 5) controller.abort();
      }
    });
    expect(ended).toMatchObject({ code: "Canceled" });
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    for (let i = 0; i < 100 && !seen.streamSignalAborted; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(seen.streamSignalAborted).toBe(true);
  });
});

describe("in-process transport streams", () => {
  it("keep no message it handed over reachable (a long stream's memory stays flat)", async () => {
    v8.setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    let firstBatch: WeakRef<object> | undefined;
    const routes = (router: ConnectRouter) =>
      router.service(InstanceService, {
        async *streamUpdates() {
          for (let seq = 1; seq <= 50; seq++) {
            const res = { updates: [{ instanceId: "i-1", seq: BigInt(seq), messageType: "x", content: { blob: "y".repeat(1 << 20) + seq } }] };
            firstBatch ??= new WeakRef(res.updates);
            yield res;
            await new Promise((resolve) => setImmediate(resolve));
          }
        },
      });
    const client = createClient(InstanceService, createInProcessTransport(routes));
    let read = 0;
    for await (const res of client.streamUpdates({ instanceId: "i-1" })) {
      read += res.updates.length;
      if (read === 40) {
        await new Promise((resolve) => setImmediate(resolve));
        gc();
        // Read and dropped 39 batches ago: only a reference kept by the transport could hold it.
        expect(firstBatch?.deref()).toBeUndefined();
      }
    }
    expect(read).toBe(50);
  });
});
