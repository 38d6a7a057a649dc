/**
 * Egress for agents' network namespaces (docs/security.md). Policy per deployment: "none" (only
 * loopback: bwrap's --unshare-net alone), "host" (no network namespace) or "egress" (default): slirp4netns
 * gives the namespace a tap0 (10.0.2.100, gateway 10.0.2.2, DNS 10.0.2.3) and opens the agent's
 * connections from the host's network namespace as the agent's outer uid. Nothing is forwarded into the
 * namespace (agents cannot listen on host interfaces); --disable-host-loopback keeps 10.0.2.2 from the
 * host's 127.0.0.1; when the coordinator is root, egress-firewall.ts filters the rest.
 *
 * Joining the namespace: bwrap nests the sandbox's user namespace inside the one that owns its network
 * namespace (for --disable-userns and /dev), and only a member of the owner can setns into it. A few
 * lines of perl (perl-base is part of every Debian/Ubuntu system) ask the kernel for the owner
 * (ioctl NS_GET_USERNS on /proc/PID/ns/net) and exec slirp4netns with --userns-path pointing at it.
 * slirp4netns runs as the agent's uid, so it needs /dev/net/tun to be 0666 (udev's default).
 *
 * One launcher is kept spawned ahead: spawning one forks the coordinator (~4 ms of its event loop here),
 * which every start would otherwise wait for. A root coordinator's launcher starts as root and, once told
 * the sandbox's pid and the agent's uid, drops to that uid (checked within the agent range) and group
 * EGRESS_GID, with no other groups, before it touches the namespace; it checks /proc/self/status for it
 * (ids, groups, no effective, permitted or ambient capability).
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import type { Readable, Writable } from "node:stream";
import type { AgentNetworkPolicy } from "../../registry/bundle-manifest.js";
import { errorMessage } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { DEFAULT_AGENT_UID_RANGE, type UidRange } from "./agent-uids.js";
import { allowsHostLoopback, parseCidr, type EgressAllowRule } from "./egress-allow.js";
import { EgressFirewall, hostResolvers, removeDeadTables } from "./egress-firewall.js";
import { findSystemTool, processStartTime, SYSTEM_DIRS } from "./system-tools.js";

export { parseEgressAllow, type EgressAllowRule } from "./egress-allow.js";
export type NetworkPolicy = AgentNetworkPolicy;

export interface AgentNetworksOptions {
  coordinatorId: string;
  /** Agents' outer uids when the coordinator is root (the firewall matches them). */
  uidRange?: UidRange;
  /** Destinations agents may reach although they are blocked (`--agent-network-allow`). */
  allow?: EgressAllowRule[];
  /** More CIDRs agents must not reach, e.g. public addresses of Valkey, S3 or other coordinators. */
  block?: string[];
  /** slirp4netns binary (default: found in the system directories). */
  slirp4netns?: string;
  logger: Pick<Logger, "info" | "warn">;
}

export interface AgentNetworks {
  /** Whether egress can be attached at all. */
  readonly available: boolean;
  /** Whether the host firewall filters agents' egress. */
  readonly filtered: boolean;
  /** Why not available or not filtered. */
  readonly reason: string | undefined;
  /**
   * Gives the network namespace of process `pid` egress; resolves once its interface is configured.
   * `pid` may be a promise: slirp4netns's launcher starts at once and waits for it, so calling attach
   * before bwrap reports its child-pid hides the launcher's start-up behind bwrap's.
   */
  attach(params: AttachParams): Promise<AgentEgress>;
  /** Stops every egress, then removes the firewall table. */
  close(): Promise<void>;
}

export interface AttachParams {
  /** The sandbox's init (bwrap's child-pid), whose network namespace gets egress. */
  pid: number | Promise<number>;
  /** The agent's outer uid (required when root): slirp4netns runs as it, with group EGRESS_GID. */
  uid?: number;
  /** Ignored: slirp4netns's group is EGRESS_GID, which the firewall matches ("host" agents are not filtered). */
  gid?: number;
  signal?: AbortSignal;
}

export interface AgentEgress {
  /** slirp4netns's pid. */
  readonly pid: number;
  /** Stops slirp4netns (it also stops within a second of the namespace's process exiting). */
  close(): void;
}

/** Where system packages install binaries; the agent's uid must be able to run them (not /root/...). */
const READY_TIMEOUT_MS = 10_000;
/** slirp4netns's group when the coordinator is root: nogroup, which no agent process can have. */
export const EGRESS_GID = 65534;
const SWEEP_MS = 1000;

