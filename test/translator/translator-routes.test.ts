import { describe, it, expect } from "@jest/globals";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { translatorRoutes, type TranslatorDeps } from "../../services/translator/translator-routes.js";
import { TranslatorService } from "../../gen/podium/v1/translator_service_pb.js";
import { StreamUpdateSchema, type StreamUpdate } from "../../gen/podium/v1/stream_update_pb.js";
import type { JsonObject } from "../../services/shared/json.js";

const T0 = Date.UTC(2025, 5, 1, 12, 0, 0, 0);

function update(seq: number, messageType: string, content?: JsonObject): StreamUpdate {
  return create(StreamUpdateSchema, {
    instanceId: "inst-1",
    agentId: "agent-1",
    seq: BigInt(seq),
    timestamp: timestampFromMs(T0 + seq),
    messageType,
    ...(content ? { content } : {}),
  });
}

/** A fake upstream: a fixed history, filtered by afterSeq the way the gateway would. */
function fakeUpstream(history: StreamUpdate[]) {
  const calls: Array<{ instanceId: string; afterSeq: number }> = [];
  const deps: TranslatorDeps = {
    async *streamUpdates(instanceId, afterSeq, signal) {
      calls.push({ instanceId, afterSeq });
      for (const u of history) {
        if (signal.aborted) return;
        if (Number(u.seq) > afterSeq) yield u;
      }
    },
    now: () => T0,
  };
  return { deps, calls };
}

const HISTORY = [
  update(1, "stream_start"),
  update(2, "stream_update", { text: "Hel" }),
  update(4, "heartbeat"), // unknown, no text: dropped
  update(5, "stream_update", { text: "lo" }),
  update(6, "custom.note", { text: "!" }), // unknown with text: text_delta
  update(7, "stream_end"),
];

describe("TranslatorService via createRouterTransport", () => {
  it("Translate maps one update and continues the session's seq", async () => {
    const client = createClient(TranslatorService, createRouterTransport(translatorRoutes(fakeUpstream([]).deps)));
    const response = await client.translate({ update: update(9, "tool.call", { id: "c1", name: "bash" }), sessionId: "s1", sessionSeq: 10n });
    expect(response.sessionSeq).toBe(11n);
    expect(response.events).toHaveLength(1);
    const [event] = response.events;
    expect(event?.type).toBe("tool_call");
    expect(event?.seq).toBe(11n);
    expect(event?.sessionId).toBe("s1");
    expect(event?.instanceId).toBe("inst-1");
    expect(event?.agentId).toBe("agent-1");
    expect(event?.data).toEqual({ tool_call_id: "c1", name: "bash", args: {} });
    expect(event?.timestamp).toEqual(timestampFromMs(T0 + 9));
  });

  it("Translate of a dropped update returns no events and the same seq", async () => {
    const client = createClient(TranslatorService, createRouterTransport(translatorRoutes(fakeUpstream([]).deps)));
    const response = await client.translate({ update: update(3, "heartbeat"), sessionId: "s1", sessionSeq: 4n });
    expect(response.events).toEqual([]);
    expect(response.sessionSeq).toBe(4n);
  });

  it("Translate rejects a missing update", async () => {
    const client = createClient(TranslatorService, createRouterTransport(translatorRoutes(fakeUpstream([]).deps)));
    await expect(client.translate({ sessionId: "s1" })).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(client.translate({ update: create(StreamUpdateSchema, { instanceId: "i" }) })).rejects.toMatchObject({
      code: Code.InvalidArgument,
    });
  });

  it("StreamClientEvents translates the instance's updates, gap-free from 1", async () => {
    const { deps, calls } = fakeUpstream(HISTORY);
    const client = createClient(TranslatorService, createRouterTransport(translatorRoutes(deps)));
    const got: Array<[string, bigint, bigint, JsonObject | undefined]> = [];
    for await (const r of client.streamClientEvents({ instanceId: "inst-1", sessionId: "sess" })) {
      got.push([r.event?.type ?? "", r.event?.seq ?? 0n, r.updateSeq, r.event?.data]);
      expect(r.event?.sessionId).toBe("sess");
    }
    expect(calls).toEqual([{ instanceId: "inst-1", afterSeq: 0 }]);
    expect(got).toEqual([
      ["turn_started", 1n, 1n, {}],
      ["text_delta", 2n, 2n, { text: "Hel" }],
      ["text_delta", 3n, 5n, { text: "lo" }],
      ["text_delta", 4n, 6n, { text: "!" }],
      ["turn_complete", 5n, 7n, {}],
    ]);
  });

  it("StreamClientEvents resumes after after_seq and session_seq, and ignores replayed duplicates", async () => {
    const sloppy: TranslatorDeps = {
      async *streamUpdates() {
        for (const u of HISTORY) yield u; // ignores afterSeq
      },
    };
    const client = createClient(TranslatorService, createRouterTransport(translatorRoutes(sloppy)));
    const got: Array<[bigint, bigint]> = [];
    for await (const r of client.streamClientEvents({ instanceId: "inst-1", afterSeq: 2n, sessionSeq: 2n })) {
      got.push([r.event?.seq ?? 0n, r.updateSeq]);
      expect(r.event?.sessionId).toBe("inst-1");
    }
    expect(got).toEqual([
      [3n, 5n],
      [4n, 6n],
      [5n, 7n],
    ]);
  });

  it("StreamClientEvents requires an instance id and passes upstream errors through", async () => {
    const failing: TranslatorDeps = {
      // biome-ignore lint/correctness/useYield: a stream that fails before its first update
      async *streamUpdates(instanceId) {
        throw new ConnectError(`instance ${instanceId} not found`, Code.NotFound);
      },
    };
    const client = createClient(TranslatorService, createRouterTransport(translatorRoutes(failing)));
    const drain = async (instanceId: string) => {
      for await (const _ of client.streamClientEvents({ instanceId })) void _;
    };
    await expect(drain("")).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(drain("inst-x")).rejects.toMatchObject({ code: Code.NotFound });
  });

  it("StreamClientEvents stops the upstream when the client cancels", async () => {
    let aborted = false;
    const endless: TranslatorDeps = {
      async *streamUpdates(_instanceId, _afterSeq, signal) {
        signal.addEventListener("abort", () => (aborted = true));
        for (let seq = 1; !signal.aborted; seq++) {
          yield update(seq, "stream_update", { text: String(seq) });
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      },
    };
    const client = createClient(TranslatorService, createRouterTransport(translatorRoutes(endless)));
    const controller = new AbortController();
    const seen: bigint[] = [];
    await expect(
      (async () => {
        for await (const r of client.streamClientEvents({ instanceId: "inst-1" }, { signal: controller.signal })) {
          seen.push(r.event?.seq ?? 0n);
          if (seen.length === 3) controller.abort();
        }
      })(),
    ).rejects.toMatchObject({ code: Code.Canceled });
    expect(seen).toEqual([1n, 2n, 3n]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(aborted).toBe(true);
  });
});
