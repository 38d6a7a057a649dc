/**
 * Stale local copies of agents. When another coordinator wrote an agent since this host last ran it,
 * the local directory is out of date: it is moved aside as `<agentDir>.stale-<epoch ms>` (kept for
 * inspection, e.g. to recover writes of a partitioned host) and the agent is restored from S3. Only the
 * newest stale copy of each agent is kept, and copies older than the retention are removed when the
 * coordinator starts (docs/replication.md).
 */
import fs from "node:fs";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { isValidClientId } from "../shared/ids.js";
import { mountsUnder, readMountTable } from "../coordinator/sandbox/mount-table.js";

const STALE = /^(.+)\.stale-(\d+)$/;

/**
 * Mount points at or below `dir` (an agent's disk volume, sandbox/agent-volumes.ts). A copy with mounts is
 * never renamed or removed: a recursive removal would delete the mounted volume's content and then fail
 * with EBUSY. The coordinator unmounts volumes when instances end and sweeps left-overs at start.
 */
function mountedUnder(dir: string): string[] {
  try {
    return mountsUnder(readMountTable(), fs.realpathSync(dir)).map((m) => m.mountPoint);
  } catch {
    return []; // no such directory, or no /proc/self/mountinfo (not Linux): nothing mounted we could know of
  }
}

/** Moves `agentDir` aside; removes the agent's older stale copies. Returns the new path. */
export function moveAsideStaleCopy(agentDir: string, now = Date.now()): string {
  const mounted = mountedUnder(agentDir);
  if (mounted.length > 0) {
    throw new ConnectError(`cannot move the stale copy ${agentDir} aside: its disk volume is still mounted (${mounted.join(", ")})`, Code.FailedPrecondition);
  }
  let stamp = now;
  while (fs.existsSync(`${agentDir}.stale-${stamp}`)) stamp++;
  const aside = `${agentDir}.stale-${stamp}`;
  fs.renameSync(agentDir, aside);
  const parent = path.dirname(agentDir);
  const name = path.basename(agentDir);
  for (const entry of fs.readdirSync(parent)) {
    const match = STALE.exec(entry);
    const older = path.join(parent, entry);
    if (match?.[1] === name && older !== aside && mountedUnder(older).length === 0) fs.rmSync(older, { recursive: true, force: true });
  }
  return aside;
}

/** Removes stale copies under `agentsDir` older than `retentionMs`; returns how many were removed. */
export function removeStaleCopies(agentsDir: string, retentionMs: number, now = Date.now()): number {
  let removed = 0;
  let entries: string[];
  try {
    entries = fs.readdirSync(agentsDir);
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const match = STALE.exec(entry);
    if (!match || now - Number(match[2]) < retentionMs) continue;
    if (mountedUnder(path.join(agentsDir, entry)).length > 0) continue;
    fs.rmSync(path.join(agentsDir, entry), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

/** True for directory names of stale copies (not agents). */
export function isStaleCopyName(name: string): boolean {
  return STALE.test(name);
}

/** A client-chosen agent id: the shared id grammar, and not a stale copy's reserved name. */
export function assertAgentId(agentId: string, field = "agent_id"): void {
  if (!isValidClientId(agentId)) {
    throw new ConnectError(`${field} must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit`, Code.InvalidArgument);
  }
  if (isStaleCopyName(agentId)) throw new ConnectError(`${field}: names ending in ".stale-<digits>" are reserved for stale local copies`, Code.InvalidArgument);
}
