import { describe, it, expect } from "@jest/globals";
import { fromJson } from "@bufbuild/protobuf";
import { SessionSequencer } from "../../services/translator/session-sequencer.js";
import { mapPodiumEvent } from "../../services/translator/map-event.js";
import { clientEventFromProto, clientEventToJson, clientEventToProto, type ClientEventDraft } from "../../services/translator/client-event.js";
import { ClientEventSchema } from "../../gen/podium/v1/client_event_pb.js";

const T0 = Date.UTC(2025, 0, 2, 3, 4, 5, 6);
const draft = (text: string): ClientEventDraft => ({ type: "text_delta", data: { text } });

describe("SessionSequencer", () => {
  it("numbers events gap-free from 1, across calls", () => {
    const sequencer = new SessionSequencer({ sessionId: "s1", instanceId: "i1", now: () => T0 });
    const first = sequencer.next([draft("a"), draft("b")]);
    const none = sequencer.next([]);
    const second = sequencer.next(mapPodiumEvent({ messageType: "stream_end" }));
    const third = sequencer.next([draft("c")]);
    expect(none).toEqual([]);
    expect([...first, ...second, ...third].map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(sequencer.lastSeq).toBe(4);
  });

  it("keeps sessions independent", () => {
    const a = new SessionSequencer({ sessionId: "a" });
    const b = new SessionSequencer({ sessionId: "b" });
    a.next([draft("1"), draft("2"), draft("3")]);
    const [fromB] = b.next([draft("x")]);
    const [fromA] = a.next([draft("4")]);
    expect(fromB).toMatchObject({ sessionId: "b", seq: 1 });
    expect(fromA).toMatchObject({ sessionId: "a", seq: 4 });
  });

  it("continues a resumed session after lastSeq", () => {
    const sequencer = new SessionSequencer({ sessionId: "s", lastSeq: 41 });
    expect(sequencer.next([draft("x")])[0]?.seq).toBe(42);
    expect(() => new SessionSequencer({ sessionId: "s", lastSeq: -1 })).toThrow(RangeError);
  });

  it("stamps RFC 3339 timestamps from the clock or the source, and the instance", () => {
    const sequencer = new SessionSequencer({ sessionId: "s", instanceId: "i1", now: () => T0 });
    const [fromClock] = sequencer.next([{ type: "thinking_start", data: {}, agentId: "ag" }]);
    const [fromSource] = sequencer.next([draft("x")], { timestamp: new Date(T0 + 1000), instanceId: "i2" });
    expect(fromClock).toEqual({
      type: "thinking_start",
      seq: 1,
      timestamp: "2025-01-02T03:04:05.006Z",
      sessionId: "s",
      instanceId: "i1",
      agentId: "ag",
      data: {},
    });
    expect(fromSource).toMatchObject({ seq: 2, timestamp: "2025-01-02T03:04:06.006Z", instanceId: "i2" });
    expect(fromSource).not.toHaveProperty("agentId");
  });
});

describe("ClientEvent JSON and proto forms", () => {
  it("the bridge frame is the documented JSON and parses as podium.v1.ClientEvent", () => {
    const sequencer = new SessionSequencer({ sessionId: "s-1", instanceId: "inst-1", now: () => T0 });
    const [event] = sequencer.next(mapPodiumEvent({ messageType: "tool.call", content: { id: "c1", name: "bash", args: { cmd: "ls" } }, agentId: "a-1" }));
    if (!event) throw new Error("no event");
    const frame = clientEventToJson(event);
    expect(frame).toBe(
      '{"type":"tool_call","seq":1,"timestamp":"2025-01-02T03:04:05.006Z","sessionId":"s-1","instanceId":"inst-1","agentId":"a-1",' + '"data":{"tool_call_id":"c1","name":"bash","args":{"cmd":"ls"}}}',
    );
    const parsed = fromJson(ClientEventSchema, JSON.parse(frame));
    expect(parsed).toEqual(clientEventToProto(event));
    expect(clientEventFromProto(parsed)).toEqual(event);
  });

  it("leaves agentId out when unknown and rejects unknown types from proto", () => {
    const [event] = new SessionSequencer({ sessionId: "s", now: () => T0 }).next([draft("x")]);
    if (!event) throw new Error("no event");
    expect(JSON.parse(clientEventToJson(event))).not.toHaveProperty("agentId");
    expect(clientEventFromProto(clientEventToProto(event))).toEqual(event);
    expect(() => clientEventFromProto({ ...clientEventToProto(event), type: "nope" })).toThrow(TypeError);
  });
});
