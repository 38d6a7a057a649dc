/**
 * The agent's interactive requests as ACP round trips, and what goes back to the agent:
 * - permission_requested -> `session/request_permission` (allow once / allow always / reject);
 *   the agent gets `{"approved": bool, "option_id": …}`, or `{"approved": false, "outcome": "cancelled"}`.
 *   "Allow always" is remembered per session and tool name: later requests are approved without asking.
 * - question_requested -> `elicitation/create` (a one-field form) when the client advertises
 *   `elicitation.form`; the agent gets the answer string, or null when declined. Otherwise
 *   `session/request_permission` with one option per choice (the agent gets the choice) or
 *   Yes / No for an open question (the agent gets "yes" / "no"); null when dismissed.
 */
import * as acp from "@agentclientprotocol/sdk";
import type { Json } from "../shared/json.js";
import { SYNTHETIC_PERMISSION_PREFIX, type AcpAction } from "./acp-mapping.js";

export const PERMISSION_OPTIONS: acp.PermissionOption[] = [
  { optionId: "allow_once", name: "Allow", kind: "allow_once" },
  { optionId: "allow_always", name: "Always allow", kind: "allow_always" },
  { optionId: "reject_once", name: "Reject", kind: "reject_once" },
];

export const CANCELLED_ANSWER: Json = { approved: false, outcome: "cancelled" };

/** What the adapter's session offers the round trips. */
export interface InteractionHost {
  readonly sessionId: string;
  readonly clientCapabilities: acp.ClientCapabilities | undefined;
  readonly alwaysAllowed: Set<string>;
  notify(update: acp.SessionUpdate): Promise<void>;
  /** Sends a request to the client that is abandoned (resolves undefined) when the request is resolved elsewhere or the turn ends. */
  ask<T>(requestId: string, send: (signal: AbortSignal) => Promise<T>): Promise<T | undefined>;
  /** Relays the answer to the agent. */
  answer(requestId: string, value: Json): Promise<void>;
}

type PermissionAction = Extract<AcpAction, { kind: "permission" }>;
type QuestionAction = Extract<AcpAction, { kind: "question" }>;

export async function permissionRoundTrip(host: InteractionHost, client: acp.AgentContext, action: PermissionAction): Promise<void> {
  if (host.alwaysAllowed.has(action.key)) {
    await host.answer(action.requestId, { approved: true, option_id: "allow_always" });
    return;
  }
  if (action.announce) await host.notify(action.announce);
  const response = await host.ask(action.requestId, (signal) =>
    client.request(
      acp.methods.client.session.requestPermission,
      { sessionId: host.sessionId, toolCall: action.toolCall, options: PERMISSION_OPTIONS },
      { cancellationSignal: signal, stopWaitingOnCancel: true },
    ),
  );
  if (response === undefined) return;
  const outcome = response.outcome;
  if (outcome.outcome !== "selected") {
    await host.answer(action.requestId, CANCELLED_ANSWER);
    return;
  }
  const optionId = outcome.optionId;
  const approved = optionId === "allow_once" || optionId === "allow_always";
  if (optionId === "allow_always") host.alwaysAllowed.add(action.key);
  await host.answer(action.requestId, { approved, option_id: optionId });
  // A tool call the adapter made up for the request ends with the decision.
  if (action.toolCall.toolCallId.startsWith(SYNTHETIC_PERMISSION_PREFIX)) {
    await host.notify({ sessionUpdate: "tool_call_update", toolCallId: action.toolCall.toolCallId, status: approved ? "completed" : "failed" });
  }
}

export async function questionRoundTrip(host: InteractionHost, client: acp.AgentContext, action: QuestionAction): Promise<void> {
  if (host.clientCapabilities?.elicitation?.form) {
    const answerSchema: acp.ElicitationPropertySchema = action.choices ? { type: "string", title: "Answer", enum: action.choices } : { type: "string", title: "Answer" };
    const response = await host.ask(action.requestId, (signal) =>
      client.request(
        acp.methods.client.elicitation.create,
        {
          mode: "form",
          sessionId: host.sessionId,
          message: action.question,
          requestedSchema: { type: "object", properties: { answer: answerSchema }, required: ["answer"] },
        },
        { cancellationSignal: signal, stopWaitingOnCancel: true },
      ),
    );
    if (response === undefined) return;
    const content = response.action === "accept" && "content" in response ? response.content : undefined;
    const value = content && typeof content === "object" && !Array.isArray(content) ? (content as Record<string, unknown>).answer : undefined;
    await host.answer(action.requestId, typeof value === "string" || typeof value === "number" || typeof value === "boolean" ? value : null);
    return;
  }
  const toolCallId = `podium-question-${action.requestId}`;
  const options: acp.PermissionOption[] = action.choices
    ? [...action.choices.map((choice, i): acp.PermissionOption => ({ optionId: `choice-${i}`, name: choice, kind: "allow_once" })), { optionId: "dismiss", name: "Dismiss", kind: "reject_once" }]
    : [
        { optionId: "yes", name: "Yes", kind: "allow_once" },
        { optionId: "no", name: "No", kind: "reject_once" },
      ];
  await host.notify({ sessionUpdate: "tool_call", toolCallId, title: action.question, kind: "other", status: "pending" });
  const response = await host.ask(action.requestId, (signal) =>
    client.request(
      acp.methods.client.session.requestPermission,
      { sessionId: host.sessionId, toolCall: { toolCallId, title: action.question }, options },
      { cancellationSignal: signal, stopWaitingOnCancel: true },
    ),
  );
  if (response === undefined) return;
  const outcome = response.outcome;
  let value: Json = null;
  if (outcome.outcome === "selected") {
    const choice = /^choice-(\d+)$/.exec(outcome.optionId);
    if (choice && action.choices) value = action.choices[Number(choice[1])] ?? null;
    else if (outcome.optionId === "yes" || outcome.optionId === "no") value = outcome.optionId;
  }
  await host.notify({ sessionUpdate: "tool_call_update", toolCallId, status: "completed", rawOutput: value });
  await host.answer(action.requestId, value);
}
