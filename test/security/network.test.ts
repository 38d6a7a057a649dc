/**
 * Agents' network (issue 18, Network): real bubblewrap run as an unprivileged uid, real slirp4netns and
 * nftables. From inside the sandbox an agent reaches a "public" address but not the host's loopback
 * (directly or through slirp's 10.0.2.2), the host's interface address, private ranges or the metadata
 * address, unless allow-listed; "none" has only loopback. A test table behind Podium's drops whatever
 * agent traffic would leave this machine, and counts it, so a broken filter fails the test without
 * sending a packet anywhere.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import { createAgentNetworks, parseEgressAllow, type AgentNetworks } from "../../services/coordinator/sandbox/agent-network.js";
import { egressRuleset, hostResolvers, runNft } from "../../services/coordinator/sandbox/egress-firewall.js";
import { processStartTime } from "../../services/coordinator/sandbox/system-tools.js";
import { silentLogger } from "../../services/shared/logger.js";
import { PUBLIC_ADDRESS, PUBLIC_PORT, PYTHON, startProbeSandbox, startPublicServer, type Probe, type PublicServer } from "../helpers/network-sandbox.js";

const root = process.getuid?.() === 0;
const missing = ["bwrap", "slirp4netns", "nft", "perl", "ip"].filter((tool) => spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0);
const tunMode = fs.existsSync("/dev/net/tun") ? fs.statSync("/dev/net/tun").mode & 0o777 : 0;
const problem = !root
  ? "not root"
  : missing.length
    ? `missing ${missing.join(", ")}`
    : !fs.existsSync(PYTHON)
      ? `no ${PYTHON}`
      : tunMode !== 0o666
        ? `/dev/net/tun is ${tunMode.toString(8)}, not 0666 (scripts/system-deps.sh)`
        : undefined;
const withTools = problem ? describe.skip : describe;
if (problem) console.warn(`test/security/network.test.ts: real-network tests skipped: ${problem}`);

/** Outside the default agent range, so other coordinators' tables on this host never see these uids. */
const RANGE_A = { first: 619_000_000, last: 619_000_009 };
const RANGE_B = { first: 619_000_010, last: 619_000_019 };
const TEST_TABLE = `podiumtest_${process.pid}`;
const resolvers = hostResolvers(fs.existsSync("/etc/resolv.conf") ? fs.readFileSync("/etc/resolv.conf", "utf8") : "");
const hostAddress = Object.values(os.networkInterfaces())
  .flat()
  .find((a) => a && a.family === "IPv4" && !a.internal)?.address;

function listen(host: string, greeting: string): Promise<net.Server> {
  const server = net.createServer((socket) => socket.end(`${greeting}\n`));
  return new Promise((resolve) => server.listen(0, host, () => resolve(server)));
}
const portOf = (server: net.Server) => (server.address() as net.AddressInfo).port;

/** The pid of `unshare`'s command once it runs in its own network namespace. */
async function waitForNetns(pid: number): Promise<number> {
  const own = fs.readlinkSync("/proc/self/ns/net");
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
    const netns = (() => {
      try {
        return fs.readlinkSync(`/proc/${pid}/ns/net`);
      } catch {
        return own;
      }
    })();
    if (netns !== own && fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "sleep") return pid;
  }
  throw new Error(`pid ${pid} never got its own network namespace`);
}

async function counter(name: string): Promise<number> {
  const json = JSON.parse(await runNft("nft", ["-j", "list", "counter", "inet", TEST_TABLE, name])) as { nftables: { counter?: { packets: number } }[] };
  return json.nftables.find((entry) => entry.counter)?.counter?.packets ?? -1;
}
/** Tables of coordinators in this process (other processes' come and go meanwhile). */
const ownTables = async () => (await runNft("nft", ["list", "tables", "inet"])).match(new RegExp(`podium_\\d+_${process.pid}_\\d+_\\d+`, "g")) ?? [];

