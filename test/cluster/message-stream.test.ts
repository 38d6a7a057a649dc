/**
 * The gateway's message stream to a coordinator (CoordinatorService.SendMessages): a real connect-node
 * server over h2c on port 0 running the coordinator's handler around a fake SendMessage, and the
 * gateway's MessageStreamClient over a real gRPC transport. Every message gets its own answer, errors
 * keep their code and metadata and count as answers, cancels and breaks never leave a caller waiting,
 * and a coordinator without the method gets unary calls.
 */
import { describe, it, expect, afterEach } from "@jest/globals";
import { Code, ConnectError, createClient, type ConnectRouter } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { CoordinatorService } from "../../gen/podium/v1/coordinator_service_pb.js";
import { InstanceService, type SendMessageRequest } from "../../gen/podium/v1/instance_service_pb.js";
import { sendMessagesHandler, type SendOne } from "../../services/coordinator/message-stream.js";
import { exceeds, MessageStreamClient, STREAM_MAX_CONTENT_BYTES } from "../../services/cluster/message-stream-client.js";
import { callFailure } from "../../services/gateway/call-failure.js";
import { RETRY_AFTER_HEADER } from "../../services/shared/errors.js";
import { startTestServer, type TestServer } from "../grpc/grpc-test-server.js";

interface Setup {
  server: TestServer;
  client: MessageStreamClient;
  sessions: Http2SessionManager;
  unaryCalls: SendMessageRequest[];
}

const open: Setup[] = [];

async function setUp(send: SendOne, options: { closing?: AbortSignal; withStream?: boolean } = {}): Promise<Setup> {
  const unaryCalls: SendMessageRequest[] = [];
  const routes = (router: ConnectRouter): void => {
    router.service(InstanceService, {
      async sendMessage(req, ctx) {
        unaryCalls.push(req);
        return send(req, ctx, ctx.signal);
      },
    });
    if (options.withStream !== false) router.service(CoordinatorService, { sendMessages: sendMessagesHandler(send, options.closing ?? new AbortController().signal) });
  };
  const server = await startTestServer(routes);
  const sessions = new Http2SessionManager(server.url);
  const transport = createGrpcTransport({ baseUrl: server.url, sessionManager: sessions });
  const instances = createClient(InstanceService, transport);
  const client = new MessageStreamClient(createClient(CoordinatorService, transport), (req, o) => instances.sendMessage(req, o));
  const setup = { server, client, sessions, unaryCalls };
  open.push(setup);
  return setup;
}

