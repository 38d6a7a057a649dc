/**
 * What the sandbox modules ask of the host: where a system program is (only system directories, so an
 * agent's uid can run what the coordinator finds, never something under /root), and which process a
 * pid names (a pid and its start time name one process for good, across pid reuse).
 */
import fs from "node:fs";
import path from "node:path";

/** Where system packages install programs. */
export const SYSTEM_DIRS: readonly string[] = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** The executable file `name` in `dirs` (a name with a '/' is checked as given), or undefined. */
export function findSystemTool(name: string, dirs: readonly string[] = SYSTEM_DIRS): string | undefined {
  const candidates = name.includes("/") ? [name] : dirs.map((dir) => path.join(dir, name));
  return candidates.find((file) => {
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return fs.statSync(file).isFile();
    } catch {
      return false;
    }
  });
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); undefined when gone or a zombie. */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[0] === "Z" || fields[0] === "X" ? undefined : fields[19];
}
