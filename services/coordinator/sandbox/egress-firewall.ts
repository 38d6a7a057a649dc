/**
 * The host-side half of agents' egress filtering (docs/security.md). slirp4netns opens an agent's
 * connections in the host's network namespace, as the agent's outer uid, so one nftables table per
 * coordinator (output hook) sees them by socket owner (`meta skuid` in the agent uid range, `meta skgid`
 * slirp4netns's group, so agents with network "host" are not filtered) and refuses those to:
 * - any address of this host (`fib daddr type local`: loopback and every interface address, so the
 *   gateway, coordinators, Valkey or S3 running here are unreachable whatever address they bind);
 * - private, loopback, link-local (169.254.169.254, cloud metadata), CGNAT, reserved and multicast
 *   ranges, IPv4 and IPv6, and the caller's `block` list (e.g. public addresses of cluster services);
 * after accepting the operator's allow-list and the host's DNS resolvers on port 53 (slirp4netns
 * forwards the namespace's 10.0.2.3 to them). TCP is refused with a reset, the rest with ICMP
 * admin-prohibited, so a blocked connect fails at once. Several coordinators on one host each own a
 * table; a table whose coordinator died is removed by the next one that starts: its name carries the
 * owner's pid namespace, pid and process start time.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import type { UidRange } from "./agent-uids.js";
import { BLOCKED_IPV4, BLOCKED_IPV6, parseCidr, type EgressAllowRule } from "./egress-allow.js";
import { processStartTime } from "./system-tools.js";

export interface EgressPolicy {
  /** slirp4netns runs as an agent uid of this range with group `gid`; nothing else has both. */
  uidRange: UidRange;
  gid: number;
  allow: EgressAllowRule[];
  /** Extra CIDRs refused like private ranges (any port). */
  block: string[];
  /** DNS resolvers reachable on port 53 (the host's /etc/resolv.conf). */
  resolvers: string[];
  /** Shown by `nft list tables`-style tooling: who owns the table. */
  comment: string;
}

const TABLE_PREFIX = "podium_";
let tablesInProcess = 0;

function pidNamespace(): number {
  return fs.statSync("/proc/self/ns/pid").ino;
}

/** The nameservers of a resolv.conf (IPv6 zone ids dropped). */
export function hostResolvers(text: string): string[] {
  const found = [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => (m[1] ?? "").split("%")[0] ?? "");
  return [...new Set(found.filter((address) => net.isIP(address) !== 0))];
}

/** nftables matches for a destination: `ip daddr X` / `ip6 daddr X` and an optional port. */
function destination(cidr: string, port?: number): string {
  const family = parseCidr(cidr).family === 4 ? "ip" : "ip6";
  return `${family} daddr ${cidr}${port === undefined ? "" : ` meta l4proto { tcp, udp } th dport ${port}`}`;
}

/** The nftables script that creates `table` (pure, so tests can read it). */
export function egressRuleset(table: string, policy: EgressPolicy): string {
  const { first, last } = policy.uidRange;
  const blocked = (family: 4 | 6, base: readonly string[]) => [...base, ...policy.block.filter((cidr) => parseCidr(cidr).family === family)].join(", ");
  return [
    `table inet ${table} {`,
    `  comment ${JSON.stringify(policy.comment.replace(/["\\\n]/g, "_"))}`,
    "  chain output {",
    "    type filter hook output priority filter; policy accept;",
    `    meta skuid ${first === last ? first : `${first}-${last}`} meta skgid ${policy.gid} jump agent_egress`,
    "  }",
    "  chain agent_egress {",
    ...policy.allow.map((rule) => `    ${destination(rule.cidr, rule.port)} accept`),
    ...policy.resolvers.map((address) => `    ${destination(address, 53)} accept`),
    "    fib daddr type { local, broadcast, multicast } goto refuse",
    `    ip daddr { ${blocked(4, BLOCKED_IPV4)} } goto refuse`,
    `    ip6 daddr { ${blocked(6, BLOCKED_IPV6)} } goto refuse`,
    "  }",
    "  chain refuse {",
    "    counter",
    "    meta l4proto tcp reject with tcp reset",
    "    reject with icmpx admin-prohibited",
    "  }",
    "}",
    "",
  ].join("\n");
}

/** Runs nft; resolves with stdout, rejects with its stderr. */
export function runNft(nft: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(nft, args, { stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"], timeout: 10_000 });
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    for (const stream of [child.stdin, child.stdout, child.stderr]) stream?.on("error", () => undefined);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`nft ${args.join(" ")} failed (${signal ?? `exit ${code}`}): ${stderr.trim().slice(0, 500)}`));
    });
    child.stdin?.end(input);
  });
}

/** Removes the tables of coordinators (in this pid namespace) that are no longer running; returns their names. */
export async function removeDeadTables(nft: string): Promise<string[]> {
  const listing = await runNft(nft, ["list", "tables", "inet"]);
  const ours = String(pidNamespace());
  const removed: string[] = [];
  for (const match of listing.matchAll(/^table inet (podium_(\d+)_(\d+)_(\d+)_\d+)$/gm)) {
    const [, table = "", pidns, pid, started] = match;
    if (pidns !== ours || processStartTime(Number(pid)) === started) continue;
    try {
      await runNft(nft, ["delete", "table", "inet", table]);
      removed.push(table);
    } catch {
      // another coordinator removed it first
    }
  }
  return removed;
}

/** One coordinator's table. */
export class EgressFirewall {
  private removed = false;

  private constructor(
    private readonly nft: string,
    readonly table: string,
  ) {}

  static async install(nft: string, policy: EgressPolicy): Promise<EgressFirewall> {
    const table = `${TABLE_PREFIX}${pidNamespace()}_${process.pid}_${processStartTime(process.pid) ?? 0}_${tablesInProcess++}`;
    await runNft(nft, ["-f", "-"], egressRuleset(table, policy));
    return new EgressFirewall(nft, table);
  }

  /** Deletes the table (once). */
  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    await runNft(this.nft, ["delete", "table", "inet", this.table]);
  }
}
