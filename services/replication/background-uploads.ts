/**
 * Final uploads that cannot finish when the agent stops (docs/replication.md "Failure modes"):
 *
 *   drain()       S3 slow or away at release: the agent's last writes exist only on this host. Its
 *                 Litestream keeps uploading in the background and the lease stays here, so no other
 *                 coordinator restores the agent without them (their prepare() answers AlreadyExists:
 *                 "still uploading … retry"). A new instance on this coordinator cancels the upload and
 *                 takes over (its local copy is current).
 *   afterLapse()  the lease lapsed (Valkey away longer than the ttl, or this process starved): the agent
 *                 was stopped, but what it wrote since the last upload exists only here. Take the lease
 *                 again, first come first served like any new owner, and upload under it (in the
 *                 background if S3 is away too); if another coordinator got the lease first, stop
 *                 without an upload.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import type { AgentLease } from "./agent-lease.js";
import type { LitestreamSupervisor } from "./litestream-supervisor.js";

export interface BackgroundUploadsOptions {
  /** How long a final upload may take before it goes to the background (and acquiring waits for Valkey). */
  finalSyncMs: number;
  logger: Logger;
  acquire(agentId: string): Promise<AgentLease | undefined>;
  /** Waits for S3 to catch up, then stops Litestream gracefully; true when everything was uploaded. */
  stopSupervisor(agentId: string, supervisor: LitestreamSupervisor): Promise<boolean>;
  /** The replication facade is closing: start nothing more in the background. */
  closing(): boolean;
}

export class BackgroundUploads {
  private readonly drains = new Map<string, { cancel(): Promise<void> }>();

  constructor(private readonly options: BackgroundUploadsOptions) {}

  /** True when the caller should leave the upload to drain(): S3 did not catch up within finalSyncMs. */
  async behind(supervisor: LitestreamSupervisor, lease: AgentLease | undefined): Promise<boolean> {
    return !(await supervisor.waitForCatchUp(this.options.finalSyncMs)) && lease?.holds() !== false && !this.options.closing();
  }

  /**
   * Keeps `supervisor` uploading under `lease` until S3 has everything, then stops it, calls `uploaded`
   * (record the final positions) and releases the lease.
   */
  drain(agentId: string, supervisor: LitestreamSupervisor, lease: AgentLease | undefined, uploaded: () => Promise<void>): void {
    const { logger } = this.options;
    const controller = new AbortController();
    const holds = () => lease?.holds() !== false;
    logger.warn("agent's last writes are not in S3 yet; uploading them in the background (its lease stays on this coordinator)", { agent_id: agentId });
    const done = (async () => {
      let synced = false;
      try {
        for (;;) {
          if (controller.signal.aborted || !holds()) break;
          if (await supervisor.waitForCatchUp(5000, controller.signal)) break;
        }
        if (!controller.signal.aborted && holds()) synced = await this.options.stopSupervisor(agentId, supervisor);
        else await supervisor.stop({ graceful: false });
        if (synced && holds()) await uploaded();
      } catch (err) {
        logger.error("uploading the agent's last writes failed", { agent_id: agentId, error: errorMessage(err) });
      } finally {
        this.drains.delete(agentId);
        await lease?.release();
      }
      logger.info("agent's background upload ended", { agent_id: agentId, synced, cancelled: controller.signal.aborted });
    })();
    this.drains.set(agentId, {
      cancel: async () => {
        controller.abort();
        await done;
      },
    });
  }

  /** After the agent's lease lapsed: the final upload under the lease taken again (see the module comment). */
  async afterLapse(agentId: string, supervisor: LitestreamSupervisor, uploaded: () => Promise<void>): Promise<void> {
    const { logger, finalSyncMs } = this.options;
    let lease: AgentLease | undefined;
    // Valkey may still be away (that is how the lease lapsed): retry while it is, for as long as a final sync may take.
    for (const giveUpAt = Date.now() + finalSyncMs; !lease && !this.options.closing(); ) {
      try {
        lease = await this.options.acquire(agentId);
      } catch (err) {
        if (!(err instanceof ConnectError && err.code === Code.Unavailable) || Date.now() >= giveUpAt) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    if (!lease) {
      logger.warn("the agent's lease went to another coordinator: its last writes here are not uploaded", { agent_id: agentId });
      await supervisor.stop({ graceful: false });
      return;
    }
    if (await this.behind(supervisor, lease)) return this.drain(agentId, supervisor, lease, uploaded);
    try {
      const synced = await this.options.stopSupervisor(agentId, supervisor);
      if (synced && lease.holds()) await uploaded();
      logger.info("uploaded the agent's last writes after its lease lapsed", { agent_id: agentId, synced });
    } finally {
      await lease.release();
    }
  }

  /** A new instance of the agent here takes over from its background upload (if any): stops it, frees the lease. */
  async cancel(agentId: string): Promise<void> {
    await this.drains.get(agentId)?.cancel();
  }

  /** Ends every background upload; what they had not uploaded stays on this host's disk. */
  async cancelAll(): Promise<void> {
    await Promise.all([...this.drains.values()].map((d) => d.cancel()));
  }
}
