/**
 * One ACP session = one Podium agent (session id = agent id), served by one live instance at a
 * time. A prompt sends `process_message` (with the session's cwd and MCP servers as metadata),
 * follows the updates after that message, and ends at its turn's end. Cancel sends `cancel` to
 * the agent and answers `cancelled` once the turn ends (or after `cancelGraceMs`).
 */
import * as acp from "@agentclientprotocol/sdk";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorMessage } from "../shared/errors.js";
import type { Json, JsonObject } from "../shared/json.js";
import type { Logger } from "../shared/logger.js";
import { mapPodiumEvent } from "../translator/map-event.js";
import { AcpMapper, type AcpAction } from "./acp-mapping.js";
import { CANCELLED_ANSWER, permissionRoundTrip, questionRoundTrip, type InteractionHost } from "./interactions.js";
import { isInstanceGone, type PodiumBackend, type SentTurn } from "./podium-backend.js";
import { promptContent } from "./prompt-content.js";

export interface SessionDeps {
  backend: PodiumBackend;
  logger: Logger;
  clientCapabilities: () => acp.ClientCapabilities | undefined;
  /** How long a cancelled prompt waits for its turn to end before answering `cancelled` anyway. */
  cancelGraceMs: number;
}

export interface SessionInit {
  sessionId: string;
  instanceId: string;
  deploymentId: string;
  cwd: string;
  mcpServers: acp.McpServer[];
}

interface PromptRun {
  instanceId: string;
  sent: SentTurn;
  cancelled: boolean;
  /** Aborts the update stream and every pending client request. */
  readonly controller: AbortController;
  /** Client requests in flight, by the agent's request_id. */
  readonly pending: Map<string, AbortController>;
  graceTimer?: ReturnType<typeof setTimeout>;
}

/** A Podium or transport failure as a JSON-RPC error for the client. */
export function toRequestError(err: unknown): acp.RequestError {
  if (err instanceof acp.RequestError) return err;
  if (err instanceof ConnectError) {
    const data = { podium_code: Code[err.code] };
    if (err.code === Code.InvalidArgument) return new acp.RequestError(-32602, err.rawMessage, data);
    return new acp.RequestError(-32603, err.rawMessage, data);
  }
  return new acp.RequestError(-32603, errorMessage(err));
}

export class AcpSession {
  readonly sessionId: string;
  instanceId: string;
  deploymentId: string;
  cwd: string;
  mcpServers: acp.McpServer[];
  readonly alwaysAllowed = new Set<string>();
  private readonly mapper = new AcpMapper();
  private active: PromptRun | undefined;
  /** Set while a prompt's message is being sent (before its run exists); `cancelled` records an early cancel. */
  private starting: { cancelled: boolean } | undefined;

  constructor(
    private readonly deps: SessionDeps,
    init: SessionInit,
  ) {
    this.sessionId = init.sessionId;
    this.instanceId = init.instanceId;
    this.deploymentId = init.deploymentId;
    this.cwd = init.cwd;
    this.mcpServers = init.mcpServers;
  }

  get busy(): boolean {
    return this.active !== undefined || this.starting !== undefined;
  }

  async prompt(params: acp.PromptRequest, client: acp.AgentContext, signal: AbortSignal): Promise<acp.PromptResponse> {
    if (this.busy) throw acp.RequestError.invalidRequest({ sessionId: this.sessionId }, "a prompt is already running in this session");
    const content = promptContent(params.prompt, this);
    const starting = { cancelled: false };
    this.starting = starting;
    const onAbort = () => this.cancel();
    signal.addEventListener("abort", onAbort, { once: true });
    let sent: SentTurn;
    try {
      sent = await this.send(content, signal);
    } catch (err) {
      signal.removeEventListener("abort", onAbort);
      if (starting.cancelled || signal.aborted) return { stopReason: "cancelled" };
      throw err;
    } finally {
      this.starting = undefined;
    }
    const run: PromptRun = { instanceId: this.instanceId, sent, cancelled: false, controller: new AbortController(), pending: new Map() };
    this.active = run;
    this.mapper.startTurn();
    if (starting.cancelled || signal.aborted) this.cancel();
    try {
      return await this.follow(run, client);
    } finally {
      signal.removeEventListener("abort", onAbort);
      clearTimeout(run.graceTimer);
      run.controller.abort();
      if (this.active === run) this.active = undefined;
    }
  }

  /** `session/cancel`: cancels the running turn, if any. */
  cancel(): void {
    if (this.starting) this.starting.cancelled = true;
    const run = this.active;
    if (!run || run.cancelled) return;
    run.cancelled = true;
    const { backend, logger } = this.deps;
    for (const [requestId, controller] of run.pending) {
      controller.abort();
      backend.answer(run.instanceId, requestId, CANCELLED_ANSWER).catch(() => undefined);
    }
    backend.cancelTurn(run.instanceId, run.sent.turn).catch((err: unknown) => {
      logger.warn("cancel failed", { session_id: this.sessionId, instance_id: run.instanceId, error: errorMessage(err) });
    });
    run.graceTimer = setTimeout(() => run.controller.abort(), this.deps.cancelGraceMs);
  }