afterEach(async () => {
  for (const { client, sessions, server } of open.splice(0)) {
    client.close();
    sessions.abort();
    await server.close();
  }
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Answers with the number in the instance id as the seq, after a delay that scrambles the order of answers. */
const echo: SendOne = async (req) => {
  const n = Number(req.instanceId.slice(1));
  await sleep((n * 7) % 5);
  if (n % 10 === 3) throw new ConnectError(`instance ${req.instanceId} is busy`, Code.ResourceExhausted, { [RETRY_AFTER_HEADER]: "2" });
  return { seq: BigInt(n), turn: 1n, queuePosition: n % 4 };
};

describe("the gateway's message stream", () => {
  it("answers each of many concurrent messages with its own outcome, errors with their code and metadata", async () => {
    const { client, unaryCalls } = await setUp(echo);
    const outcomes = await Promise.allSettled(Array.from({ length: 300 }, (_, n) => client.send({ instanceId: `i${n}`, content: { text: "hi" } })));
    outcomes.forEach((outcome, n) => {
      if (n % 10 === 3) {
        expect(outcome.status).toBe("rejected");
        const error = ConnectError.from((outcome as PromiseRejectedResult).reason);
        expect(error.code).toBe(Code.ResourceExhausted);
        expect(error.rawMessage).toBe(`instance i${n} is busy`);
        expect(error.metadata.get(RETRY_AFTER_HEADER)).toBe("2");
        // The coordinator's answer, not a broken connection: no retry elsewhere, nothing against its breaker.
        expect(callFailure(error)).toBe("answered");
      } else {
        expect(outcome).toEqual({ status: "fulfilled", value: expect.objectContaining({ seq: BigInt(n), turn: 1n, queuePosition: n % 4 }) });
      }
    });
    expect(unaryCalls).toHaveLength(0);
    expect(client.pending).toBe(0);
  });

  it("passes each message's metadata on (traceparent)", async () => {
    const seen: (string | null)[] = [];
    const { client } = await setUp(async (_req, call) => {
      seen.push(call.requestHeader.get("traceparent"));
      expect(call.method.name).toBe("SendMessage");
      return { seq: 1n };
    });
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await client.send({ instanceId: "a" }, { headers: { traceparent } });
    await client.send({ instanceId: "b" });
    expect(seen).toEqual([traceparent, null]);
  });

  it("fails a cancelled message at once and cancels its handling at the coordinator", async () => {
    let handlingAborted: Promise<unknown> | undefined;
    const { client } = await setUp(async (req, _call, signal) => {
      if (req.instanceId === "slow") {
        handlingAborted = new Promise((resolve) => signal?.addEventListener("abort", () => resolve(signal.reason), { once: true }));
        await handlingAborted;
        throw new ConnectError("aborted", Code.Canceled);
      }
      return { seq: 7n };
    });
    const controller = new AbortController();
    const slow = client.send({ instanceId: "slow" }, { signal: controller.signal });
    await expect(client.send({ instanceId: "fast" })).resolves.toMatchObject({ seq: 7n });
    controller.abort();
    await expect(slow).rejects.toMatchObject({ code: Code.Canceled });
    await expect(handlingAborted).resolves.toMatchObject({ code: Code.Canceled });
    // The stream goes on.
    await expect(client.send({ instanceId: "after" })).resolves.toMatchObject({ seq: 7n });
    expect(client.pending).toBe(0);
  });

  it("answers what it is handling when the coordinator closes, then fails new messages instead of holding them", async () => {
    const closing = new AbortController();
    let release: (() => void) | undefined;
    const { client } = await setUp(
      async (req) => {
        if (req.instanceId === "held") await new Promise<void>((resolve) => (release = resolve));
        return { seq: 5n };
      },
      { closing: closing.signal },
    );
    const held = client.send({ instanceId: "held" });
    while (!release) await sleep(5);
    closing.abort();
    release();
    await expect(held).resolves.toMatchObject({ seq: 5n });
    // A stream opened after the coordinator began closing ends at once: the message fails, it never hangs,
    // and the gateway knows it was not handled (not held against the coordinator's circuit).
    const error = ConnectError.from(await client.send({ instanceId: "late" }).catch((e: unknown) => e));
    expect(error.code).toBe(Code.Unavailable);
    expect(callFailure(error)).toBe("refused");
  });

  it("fails the messages in flight when the connection breaks, and opens a new stream for the next", async () => {
    let calls = 0;
    const { client, sessions } = await setUp(async (req, _call, signal) => {
      calls++;
      // Held until the stream ends (the break aborts its handling).
      if (req.instanceId === "hang") await new Promise((resolve) => signal?.addEventListener("abort", resolve, { once: true }));
      return { seq: 1n };
    });
    await client.send({ instanceId: "warm" });
    const hanging = client.send({ instanceId: "hang" });
    while (calls < 2) await sleep(5);
    sessions.abort(new ConnectError("connection reset", Code.Unavailable));
    const error = ConnectError.from(await hanging.catch((e: unknown) => e));
    expect(callFailure(error)).toBe("no_answer");
    await expect(client.send({ instanceId: "again" })).resolves.toMatchObject({ seq: 1n });
  });

  it("sends unary SendMessage calls to a coordinator that does not have the stream", async () => {
    const { client, unaryCalls } = await setUp(async (req) => ({ seq: BigInt(req.instanceId.length) }), { withStream: false });
    const answers = await Promise.all([client.send({ instanceId: "a" }), client.send({ instanceId: "bb" })]);
    expect(answers.map((a) => a.seq)).toEqual([1n, 2n]);
    await expect(client.send({ instanceId: "ccc" })).resolves.toMatchObject({ seq: 3n });
    expect(unaryCalls.map((r) => r.instanceId).sort()).toEqual(["a", "bb", "ccc"]);
  });

  it("sends a large message as a unary call, so that no message waits behind its transfer on the stream", async () => {
    const { client, unaryCalls } = await setUp(async (req) => ({ seq: BigInt(String(req.content?.text ?? "").length) }));
    const large = "x".repeat(STREAM_MAX_CONTENT_BYTES + 1);
    const [big, small] = await Promise.all([client.send({ instanceId: "i1", content: { text: large } }), client.send({ instanceId: "i2", content: { text: "hi" } })]);
    expect([big.seq, small.seq]).toEqual([BigInt(large.length), 2n]);
    expect(unaryCalls.map((r) => r.instanceId)).toEqual(["i1"]);
    // The estimate counts what the content holds, nested and in arrays (a number is ~9 bytes of protobuf).
    expect(exceeds({ a: [1, 2, 3], b: { c: "de" } }, 100)).toBe(false);
    expect(exceeds({ numbers: Array.from({ length: 8000 }, (_, i) => i) }, STREAM_MAX_CONTENT_BYTES)).toBe(true);
    expect(exceeds({ deep: [[[["x".repeat(70_000)]]]] }, STREAM_MAX_CONTENT_BYTES)).toBe(true);
  });

  it("refuses a message without content and a duplicate id with INVALID_ARGUMENT, on the same stream", async () => {
    const server = await startTestServer((router) =>
      router.service(CoordinatorService, {
        sendMessages: sendMessagesHandler(async () => {
          await sleep(50);
          return { seq: 1n };
        }, new AbortController().signal),
      }),
    );
    const sessions = new Http2SessionManager(server.url);
    try {
      const control = createClient(CoordinatorService, createGrpcTransport({ baseUrl: server.url, sessionManager: sessions }));
      const requests = [{ id: 1n, kind: { case: "message" as const, value: { instanceId: "x" } } }, { id: 1n, kind: { case: "message" as const, value: { instanceId: "y" } } }, { id: 2n }];
      async function* feed() {
        yield* requests;
        await sleep(100); // the first message is still being handled when the duplicate arrives
      }
      const answers = [];
      for await (const answer of control.sendMessages(feed())) answers.push(answer);
      expect(answers.map((a) => [a.id, a.result.case, a.result.case === "error" ? a.result.value.code : 0])).toEqual([
        [1n, "error", Code.InvalidArgument],
        [2n, "error", Code.InvalidArgument],
        [1n, "response", 0],
      ]);
    } finally {
      sessions.abort();
      await server.close();
    }
  });
});