describe("--agent-network-allow", () => {
  it("parses CIDR[:port], IPv6 in brackets, and refuses bad input with a clear message", () => {
    expect(parseEgressAllow("10.0.0.0/8")).toEqual({ cidr: "10.0.0.0/8" });
    expect(parseEgressAllow("127.0.0.1:6379")).toEqual({ cidr: "127.0.0.1/32", port: 6379 });
    expect(parseEgressAllow("[fd00::/8]:443")).toEqual({ cidr: "fd00::/8", port: 443 });
    expect(parseEgressAllow("fe80::/10")).toEqual({ cidr: "fe80::/10" });
    expect(parseEgressAllow("[::ffff:10.0.0.0/104]")).toEqual({ cidr: "::ffff:10.0.0.0/104" });
    expect(() => parseEgressAllow("10.0.0.5/8")).toThrow(/did you mean 10\.0\.0\.0\/8/);
    expect(() => parseEgressAllow("10.0.0.0/33")).toThrow(/prefix length/);
    expect(() => parseEgressAllow("10.0.0.1:0")).toThrow(/port must be a number 1-65535/);
    expect(() => parseEgressAllow("example.com:443")).toThrow(/expected CIDR\[:port\]/);
    expect(() => parseEgressAllow("[10.0.0.1]:80")).toThrow(/IPv6 addresses only/);
  });

  it("puts the allow-list and DNS before the refusals, for the agent uid range only", () => {
    const rules = egressRuleset("podium_t", { uidRange: RANGE_A, gid: 65534, allow: [{ cidr: "127.0.0.1/32", port: 6379 }], block: ["203.0.113.9/32"], resolvers: ["127.0.0.53"], comment: 'x"y' });
    const at = (text: string) => rules.indexOf(text);
    expect(rules).toContain("meta skuid 619000000-619000009 meta skgid 65534 jump agent_egress");
    expect(at("ip daddr 127.0.0.1/32 meta l4proto { tcp, udp } th dport 6379 accept")).toBeLessThan(at("fib daddr type"));
    expect(at("ip daddr 127.0.0.53 meta l4proto { tcp, udp } th dport 53 accept")).toBeLessThan(at("fib daddr type"));
    expect(rules).toMatch(/ip daddr \{ [^}]*169\.254\.0\.0\/16[^}]*203\.0\.113\.9\/32 \} goto refuse/);
    expect(rules).toContain('comment "x_y"');
  });
});

