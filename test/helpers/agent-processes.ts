/**
 * Agent processes as the host sees them: every process whose environment names a Podium instance
 * (`PODIUM_INSTANCE_ID`, set on the sandbox and the runner). Tests use it to find agents that run although
 * the platform does not list them (orphans), whatever their parent is (a killed coordinator's agents are
 * reparented). Filtered by data dir, so tests running side by side on one host do not see each other's.
 */
import fs from "node:fs";
import path from "node:path";
import { isWarmRunner } from "../../services/coordinator/warm-runner.js";

export interface AgentProcessInfo {
  pid: number;
  ppid: number;
  instanceId: string;
  agentId: string;
  workspace: string;
}

function environ(pid: number): Map<string, string> | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/environ`, "utf8");
  } catch {
    return undefined; // gone, or not readable
  }
  const env = new Map<string, string>();
  for (const entry of text.split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return env;
}

function parentOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[0] === "Z" ? -1 : Number(fields[1]);
  } catch {
    return -1;
  }
}

/**
 * Live (not zombie) processes of Podium agents whose workspace is under one of `dataDirs`. Unclaimed warm
 * runners (listed in the data dir's warm-runner register) are not agents yet and are left out.
 */
export function agentProcesses(dataDirs: string[]): AgentProcessInfo[] {
  const found: AgentProcessInfo[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const env = environ(pid);
    const instanceId = env?.get("PODIUM_INSTANCE_ID");
    const workspace = env?.get("PODIUM_WORKSPACE") ?? "";
    if (!env || !instanceId || !dataDirs.some((dir) => workspace.startsWith(dir + "/"))) continue;
    const dataDir = dataDirs.find((dir) => workspace.startsWith(dir + "/")) ?? "";
    if (isWarmRunner(dataDir, path.basename(path.dirname(workspace)))) continue;
    const ppid = parentOf(pid);
    if (ppid < 0) continue;
    found.push({ pid, ppid, instanceId, agentId: env.get("PODIUM_AGENT_ID") ?? "", workspace });
  }
  return found;
}

/** Instance ids that have at least one live process under `dataDirs`. */
export function runningInstanceIds(dataDirs: string[]): Set<string> {
  return new Set(agentProcesses(dataDirs).map((p) => p.instanceId));
}
