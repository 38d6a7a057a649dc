/**
 * Keeps each live agent's Chronicle open for capture after every turn, and opens one for the call
 * when files of a stopped agent are read.
 *
 * A stopped agent whose workspace lives on a disk volume (sandbox/agent-volumes.ts) has no workspace
 * directory while unmounted: reads need only chronicle.db, and a write (restore) mounts the volume for the
 * call through `mountWorkspace`.
 */
import fs from "node:fs";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { Chronicle } from "./chronicle/chronicle.js";
import type { FileAccess, ChronicleReader } from "./file-routes.js";
import type { InstanceManager, WorkspaceFactory } from "./instance-manager.js";
import { isValidClientId } from "../shared/ids.js";

export interface ChronicleAccess extends FileAccess {
  readonly factory: WorkspaceFactory;
  attach(manager: InstanceManager): void;
  close(): void;
}

export interface ChronicleAccessOptions {
  quotaBytes?: number | undefined;
  /**
   * Mounts a stopped agent's workspace for a write (AgentVolumes.openExisting); undefined when the agent
   * has no volume (its workspace is a plain directory). Without it, restores of stopped agents whose
   * volume is unmounted fail with FailedPrecondition (workspace absent) and write nothing.
   */
  mountWorkspace?: (agentDir: string, signal?: AbortSignal) => Promise<{ release(): Promise<void> } | undefined>;
}

export function createChronicleAccess(options: ChronicleAccessOptions): ChronicleAccess {
  const live = new Map<string, Chronicle>();
  let manager: InstanceManager | undefined;
  // Live agents get change tracking (a watcher thread); a Chronicle opened for one read of a
  // stopped agent's files does not need it.
  const open = (agentDir: string, watch = false) =>
    Chronicle.open({
      workspaceDir: path.join(agentDir, "workspace"),
      dbPath: path.join(agentDir, "chronicle.db"),
      watch,
      ...(options.quotaBytes ? { quotaBytes: options.quotaBytes } : {}),
    });
  const agentDirOf = (agentId: string): string => {
    if (!manager) throw new ConnectError("file access is not attached to a coordinator", Code.Internal);
    if (!isValidClientId(agentId)) throw new ConnectError(`unknown agent ${agentId}`, Code.NotFound);
    return manager.agentDir(agentId);
  };
  /** A stopped agent exists when it has a workspace or (its volume unmounted) a history. */
  const assertKnown = (agentId: string, agentDir: string) => {
    if (!fs.existsSync(path.join(agentDir, "workspace")) && !fs.existsSync(path.join(agentDir, "chronicle.db"))) {
      throw new ConnectError(`unknown agent ${agentId}`, Code.NotFound);
    }
  };
  const withStopped = <T>(agentId: string, agentDir: string, fn: (chronicle: ChronicleReader) => T): T => {
    const current = live.get(agentDir);
    if (current) return fn(current);
    assertKnown(agentId, agentDir);
    const chronicle = open(agentDir);
    try {
      return fn(chronicle);
    } finally {
      chronicle.close();
    }
  };
  return {
    factory(agentDir) {
      const chronicle = open(agentDir, true);
      live.set(agentDir, chronicle);
      return {
        capture: () => chronicle.capture(),
        captureSoon: () => chronicle.captureSoon(),
        releaseMemory: () => chronicle.releaseMemory(),
        close: () => {
          if (live.get(agentDir) === chronicle) live.delete(agentDir);
          chronicle.close();
        },
      };
    },
    attach(m) {
      manager = m;
    },
    withChronicle<T>(agentId: string, fn: (chronicle: ChronicleReader) => T): T {
      return withStopped(agentId, agentDirOf(agentId), fn);
    },
    async withWorkspace<T>(agentId: string, fn: (chronicle: ChronicleReader) => T, signal?: AbortSignal): Promise<T> {
      const agentDir = agentDirOf(agentId);
      const current = live.get(agentDir);
      if (current) return fn(current);
      assertKnown(agentId, agentDir);
      const volume = await options.mountWorkspace?.(agentDir, signal);
      try {
        // An instance may have started while the volume was being mounted: then its Chronicle is used.
        return withStopped(agentId, agentDir, fn);
      } finally {
        await volume?.release();
      }
    },
    acquire(agentId: string) {
      const agentDir = agentDirOf(agentId);
      const current = live.get(agentDir);
      if (current) return { chronicle: current, release: () => undefined };
      assertKnown(agentId, agentDir);
      const chronicle = open(agentDir);
      return { chronicle, release: () => chronicle.close() };
    },
    close() {
      for (const chronicle of live.values()) chronicle.close();
      live.clear();
    },
  };
}