withTools("agent network namespaces with real slirp4netns and nftables", () => {
  let publicServer: PublicServer;
  let loopback: net.Server;
  let allowed: net.Server;
  let onInterface: net.Server;
  const networks: AgentNetworks[] = [];

  beforeAll(async () => {
    loopback = await listen("127.0.0.1", "loopback");
    allowed = await listen("127.0.0.1", "allowed");
    onInterface = await listen(hostAddress ?? "127.0.0.1", "interface");
    publicServer = await startPublicServer();
    const range = `${RANGE_A.first}-${RANGE_B.last}`;
    await runNft(
      "nft",
      ["-f", "-"],
      [
        `table inet ${TEST_TABLE} {`,
        "  counter dns {}",
        "  counter leaked {}",
        `  chain output { type filter hook output priority 100; policy accept; meta skuid ${range} jump agents; }`,
        "  chain agents {",
        '    meta l4proto { tcp, udp } th dport 53 counter name "dns" drop', // even to a resolver on loopback: nothing goes upstream
        "    fib daddr type local accept",
        `    ip daddr ${PUBLIC_ADDRESS} accept`,
        '    counter name "leaked" drop',
        "  }",
        "}",
      ].join("\n"),
    );
  }, 30_000);

  afterAll(async () => {
    for (const n of networks) await n.close();
    await runNft("nft", ["delete", "table", "inet", TEST_TABLE]).catch(() => undefined);
    await publicServer?.close();
    for (const server of [loopback, allowed, onInterface]) server?.close();
  });

  async function create(range: typeof RANGE_A, allow: string[] = []): Promise<AgentNetworks> {
    const created = await createAgentNetworks({ coordinatorId: "network-test", uidRange: range, allow: allow.map(parseEgressAllow), logger: silentLogger });
    networks.push(created);
    expect({ available: created.available, filtered: created.filtered, reason: created.reason }).toEqual({ available: true, filtered: true, reason: undefined });
    return created;
  }

  it("egress: reaches a public address, not this host (loopback, 10.0.2.2, interface address), private ranges or metadata; DNS goes to the resolver", async () => {
    const agentNetworks = await create(RANGE_A);
    const tcp = (name: string, host: string, port: number): Probe => ({ name, kind: "tcp", host, port });
    const sandbox = await startProbeSandbox(RANGE_A.first, [
      tcp("public", PUBLIC_ADDRESS, PUBLIC_PORT),
      tcp("slirpHost", "10.0.2.2", portOf(loopback)),
      tcp("ownLoopback", "127.0.0.1", portOf(loopback)),
      tcp("interface", hostAddress ?? "127.0.0.1", portOf(onInterface)),
      tcp("metadata", "169.254.169.254", 80),
      tcp("private10", "10.1.2.3", 80),
      tcp("private192", "192.168.1.1", 80),
      tcp("cgnat", "100.64.0.1", 80),
      { name: "dns", kind: "dns" },
    ]);
    const dnsBefore = await counter("dns");
    const egress = await agentNetworks.attach({ pid: sandbox.pid, uid: RANGE_A.first, gid: RANGE_A.first });
    const out = await sandbox.run();
    egress.close();
    const refused = "ConnectionRefusedError"; // at once, by the nftables table
    expect(out).toEqual({
      interfaces: ["lo", "tap0"],
      public: "ok:public",
      slirpHost: "errno 101", // --disable-host-loopback: slirp4netns answers "network unreachable"
      ownLoopback: refused, // the namespace's own loopback: nothing listens there
      interface: refused,
      metadata: refused,
      private10: refused,
      private192: refused,
      cgnat: refused,
      dns: "timeout", // forwarded to the host's resolver, dropped by the test's safety net
    });
    expect(await counter("leaked")).toBe(0); // Podium's table refused them: nothing reached the safety net
    if (resolvers.length > 0) expect(await counter("dns")).toBeGreaterThan(dnsBefore);
    else console.warn("no nameserver in /etc/resolv.conf: DNS forwarding not checked");
  }, 30_000);

  it("an allow-listed loopback port is reachable at 10.0.2.2; other loopback ports and the host's address are not", async () => {
    const agentNetworks = await create(RANGE_B, [`127.0.0.1:${portOf(allowed)}`]);
    let sandboxPid: (pid: number) => void = () => undefined;
    // attach before the sandbox exists: its launcher waits for the pid
    const attaching = agentNetworks.attach({ pid: new Promise<number>((resolve) => (sandboxPid = resolve)), uid: RANGE_B.first, gid: RANGE_B.first });
    const sandbox = await startProbeSandbox(RANGE_B.first, [
      { name: "allowed", kind: "tcp", host: "10.0.2.2", port: portOf(allowed) },
      { name: "other", kind: "tcp", host: "10.0.2.2", port: portOf(loopback) },
      { name: "interface", kind: "tcp", host: hostAddress ?? "127.0.0.1", port: portOf(onInterface) },
    ]);
    sandboxPid(sandbox.pid);
    const egress = await attaching;
    const out = await sandbox.run();
    egress.close();
    expect(out).toMatchObject({ allowed: "ok:allowed", other: "ConnectionRefusedError", interface: "ConnectionRefusedError" });
  }, 30_000);

  it("slirp4netns waits for the namespace's own loopback address (bwrap adds it exclusively) before bringing lo up", async () => {
    const uid = RANGE_B.first + 3;
    const agentNetworks = await create({ first: uid, last: uid });
    // A namespace like bwrap's child before its loopback_setup: owned by the agent's uid, lo without an address.
    const holder = spawn("setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "unshare", "--user", "--map-root-user", "--net", "sleep", "60"], { stdio: "ignore" });
    try {
      const pid = await waitForNetns(holder.pid ?? -1);
      let attached = false;
      const attaching = agentNetworks.attach({ pid, uid, gid: uid }).then((egress) => ((attached = true), egress));
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(attached).toBe(false);
      // What bwrap does: RTM_NEWADDR with NLM_F_EXCL ("ip address add"), then lo up. EEXIST would fail it.
      const inside = (command: string) => spawnSync("nsenter", ["-t", String(pid), "--user", "--net", "sh", "-c", command], { encoding: "utf8" });
      const added = inside("ip address add 127.0.0.1/8 dev lo && ip link set lo up");
      expect({ status: added.status, stderr: added.stderr }).toEqual({ status: 0, stderr: "" });
      const egress = await attaching;
      expect(inside("ip -o link show").stdout).toMatch(/tap0/);
      egress.close();
    } finally {
      holder.kill("SIGKILL");
    }
  }, 30_000);

  it('agents with network "host" (an agent uid with its own gid, no namespace) are not filtered', async () => {
    const uid = RANGE_A.first + 7;
    await create({ first: uid, last: uid });
    const client = spawn(PYTHON, ["-c", `import socket; print(socket.create_connection(("127.0.0.1", ${portOf(loopback)}), timeout=3).recv(64).decode().strip())`], { uid, gid: uid, cwd: "/" });
    let out = "";
    client.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    await once(client, "close");
    expect(out.trim()).toBe("loopback");
  }, 30_000);

  it('"none": only loopback, nothing reachable', async () => {
    const sandbox = await startProbeSandbox(RANGE_A.first + 1, [{ name: "public", kind: "tcp", host: PUBLIC_ADDRESS, port: PUBLIC_PORT }]);
    const out = await sandbox.run();
    expect(out).toEqual({ interfaces: ["lo"], public: "errno 101" }); // ENETUNREACH
  }, 30_000);

  it("slirp4netns stops when the sandbox is gone, attach refuses uids outside the range, close() removes the table", async () => {
    const agentNetworks = await create({ first: RANGE_A.first + 5, last: RANGE_A.first + 5 });
    const tablesBefore = await ownTables();
    await expect(agentNetworks.attach({ pid: process.pid, uid: RANGE_B.first })).rejects.toThrow(/outside the agent uid range/);
    const sandbox = await startProbeSandbox(RANGE_A.first + 5, []);
    const egress = await agentNetworks.attach({ pid: sandbox.pid, uid: RANGE_A.first + 5 });
    sandbox.kill();
    const deadline = Date.now() + 5000;
    while (processStartTime(egress.pid) !== undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(processStartTime(egress.pid)).toBeUndefined();
    await agentNetworks.close();
    expect((await ownTables()).length).toBe(tablesBefore.length - 1);
  }, 30_000);

  it("slirp4netns runs as the agent's uid, in the egress group alone, without capabilities, also from the launcher spawned ahead (root until it is told the uid)", async () => {
    const first = RANGE_A.first + 6;
    const others = new Set<number>(); // spares of the networks of earlier tests, closed after all
    const status = (pid: number) => {
      const text = fs.readFileSync(`/proc/${pid}/status`, "utf8");
      const field = (name: string) => new RegExp(`^${name}:\\t(.*)$`, "m").exec(text)?.[1]?.trim();
      return { uid: field("Uid"), gid: field("Gid"), groups: field("Groups"), capEff: field("CapEff") };
    };
    /** This process's children that are launchers waiting for their line. */
    const spares = () =>
      fs
        .readdirSync("/proc")
        .filter((name) => /^\d+$/.test(name))
        .filter((pid) => {
          try {
            const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
            const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
            const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
            return ppid === process.pid && argv[0]?.endsWith("perl") === true && argv.some((arg) => arg.endsWith("slirp4netns"));
          } catch {
            return false;
          }
        })
        .map(Number)
        .filter((pid) => !others.has(pid));
    for (const pid of spares()) others.add(pid);
    const agentNetworks = await create({ first, last: first + 1 });
    for (const uid of [first, first + 1]) {
      const sandbox = await startProbeSandbox(uid, []);
      try {
        const egress = await agentNetworks.attach({ pid: sandbox.pid, uid });
        const slirp = status(egress.pid);
        egress.close();
        expect(slirp).toEqual({ uid: `${uid}\t${uid}\t${uid}\t${uid}`, gid: "65534\t65534\t65534\t65534", groups: "65534", capEff: "0000000000000000" });
        // The next launcher is spawned a little later, as root, and waits.
        const deadline = Date.now() + 5000;
        while (spares().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        const [spare] = spares();
        expect(spare).toBeDefined();
        expect(status(spare ?? 0).uid).toBe("0\t0\t0\t0");
      } finally {
        sandbox.kill();
      }
    }
    await agentNetworks.close();
    expect(spares()).toEqual([]);
  }, 30_000);

  it("a new coordinator removes the tables of coordinators that are gone, and keeps live ones", async () => {
    const pidns = fs.statSync("/proc/self/ns/pid").ino;
    const gone = spawnSync("true").pid; // exited: its pid names a dead coordinator
    const dead = `podium_${pidns}_${gone}_1_0`;
    const live = `podium_${pidns}_${process.pid}_${processStartTime(process.pid)}_99`;
    for (const table of [dead, live]) await runNft("nft", ["add", "table", "inet", table]);
    await create(RANGE_A);
    const tables = (await runNft("nft", ["list", "tables", "inet"])).match(/podium_\d+_\d+_\d+_\d+/g) ?? [];
    await runNft("nft", ["delete", "table", "inet", live]);
    expect(tables).toContain(live);
    expect(tables).not.toContain(dead);
  });

  it("reports slirp4netns missing instead of failing later", async () => {
    const none = await createAgentNetworks({ coordinatorId: "t", slirp4netns: "/nonexistent/slirp4netns", logger: silentLogger });
    expect({ available: none.available, filtered: none.filtered }).toEqual({ available: false, filtered: false });
    expect(none.reason).toMatch(/slirp4netns was not found/);
    await expect(none.attach({ pid: process.pid, uid: RANGE_A.first })).rejects.toThrow(/not available/);
  });
});
