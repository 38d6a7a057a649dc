/**
 * `session/load`: the agent's whole message history, from the messages database, as
 * `session/update` notifications. Inbound `process_message`s become `user_message_chunk`; outbound
 * events go through the translator and the ACP mapping like live ones, minus the interactive round
 * trips (a past permission request is not asked again).
 */
import type * as acp from "@agentclientprotocol/sdk";
import type { JsonObject } from "../shared/json.js";
import { isJsonObject } from "../shared/json.js";
import { mapPodiumEvent } from "../translator/map-event.js";
import { AcpMapper } from "./acp-mapping.js";
import type { PodiumBackend } from "./podium-backend.js";

const PAGE = 1000;

export interface HistorySummary {
  /** User messages replayed. */
  userMessages: number;
  /** The first user message, for session titles. */
  firstText?: string;
  /** `acp.cwd` of the first user message that had one. */
  cwd?: string;
}

function acpCwd(content: JsonObject | undefined): string | undefined {
  const meta = content?.acp;
  return isJsonObject(meta) && typeof meta.cwd === "string" ? meta.cwd : undefined;
}

/**
 * Walks the history; `emit` (when given) receives every update in order. Without `emit` it only
 * summarises and stops at the first user message.
 */
export async function replayHistory(backend: PodiumBackend, instanceId: string, emit: ((update: acp.SessionUpdate) => Promise<void>) | undefined, signal?: AbortSignal): Promise<HistorySummary> {
  const mapper = new AcpMapper();
  const summary: HistorySummary = { userMessages: 0 };
  let after = 0;
  for (;;) {
    const page = await backend.listMessages(instanceId, after, PAGE, signal);
    for (const message of page.messages) {
      if (message.direction === "inbound") {
        const text = message.content?.text;
        if (typeof text !== "string") continue;
        summary.userMessages += 1;
        summary.firstText ??= text;
        summary.cwd ??= acpCwd(message.content);
        if (!emit) return summary;
        mapper.startTurn();
        if (text) await emit({ sessionUpdate: "user_message_chunk", content: { type: "text", text } });
        continue;
      }
      if (!emit) continue;
      const drafts = mapPodiumEvent({ messageType: message.messageType, ...(message.content ? { content: message.content } : {}) });
      for (const draft of drafts) {
        for (const action of mapper.map(draft)) if (action.kind === "update") await emit(action.update);
      }
    }
    if (!page.nextAfterSeq || page.messages.length === 0) return summary;
    after = page.nextAfterSeq;
  }
}
