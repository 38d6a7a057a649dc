/**
 * The ACP agent Podium presents to editors: an `@agentclientprotocol/sdk` agent app over a
 * PodiumBackend. One `AcpAgent` per ACP connection (it holds the client's capabilities and the
 * connection's sessions). docs/acp.md describes the behaviour and the mapping.
 */
import * as acp from "@agentclientprotocol/sdk";
import { errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { PODIUM_VERSION } from "../shared/version.js";
import { AcpSession, toRequestError } from "./acp-session.js";
import { replayHistory } from "./history-replay.js";
import type { BackendInstance, PodiumBackend } from "./podium-backend.js";
import { createSessionDirectory, type SessionDirectory } from "./session-directory.js";

export interface AcpAgentOptions {
  backend: PodiumBackend;
  logger: Logger;
  /** The deployment sessions run (`session/new` may override it with `_meta.podium.deploymentId`). */
  deploymentId?: string;
  directory?: SessionDirectory;
  /** How long a cancelled prompt waits for the agent to end its turn. Default 10000. */
  cancelGraceMs?: number;
  /** Stop the instances this connection started or reactivated when it closes. Default false. */
  stopOnClose?: boolean;
}

const TITLE_LENGTH = 80;

function title(text: string | undefined): string | undefined {
  if (!text) return undefined;
  const line = text.trim().split("\n")[0] ?? "";
  return line.length > TITLE_LENGTH ? `${line.slice(0, TITLE_LENGTH - 1)}…` : line || undefined;
}

function metaDeployment(meta: { [key: string]: unknown } | null | undefined): string | undefined {
  const podium = meta?.podium;
  if (typeof podium !== "object" || podium === null) return undefined;
  const id = (podium as Record<string, unknown>).deploymentId ?? (podium as Record<string, unknown>).deployment_id;
  return typeof id === "string" && id ? id : undefined;
}

export class AcpAgent {
  readonly app: acp.AgentApp;
  private readonly sessions = new Map<string, AcpSession>();
  private readonly started = new Set<string>();
  private readonly directory: SessionDirectory;
  private clientCapabilities: acp.ClientCapabilities | undefined;

  constructor(private readonly options: AcpAgentOptions) {
    this.directory = options.directory ?? createSessionDirectory();
    this.app = acp
      .agent({ name: "podium" })
      .onRequest(acp.methods.agent.initialize, ({ params }) => this.initialize(params))
      .onRequest(acp.methods.agent.session.new, ({ params, signal }) => this.newSession(params, signal))
      .onRequest(acp.methods.agent.session.load, ({ params, client, signal }) => this.loadSession(params, client, signal))
      .onRequest(acp.methods.agent.session.list, ({ params, signal }) => this.listSessions(params, signal))
      .onRequest(acp.methods.agent.session.prompt, ({ params, client, signal }) => this.session(params.sessionId).prompt(params, client, signal))
      .onNotification(acp.methods.agent.session.cancel, ({ params }) => {
        this.sessions.get(params.sessionId)?.cancel();
      });
  }

  /** Serves one connection; resolves when it closes. */
  async serve(stream: acp.Stream): Promise<void> {
    const connection = this.app.connect(stream);
    await connection.closed;
    await this.close();
  }

  /** Cancels running prompts and (with stopOnClose) stops the instances this connection started. */
  async close(): Promise<void> {
    for (const session of this.sessions.values()) session.cancel();
    if (this.options.stopOnClose) {
      await Promise.all(
        [...this.started].map((instanceId) =>
          this.options.backend.stopInstance(instanceId).catch((err: unknown) => {
            this.options.logger.warn("could not stop instance", { instance_id: instanceId, error: errorMessage(err) });
          }),
        ),
      );
    }
    this.sessions.clear();
    this.started.clear();
  }

  private initialize(params: acp.InitializeRequest): acp.InitializeResponse {
    this.clientCapabilities = params.clientCapabilities;
    return {
      protocolVersion: acp.PROTOCOL_VERSION,
      agentCapabilities: {
        loadSession: true,
        promptCapabilities: { image: false, audio: false, embeddedContext: true },
        sessionCapabilities: { list: {} },
      },
      agentInfo: { name: "podium", title: "Podium", version: PODIUM_VERSION },
      authMethods: [],
    };
  }

  private session(sessionId: string): AcpSession {
    const session = this.sessions.get(sessionId);
    if (!session) throw acp.RequestError.sessionNotFound(sessionId);
    return session;
  }

  private deployment(meta: { [key: string]: unknown } | null | undefined): string {
    const id = metaDeployment(meta) ?? this.options.deploymentId;
    if (!id) throw acp.RequestError.invalidParams(undefined, "no deployment: start the adapter with a deployment or pass _meta.podium.deploymentId");
    return id;
  }

  private track(instance: BackendInstance, params: { cwd: string; mcpServers: acp.McpServer[] }, deploymentId: string, started: boolean): AcpSession {
    const session = new AcpSession(
      {
        backend: this.options.backend,
        logger: this.options.logger,
        clientCapabilities: () => this.clientCapabilities,
        cancelGraceMs: this.options.cancelGraceMs ?? 10_000,
      },
      { sessionId: instance.agentId, instanceId: instance.instanceId, deploymentId, cwd: params.cwd, mcpServers: params.mcpServers },
    );
    this.sessions.set(session.sessionId, session);
    if (started) this.started.add(instance.instanceId);
    return session;
  }

  private async newSession(params: acp.NewSessionRequest, signal: AbortSignal): Promise<acp.NewSessionResponse> {
    const deploymentId = this.deployment(params._meta);
    let instance: BackendInstance;
    try {
      instance = await this.options.backend.createInstance({ deploymentId, environment: { ACP_CWD: params.cwd } }, signal);
    } catch (err) {
      throw toRequestError(err);
    }
    this.track(instance, params, deploymentId, true);
    this.directory.set(instance.agentId, { cwd: params.cwd });
    return { sessionId: instance.agentId, _meta: { podium: { instanceId: instance.instanceId, agentId: instance.agentId, deploymentId } } };
  }

  private async loadSession(params: acp.LoadSessionRequest, client: acp.AgentContext, signal: AbortSignal): Promise<acp.LoadSessionResponse> {
    const { backend } = this.options;
    const existing = this.sessions.get(params.sessionId);
    if (existing?.busy) throw acp.RequestError.invalidRequest({ sessionId: params.sessionId }, "the session has a prompt running");
    const deploymentId = existing?.deploymentId ?? this.deployment(params._meta);
    let instance: BackendInstance;
    let created = false;
    try {
      if (!existing && (await backend.agentExists(params.sessionId, signal)) === false) throw acp.RequestError.sessionNotFound(params.sessionId);
      const live = await backend.liveInstances({ agentId: params.sessionId }, signal);
      instance = live[0] ?? (await backend.createInstance({ deploymentId, agentId: params.sessionId, environment: { ACP_CWD: params.cwd } }, signal));
      created = live.length === 0;
    } catch (err) {
      throw toRequestError(err);
    }
    const notify = (update: acp.SessionUpdate) => client.notify(acp.methods.client.session.update, { sessionId: params.sessionId, update });
    let summary;
    try {
      // A session nobody ever prompted and this process does not know is not a session: undo the start.
      if (created && !existing && !this.directory.get(params.sessionId)) {
        const probe = await replayHistory(backend, instance.instanceId, undefined, signal);
        if (probe.userMessages === 0) {
          await backend.stopInstance(instance.instanceId).catch(() => undefined);
          throw acp.RequestError.sessionNotFound(params.sessionId);
        }
      }
      summary = await replayHistory(backend, instance.instanceId, notify, signal);
    } catch (err) {
      throw toRequestError(err);
    }
    const session = this.track(instance, params, deploymentId, created);
    this.directory.set(session.sessionId, { cwd: params.cwd, ...(title(summary.firstText) ? { title: title(summary.firstText) as string } : {}) });
    return { _meta: { podium: { instanceId: instance.instanceId, agentId: instance.agentId, deploymentId, replayedUserMessages: summary.userMessages } } };
  }

  private async listSessions(params: acp.ListSessionsRequest, signal: AbortSignal): Promise<acp.ListSessionsResponse> {
    const { backend } = this.options;
    let instances: BackendInstance[];
    try {
      instances = await backend.liveInstances(this.options.deploymentId ? { deploymentId: this.options.deploymentId } : {}, signal);
    } catch (err) {
      throw toRequestError(err);
    }
    const sessions: acp.SessionInfo[] = [];
    for (const instance of instances) {
      let known = this.directory.get(instance.agentId);
      if (!known?.title) {
        const summary = await replayHistory(backend, instance.instanceId, undefined, signal).catch(() => undefined);
        const cwd = known?.cwd ?? summary?.cwd;
        if (cwd) {
          known = { cwd, ...(title(summary?.firstText) ? { title: title(summary?.firstText) as string } : {}) };
          this.directory.set(instance.agentId, known);
        }
      }
      if (params.cwd && known?.cwd !== params.cwd) continue;
      const info: acp.SessionInfo = { sessionId: instance.agentId, cwd: known?.cwd ?? "/" };
      if (known?.title) info.title = known.title;
      if (instance.createdAt) info.updatedAt = instance.createdAt;
      info._meta = { podium: { instanceId: instance.instanceId, deploymentId: instance.deploymentId } };
      sessions.push(info);
    }
    return { sessions };
  }
}
