/**
 * Keeps each live agent's Chronicle open for capture after every turn, and opens one for the call
 * when files of a stopped agent are read.
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

export function createChronicleAccess(options: { quotaBytes?: number | undefined }): ChronicleAccess {
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
  return {
    factory(agentDir) {
      const chronicle = open(agentDir, true);
      live.set(agentDir, chronicle);
      return {
        capture: () => chronicle.capture(),
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
      if (!manager) throw new ConnectError("file access is not attached to a coordinator", Code.Internal);
      if (!isValidClientId(agentId)) throw new ConnectError(`unknown agent ${agentId}`, Code.NotFound);
      const agentDir = manager.agentDir(agentId);
      const current = live.get(agentDir);
      if (current) return fn(current);
      if (!fs.existsSync(path.join(agentDir, "workspace"))) throw new ConnectError(`unknown agent ${agentId}`, Code.NotFound);
      const chronicle = open(agentDir);
      try {
        return fn(chronicle);
      } finally {
        chronicle.close();
      }
    },
    acquire(agentId: string) {
      if (!manager) throw new ConnectError("file access is not attached to a coordinator", Code.Internal);
      if (!isValidClientId(agentId)) throw new ConnectError(`unknown agent ${agentId}`, Code.NotFound);
      const agentDir = manager.agentDir(agentId);
      const current = live.get(agentDir);
      if (current) return { chronicle: current, release: () => undefined };
      if (!fs.existsSync(path.join(agentDir, "workspace"))) throw new ConnectError(`unknown agent ${agentId}`, Code.NotFound);
      const chronicle = open(agentDir);
      return { chronicle, release: () => chronicle.close() };
    },
    close() {
      for (const chronicle of live.values()) chronicle.close();
      live.clear();
    },
  };
}
