/**
 * One outer uid (and gid) per agent, from a range, when the coordinator runs as root: an agent's
 * processes and files belong to a user no other agent and no host service has, so no handle, signal
 * or file mode lets one agent reach another's files even outside its namespaces.
 *
 * The assignment is kept on disk (`<dir>/<uid>` holds the agent id, created with O_EXCL), so an agent
 * keeps its uid across restarts and two agents never share one: a uid is picked by hashing the agent
 * id into the range and probing onwards past uids taken by other agents.
 */
import fs from "node:fs";
import path from "node:path";

export interface UidRange {
  first: number;
  last: number;
}

/** Far above system and login users and the usual /etc/subuid allocations (100000 + 65536·n). */
export const DEFAULT_AGENT_UID_RANGE: UidRange = { first: 600_000_000, last: 600_999_999 };

/** Parses "FIRST-LAST" (inclusive). */
export function parseUidRange(text: string): UidRange {
  const match = /^(\d+)-(\d+)$/.exec(text.trim());
  const first = Number(match?.[1]);
  const last = Number(match?.[2]);
  if (!match || first < 1000 || last < first || last > 0xfffffffe) {
    throw new Error(`agent uid range must be FIRST-LAST with 1000 <= FIRST <= LAST < 4294967295, got "${text}"`);
  }
  return { first, last };
}

function hash(text: string): number {
  let h = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export class AgentUids {
  private readonly known = new Map<string, number>();

  constructor(
    private readonly dir: string,
    readonly range: UidRange = DEFAULT_AGENT_UID_RANGE,
  ) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** The uid of `agentId`, assigning a free one the first time. */
  uidFor(agentId: string): number {
    const cached = this.known.get(agentId);
    if (cached !== undefined) return cached;
    const size = this.range.last - this.range.first + 1;
    const start = hash(agentId) % size;
    for (let probe = 0; probe < size; probe++) {
      const uid = this.range.first + ((start + probe) % size);
      const file = path.join(this.dir, String(uid));
      try {
        fs.writeFileSync(file, agentId, { flag: "wx", mode: 0o600 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        if (fs.readFileSync(file, "utf8") !== agentId) continue;
      }
      this.known.set(agentId, uid);
      return uid;
    }
    throw new Error(`every uid of ${this.range.first}-${this.range.last} is assigned; widen --agent-uids`);
  }

  /**
   * Frees the uid of an agent that will never run again (an unclaimed warm runner's). uidFor() probes from
   * a hash until it meets the agent's record or a free uid, so a freed uid must not sit inside a run of
   * assigned ones (an agent further along would then be given a new uid): the record is removed only when
   * the next uid is free, and otherwise kept, the uid staying taken.
   */
  release(agentId: string): void {
    let uid: number;
    try {
      uid = this.uidFor(agentId); // finds it when another run of this coordinator assigned it
    } catch {
      return;
    }
    this.known.delete(agentId);
    const next = this.range.first + ((uid - this.range.first + 1) % (this.range.last - this.range.first + 1));
    const file = path.join(this.dir, String(uid));
    try {
      if (!fs.existsSync(path.join(this.dir, String(next))) && fs.readFileSync(file, "utf8") === agentId) fs.unlinkSync(file);
    } catch {
      // already gone
    }
  }

  contains(uid: number): boolean {
    return uid >= this.range.first && uid <= this.range.last;
  }
}