/**
 * argv: FIRST LAST GID COMMAND ARGS...; stdin: "PID UID" (UID only when root). As root it first becomes UID
 * (FIRST <= UID <= LAST) with group GID and no other group, then execs COMMAND
 * --userns-path=<owner of PID's netns> ARGS... ("{pid}" replaced).
 */
const USERNS_HELPER = `
use POSIX ();
my ($first, $last, $gid, @cmd) = @ARGV;
my $line = <STDIN>;
defined $line && $line =~ /^(\\d+)(?: (\\d+))?$/ or die "no sandbox pid\\n";
my ($pid, $uid) = ($1, $2);
if ($< == 0 || $> == 0) {
  defined $uid && $uid >= $first && $uid <= $last or die "uid outside the agent uid range\\n";
  $) = "$gid $gid"; # egid and the supplementary groups: only $gid
  POSIX::setgid($gid) or die "setgid: $!\\n";
  POSIX::setuid($uid) or die "setuid: $!\\n";
  open(my $self, "<", "/proc/self/status") or die "/proc/self/status: $!\\n";
  my $status = do { local $/; <$self> };
  $status =~ /^Uid:\\t$uid\\t$uid\\t$uid\\t$uid$/m && $status =~ /^Gid:\\t$gid\\t$gid\\t$gid\\t$gid$/m && $status =~ /^Groups:\\t$gid ?$/m
    && $status =~ /^CapEff:\\t0+$/m && $status =~ /^CapPrm:\\t0+$/m && $status =~ /^CapAmb:\\t0+$/m or die "could not become uid $uid\\n";
}
s/^\\{pid\\}$/$pid/ for @cmd;
# bwrap's child adds 127.0.0.1 to lo with NLM_F_EXCL; --configure brings lo up, which adds it too, so
# slirp4netns must wait for bwrap's address (fib_trie lists it) or bwrap fails with "loopback: ...".
for (my $tries = 0; ; $tries++) {
  open(my $fib, "<", "/proc/$pid/net/fib_trie") or die "the sandbox (pid $pid) is gone: $!\\n";
  my $routes = do { local $/; <$fib> };
  last if defined $routes && index($routes, "127.0.0.1") >= 0;
  $tries < 20000 or die "the loopback of pid $pid did not come up\\n";
  select(undef, undef, undef, 0.0005);
}
open(my $net, "<", "/proc/$pid/ns/net") or die "cannot open the network namespace of $pid: $!\\n";
my $fd = ioctl($net, 0xb701, 0); # NS_GET_USERNS
defined $fd or die "NS_GET_USERNS on $pid: $!\\n";
$fd = int($fd);
open(my $owner, "<&=", $fd) or die "$!\\n";
fcntl($owner, 2, 0) or die "F_SETFD: $!\\n"; # keep it open across exec
exec { $cmd[0] } $cmd[0], "--userns-path=/proc/self/fd/$fd", @cmd[1 .. $#cmd] or die "exec $cmd[0]: $!\\n";
`;

/** Why slirp4netns running as an agent's uid (others, when root) could not open /dev/net/tun. */
function tunProblem(root: boolean): string | undefined {
  let mode: number;
  try {
    mode = fs.statSync("/dev/net/tun").mode;
    if (!root) fs.accessSync("/dev/net/tun", fs.constants.R_OK | fs.constants.W_OK);
  } catch (err) {
    return `/dev/net/tun cannot be opened (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}; load the tun module)`;
  }
  if (root && (mode & 0o006) !== 0o006) {
    return `/dev/net/tun is mode ${(mode & 0o777).toString(8)}: slirp4netns runs as the agent's uid and needs it 0666 (udev's default; chmod 0666 /dev/net/tun)`;
  }
  return undefined;
}

class SlirpEgress implements AgentEgress {
  readonly pid: number;
  readonly exited: Promise<void>;
  /** The namespace's process and its start time, to notice it is gone even if its pid is reused. */
  target: { pid: number; started: string | undefined } | undefined;
  private stderr = "";

  /** The launcher could not be spawned (EAGAIN, EMFILE…): not running, and `close` may never come. */
  private spawnError: Error | undefined;

