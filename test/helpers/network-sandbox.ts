/**
 * For the network tests: a bubblewrap sandbox launched the way the coordinator does (as an
 * unprivileged outer uid, --unshare-user --unshare-net --disable-userns, --info-fd/--block-fd) that
 * runs a probe of connections from inside, and a "public" server at 198.51.100.7 (TEST-NET-2) that
 * lives in a test network namespace on this machine, reached over a veth pair, so no probe ever sends
 * a packet off the machine.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import type { Readable, Writable } from "node:stream";

export const PYTHON = "/usr/bin/python3";
export const PUBLIC_ADDRESS = "198.51.100.7";
export const PUBLIC_PORT = 8080;

export type Probe = { name: string; kind: "tcp"; host: string; port: number } | { name: string; kind: "dns" };

/** Connects to each target; prints {"interfaces": [...], name: "ok:<greeting>" | error class | "timeout"}. */
const PROBE = `
import json, socket, sys
out = {"interfaces": sorted(name for _, name in socket.if_nameindex())}
for p in json.loads(sys.argv[1]):
    try:
        if p["kind"] == "tcp":
            with socket.create_connection((p["host"], p["port"]), timeout=3) as s:
                s.settimeout(3)
                out[p["name"]] = "ok:" + s.recv(64).decode().strip()
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(1)
            s.sendto(bytes.fromhex("12340100000100000000000006706f6469756d07696e76616c69640000010001"), ("10.0.2.3", 53))
            out[p["name"]] = "reply" if s.recvfrom(512) else "none"
    except socket.timeout:
        out[p["name"]] = "timeout"
    except OSError as e:
        out[p["name"]] = type(e).__name__ if type(e) is not OSError else "errno %d" % e.errno
print(json.dumps(out))
`;

export interface ProbeSandbox {
  /** The sandbox's init (bwrap's child-pid): what `attach` is given. */
  pid: number;
  /** Lets the probe run (writes the byte bwrap waits for) and returns what it printed. */
  run(): Promise<Record<string, string | string[]>>;
  /** Kills the sandbox (its init too). */
  kill(): void;
}

export async function startProbeSandbox(uid: number, probes: Probe[]): Promise<ProbeSandbox> {
  const args = ["--die-with-parent", "--unshare-user", "--uid", "1000", "--gid", "1000", "--disable-userns", "--unshare-pid", "--unshare-net"];
  args.push("--cap-drop", "ALL", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--info-fd", "3", "--block-fd", "4");
  const child = spawn("bwrap", [...args, "--", PYTHON, "-c", PROBE, JSON.stringify(probes)], { cwd: "/", uid, gid: uid, stdio: ["ignore", "pipe", "pipe", "pipe", "pipe"] });
  let info = "";
  for await (const chunk of child.stdio[3] as Readable) {
    info += String(chunk);
    if (info.includes("}")) break;
  }
  const pid = (JSON.parse(info) as { "child-pid": number })["child-pid"];
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const closed = once(child, "close");
  return {
    pid,
    async run() {
      (child.stdio[4] as Writable).end("1");
      await closed;
      if (!stdout.trim()) throw new Error(`the probe printed nothing: ${stderr}`);
      return JSON.parse(stdout) as Record<string, string | string[]>;
    },
    kill() {
      // bwrap sets --die-with-parent's PDEATHSIG only after --block-fd: kill the blocked init itself too.
      process.kill(pid, "SIGKILL");
      child.kill("SIGKILL");
    },
  };
}

function ip(...args: string[]): void {
  const result = spawnSync("ip", args, { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`ip ${args.join(" ")}: ${result.stderr}`);
}

export interface PublicServer {
  close(): Promise<void>;
}

/** A TCP server answering "public" at 198.51.100.7:8080 in its own network namespace, routed from the host over a veth. */
export async function startPublicServer(): Promise<PublicServer> {
  const ns = `podiumtest${process.pid}`;
  const [outside, inside] = [`pdm${process.pid}a`, `pdm${process.pid}b`];
  ip("netns", "add", ns);
  let server: ChildProcess | undefined;
  const close = async () => {
    if (server && server.exitCode === null) {
      server.kill("SIGKILL");
      await once(server, "close");
    }
    spawnSync("ip", ["netns", "del", ns]); // takes the veth pair with it
  };
  try {
    ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", ns);
    ip("addr", "add", "198.51.100.1/24", "dev", outside);
    ip("link", "set", outside, "up");
    ip("-n", ns, "addr", "add", `${PUBLIC_ADDRESS}/24`, "dev", inside);
    ip("-n", ns, "link", "set", inside, "up");
    ip("-n", ns, "link", "set", "lo", "up");
    const script = `import socket\ns = socket.create_server(("${PUBLIC_ADDRESS}", ${PUBLIC_PORT}))\nprint("ready", flush=True)\nwhile True:\n    c, _ = s.accept()\n    c.sendall(b"public\\n")\n    c.close()\n`;
    server = spawn("ip", ["netns", "exec", ns, PYTHON, "-c", script], { stdio: ["ignore", "pipe", "inherit"] });
    const [line] = (await once(server.stdout as Readable, "data")) as [Buffer];
    if (!String(line).includes("ready")) throw new Error(`public server: ${String(line)}`);
  } catch (err) {
    await close();
    throw err;
  }
  return { close };
}
