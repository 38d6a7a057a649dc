/**
 * The questions and permission requests an agent is waiting on: every event it sent with a string
 * `content.request_id` (tool.question_requested, tool.permission_requested, ...). A client may answer
 * only these, once each; anything else would let it forge `tool.approval_resolved` in the agent's log.
 */
import type { JsonObject } from "../shared/json.js";
import { PlatformEvent } from "../shared/platform-events.js";

export const RESOLVED_EVENT = PlatformEvent.requestResolved;
/** A hostile agent must not grow this without bound: past the cap the oldest request is forgotten. */
const MAX_OPEN_REQUESTS = 1024;
const MAX_REQUEST_ID_LENGTH = 256;

export class OpenRequests {
  /** Insertion-ordered, so the oldest is first. */
  private readonly ids = new Set<string>();

  /** Notes an event the agent sent: a request_id opens a request; `tool.approval_resolved` closes it. */
  track(messageType: string, content: JsonObject | undefined): void {
    const id = content?.request_id;
    if (typeof id !== "string" || id.length === 0 || id.length > MAX_REQUEST_ID_LENGTH) return;
    if (messageType === RESOLVED_EVENT) {
      this.ids.delete(id);
      return;
    }
    this.ids.add(id);
    if (this.ids.size > MAX_OPEN_REQUESTS) this.ids.delete(this.ids.values().next().value as string);
  }

  /** Closes an open request; false when the agent never asked it or it was answered already. */
  take(id: string): boolean {
    return this.ids.delete(id);
  }
}