  /** Sends to the session's instance; when it has ended, reactivates the agent once and retries. */
  private async send(content: JsonObject, signal: AbortSignal): Promise<SentTurn> {
    try {
      return await this.deps.backend.sendMessage(this.instanceId, content, signal);
    } catch (err) {
      if (!isInstanceGone(err)) throw toRequestError(err);
    }
    try {
      await this.reactivate(signal);
      return await this.deps.backend.sendMessage(this.instanceId, content, signal);
    } catch (err) {
      throw toRequestError(err);
    }
  }

  /** Points the session at a live instance of its agent, starting one when there is none. */
  async reactivate(signal?: AbortSignal): Promise<void> {
    const { backend } = this.deps;
    const live = await backend.liveInstances({ agentId: this.sessionId }, signal);
    const instance = live[0] ?? (await backend.createInstance({ deploymentId: this.deploymentId, agentId: this.sessionId, environment: { ACP_CWD: this.cwd } }, signal));
    this.instanceId = instance.instanceId;
  }

  private notify(client: acp.AgentContext, update: acp.SessionUpdate): Promise<void> {
    return client.notify(acp.methods.client.session.update, { sessionId: this.sessionId, update });
  }

  private async follow(run: PromptRun, client: acp.AgentContext): Promise<acp.PromptResponse> {
    const host = this.interactionHost(run, client);
    let endsSeen = 0;
    try {
      for await (const update of this.deps.backend.updates(run.instanceId, run.sent.seq, run.controller.signal)) {
        const drafts = mapPodiumEvent({ messageType: update.messageType, ...(update.content ? { content: update.content } : {}) });
        for (const draft of drafts) {
          for (const action of this.mapper.map(draft)) {
            if (action.kind === "turn_end" || action.kind === "turn_error") {
              if (!(await this.endsOwnTurn(run, update.seq, endsSeen++))) continue;
              return this.finish(run, action);
            }
            await this.act(run, client, host, action);
          }
        }
      }
    } catch (err) {
      if (run.cancelled) return { stopReason: "cancelled" };
      throw toRequestError(err);
    }
    if (run.cancelled) return { stopReason: "cancelled" };
    throw new acp.RequestError(-32603, "the agent instance ended before the turn completed", { podium_code: "Unavailable" });
  }

  private finish(run: PromptRun, action: Extract<AcpAction, { kind: "turn_end" | "turn_error" }>): acp.PromptResponse {
    if (run.cancelled) return { stopReason: "cancelled" };
    if (action.kind === "turn_end") return { stopReason: action.stopReason };
    throw new acp.RequestError(-32603, action.message, action.code ? { podium_code: action.code } : undefined);
  }

  private async act(run: PromptRun, client: acp.AgentContext, host: InteractionHost, action: AcpAction): Promise<void> {
    const { logger } = this.deps;
    const fail = (what: string) => (err: unknown) => {
      if (run.controller.signal.aborted) return;
      logger.warn(`${what} failed`, { session_id: this.sessionId, instance_id: run.instanceId, error: errorMessage(err) });
    };
    switch (action.kind) {
      case "update":
        await this.notify(client, action.update);
        return;
      case "permission":
        // Not awaited: updates keep flowing while the user decides.
        permissionRoundTrip(host, client, action).catch(fail("permission request"));
        return;
      case "question":
        questionRoundTrip(host, client, action).catch(fail("question"));
        return;
      case "resolved":
        // Answered (by us, or by another client of the same instance): stop asking.
        run.pending.get(action.requestId)?.abort();
        return;
      default:
        return;
    }
  }

  private interactionHost(run: PromptRun, client: acp.AgentContext): InteractionHost {
    return {
      sessionId: this.sessionId,
      clientCapabilities: this.deps.clientCapabilities(),
      alwaysAllowed: this.alwaysAllowed,
      notify: (update) => this.notify(client, update),
      answer: (requestId: string, value: Json) => this.deps.backend.answer(run.instanceId, requestId, value),
      ask: async <T>(requestId: string, send: (signal: AbortSignal) => Promise<T>): Promise<T | undefined> => {
        if (run.cancelled || run.controller.signal.aborted) return undefined;
        const controller = new AbortController();
        run.pending.set(requestId, controller);
        const stop = () => controller.abort();
        run.controller.signal.addEventListener("abort", stop, { once: true });
        try {
          const response = await send(controller.signal);
          return controller.signal.aborted || run.cancelled ? undefined : response;
        } catch (err) {
          if (controller.signal.aborted || run.cancelled) return undefined;
          throw err;
        } finally {
          run.controller.signal.removeEventListener("abort", stop);
          run.pending.delete(requestId);
        }
      },
    };
  }

  /**
   * Whether a turn-ending event (update `seq`, the `index`-th seen) ends this prompt's turn. Turns
   * run one at a time, so when the message ran at once the first end is ours; otherwise the
   * messages database says which turn the event belongs to.
   */
  private async endsOwnTurn(run: PromptRun, seq: number, index: number): Promise<boolean> {
    if (run.sent.queuePosition === 0) return index === 0;
    try {
      const page = await this.deps.backend.listMessages(run.instanceId, seq - 1, 1, run.controller.signal);
      const record = page.messages[0];
      if (record && record.seq === seq) return record.turn === run.sent.turn;
    } catch {
      // fall back to counting
    }
    return index === run.sent.queuePosition;
  }
}