  constructor(private readonly child: ChildProcess) {
    this.pid = child.pid ?? -1;
    this.exited = new Promise((resolve) => {
      child.once("close", () => resolve());
      // A spare waits on a timer with nobody else listening: an unheard spawn error would end the process.
      child.once("error", (err) => {
        this.spawnError = err;
        resolve();
      });
    });
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (this.stderr = (this.stderr + chunk).slice(-2000)));
    // No stdio at all when the spawn failed at once (EMFILE): `error` follows.
    for (const stream of child.stdio ?? []) (stream as Readable | Writable | null)?.on("error", () => undefined);
  }

  /**
   * Hands the launcher the sandbox's pid once known (and the uid it becomes, when root); resolves when
   * slirp4netns reports the interface up.
   */
  start(sandboxPid: number | Promise<number>, uid: number | undefined, signal: AbortSignal | undefined): Promise<void> {
    const { child } = this;
    let pid: number | string = "?";
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(`its interface was not up after ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
      const onAbort = () => fail("aborted");
      const onExit = (code: number | null, killed: NodeJS.Signals | null) => fail(`it exited (${killed ?? `code ${code}`}) before its interface was up`);
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        child.off("exit", onExit);
      };
      const fail = (why: string) => {
        done();
        this.close();
        const detail = this.stderr
          .trim()
          .split("\n")
          .filter((line) => !/tapfd/.test(line))
          .slice(-3)
          .join("; ");
        reject(new Error(`slirp4netns for the namespace of pid ${pid}: ${why}${detail ? `: ${detail}` : ""}`));
      };
      (child.stdio[3] as Readable).once("data", () => {
        done();
        resolve();
      });
      child.once("exit", onExit);
      child.once("error", (err) => fail(err.message));
      signal?.addEventListener("abort", onAbort, { once: true });
      Promise.resolve(sandboxPid).then(
        (known) => {
          pid = known;
          this.target = { pid: known, started: processStartTime(known) };
          child.stdin?.end(uid === undefined ? `${known}\n` : `${known} ${uid}\n`);
        },
        (err: unknown) => fail(`no sandbox pid (${errorMessage(err)})`),
      );
    });
  }

  get running(): boolean {
    return this.spawnError === undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  close(): void {
    (this.child.stdio[4] as Writable | null)?.destroy(); // --exit-fd: slirp4netns exits when it closes
    if (!this.running) return;
    this.child.kill("SIGTERM");
    setTimeout(() => this.running && this.child.kill("SIGKILL"), 2000).unref();
  }
}

/** How soon after an attach the next launcher is spawned: after the start's own forks and its `init`. */
const SPARE_DELAY_MS = 30;

class SlirpNetworks implements AgentNetworks {
  private readonly egresses = new Set<SlirpEgress>();
  /** A launcher spawned ahead, waiting for its line (see the top of the file). */
  private spare: SlirpEgress | undefined;
  private spareTimer: NodeJS.Timeout | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    readonly available: boolean,
    readonly reason: string | undefined,
    private readonly launch: { perl: string; slirp: string; hostLoopback: boolean } | undefined,
    private readonly firewall: EgressFirewall | undefined,
    private readonly uidRange: UidRange,
    private readonly logger: AgentNetworksOptions["logger"],
  ) {}

  get filtered(): boolean {
    return this.firewall !== undefined;
  }

  async attach(params: AttachParams): Promise<AgentEgress> {
    const { uid, signal } = params;
    const root = process.getuid?.() === 0;
    if (!this.launch || this.closed) throw new Error(`agent network egress is not available: ${this.reason ?? "closed"}`);
    if (root && (uid === undefined || uid === 0)) throw new Error("egress for an agent needs the agent's outer uid when the coordinator is root");
    if (this.firewall && uid !== undefined && (uid < this.uidRange.first || uid > this.uidRange.last)) {
      throw new Error(`uid ${uid} is outside the agent uid range ${this.uidRange.first}-${this.uidRange.last} that the egress firewall filters`);
    }
    signal?.throwIfAborted();
    const spare = this.spare;
    this.spare = undefined;
    const egress = spare?.running ? spare : this.spawnLauncher(this.launch);
    if (spare && spare !== egress) spare.close();
    try {
      await egress.start(params.pid, root ? uid : undefined, signal);
    } finally {
      this.keepSpare();
    }
    return egress;
  }

  private spawnLauncher({ perl, slirp, hostLoopback }: { perl: string; slirp: string; hostLoopback: boolean }): SlirpEgress {
    const slirpArgs = ["--configure", "--mtu=65520", ...(hostLoopback ? [] : ["--disable-host-loopback"]), "--enable-seccomp", "--ready-fd=3", "--exit-fd=4", "{pid}", "tap0"];
    const range = [String(this.uidRange.first), String(this.uidRange.last), String(EGRESS_GID)];
    const child = spawn(perl, ["-e", USERNS_HELPER, ...range, slirp, ...slirpArgs], {
      cwd: "/",
      env: { PATH: SYSTEM_DIRS.join(":") },
      stdio: ["pipe", "ignore", "pipe", "pipe", "pipe"],
    });
    const egress = new SlirpEgress(child);
    this.egresses.add(egress);
    void egress.exited.then(() => this.forget(egress));
    this.sweeper ??= setInterval(() => this.sweep(), SWEEP_MS).unref();
    return egress;
  }

  /** Spawns the next launcher a little after an attach (not while the start it served still forks). */
  private keepSpare(): void {
    if (this.closed || this.spareTimer || this.spare?.running) return;
    this.spareTimer = setTimeout(() => {
      this.spareTimer = undefined;
      if (this.closed || !this.launch || this.spare?.running) return;
      try {
        this.spare = this.spawnLauncher(this.launch);
      } catch (err) {
        // Out of processes or memory: the next attach spawns its own launcher (and reports what fails).
        this.logger.warn(`could not spawn a spare slirp4netns launcher: ${errorMessage(err)}`);
      }
    }, SPARE_DELAY_MS);
    this.spareTimer.unref();
  }

  /** Stops slirp4netns of namespaces whose process is gone (the namespace lives on through the tap). */
  private sweep(): void {
    for (const egress of this.egresses) if (egress.target && processStartTime(egress.target.pid) !== egress.target.started) egress.close();
  }

  private forget(egress: SlirpEgress): void {
    this.egresses.delete(egress);
    if (this.spare === egress) this.spare = undefined;
    if (this.egresses.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.spareTimer);
    const exits = [...this.egresses].map((egress) => {
      egress.close();
      return egress.exited;
    });
    await Promise.all(exits);
    await this.firewall?.remove().catch((err: unknown) => this.logger.warn(`removing the agent egress table failed: ${errorMessage(err)}`));
  }
}

export async function createAgentNetworks(options: AgentNetworksOptions): Promise<AgentNetworks> {
  const { logger } = options;
  const root = process.getuid?.() === 0;
  const uidRange = options.uidRange ?? DEFAULT_AGENT_UID_RANGE;
  const allow = options.allow ?? [];
  const slirp = findSystemTool(options.slirp4netns ?? "slirp4netns");
  const perl = findSystemTool("perl");
  const unavailable = !slirp
    ? `${options.slirp4netns ?? "slirp4netns"} was not found in ${SYSTEM_DIRS.join(", ")} (install the slirp4netns package)`
    : !perl
      ? "perl was not found (install perl-base: it finds the user namespace that owns an agent's network namespace)"
      : tunProblem(root);
  if (!slirp || !perl || unavailable) return new SlirpNetworks(false, unavailable, undefined, undefined, uidRange, logger);

  const block = (options.block ?? []).map((cidr) => parseCidr(cidr).cidr);
  let firewall: EgressFirewall | undefined;
  let reason: string | undefined;
  const nft = findSystemTool("nft");
  if (!root) reason = "the coordinator is not root, so it cannot install the nftables filter for agents' egress";
  else if (!nft) reason = "nft was not found (install nftables)";
  else {
    try {
      for (const table of await removeDeadTables(nft)) logger.info(`removed the agent egress table ${table} of a coordinator that is gone`);
      let resolvers: string[] = [];
      try {
        resolvers = hostResolvers(fs.readFileSync("/etc/resolv.conf", "utf8"));
      } catch {
        logger.warn("cannot read /etc/resolv.conf: agents get no DNS");
      }
      const comment = `podium coordinator ${options.coordinatorId} (pid ${process.pid}): agent egress filter`;
      firewall = await EgressFirewall.install(nft, { uidRange, gid: EGRESS_GID, allow, block, resolvers, comment });
      logger.info(`agent egress is filtered by nftables table inet ${firewall.table}`, { uids: `${uidRange.first}-${uidRange.last}`, resolvers: resolvers.join(" ") });
    } catch (err) {
      reason = `installing the nftables filter for agents' egress failed: ${errorMessage(err)}`;
    }
  }
  const loopbackRules = allow.filter(allowsHostLoopback);
  if (loopbackRules.length > 0 && !firewall) {
    logger.warn(`--agent-network-allow ${loopbackRules.map((rule) => rule.cidr).join(", ")} ignored for the host's loopback: only the nftables filter can open single loopback ports`);
  }
  return new SlirpNetworks(true, reason, { perl, slirp, hostLoopback: loopbackRules.length > 0 && firewall !== undefined }, firewall, uidRange, logger);
}
