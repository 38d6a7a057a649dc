/**
 * TranslatorService: Translate (one StreamUpdate -> client events, stateless: the caller passes the
 * session's seq) and StreamClientEvents (an instance's updates, translated, as they happen).
 * Mounted on the real server and on createRouterTransport in tests alike.
 */
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  StreamClientEventsResponseSchema,
  TranslateResponseSchema,
  TranslatorService,
  type StreamClientEventsRequest,
  type StreamClientEventsResponse,
  type TranslateRequest,
  type TranslateResponse,
} from "../../gen/podium/v1/translator_service_pb.js";
import type { StreamUpdate } from "../../gen/podium/v1/stream_update_pb.js";
import { clientEventToProto, type ClientEvent } from "./client-event.js";
import { mapPodiumEvent } from "./map-event.js";
import { SessionSequencer } from "./session-sequencer.js";

export interface TranslatorDeps {
  /** An instance's updates with seq > afterSeq (replay, then live) until the instance ends or signal aborts. */
  streamUpdates(instanceId: string, afterSeq: number, signal: AbortSignal): AsyncIterable<StreamUpdate>;
  /** Clock for updates without a timestamp. Default Date.now. */
  now?: () => number;
}

function seqNumber(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ConnectError(`${field} is too large`, Code.InvalidArgument);
  return Number(value);
}

/** Maps one update and stamps the result (instance: the update's, else the sequencer's default). */
export function translateUpdate(update: StreamUpdate, sequencer: SessionSequencer, now: () => number): ClientEvent[] {
  const drafts = mapPodiumEvent({
    messageType: update.messageType,
    ...(update.content ? { content: update.content } : {}),
    ...(update.agentId ? { agentId: update.agentId } : {}),
  });
  return sequencer.next(drafts, {
    ...(update.instanceId ? { instanceId: update.instanceId } : {}),
    timestamp: update.timestamp ? timestampMs(update.timestamp) : now(),
  });
}

export function createTranslatorHandlers(deps: TranslatorDeps) {
  const now = deps.now ?? Date.now;
  return {
    translate(request: TranslateRequest): TranslateResponse {
      const update = request.update;
      if (!update?.messageType) throw new ConnectError("update with a message_type is required", Code.InvalidArgument);
      const sessionId = request.sessionId || update.instanceId;
      if (!sessionId) throw new ConnectError("session_id (or update.instance_id) is required", Code.InvalidArgument);
      const sequencer = new SessionSequencer({ sessionId, lastSeq: seqNumber(request.sessionSeq, "session_seq") });
      const events = translateUpdate(update, sequencer, now);
      return create(TranslateResponseSchema, { events: events.map(clientEventToProto), sessionSeq: BigInt(sequencer.lastSeq) });
    },

    async *streamClientEvents(request: StreamClientEventsRequest, ctx: HandlerContext): AsyncGenerator<StreamClientEventsResponse> {
      if (!request.instanceId) throw new ConnectError("instance_id is required", Code.InvalidArgument);
      const afterSeq = seqNumber(request.afterSeq, "after_seq");
      const sequencer = new SessionSequencer({
        sessionId: request.sessionId || request.instanceId,
        instanceId: request.instanceId,
        lastSeq: seqNumber(request.sessionSeq, "session_seq"),
      });
      for await (const update of deps.streamUpdates(request.instanceId, afterSeq, ctx.signal)) {
        if (ctx.signal.aborted) return;
        // Defensive: a source that replays too much must not produce duplicates.
        if (update.seq <= request.afterSeq) continue;
        for (const event of translateUpdate(update, sequencer, now)) {
          yield create(StreamClientEventsResponseSchema, { event: clientEventToProto(event), updateSeq: update.seq });
        }
      }
    },
  };
}

export function translatorRoutes(deps: TranslatorDeps): (router: ConnectRouter) => void {
  return (router) => {
    router.service(TranslatorService, createTranslatorHandlers(deps));
  };
}
