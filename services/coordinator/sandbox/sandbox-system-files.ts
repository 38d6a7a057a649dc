/**
 * Files mounted over the host's inside every sandbox: a passwd and group that name the agent's user
 * (tools that look up their user keep working, and no host account is listed), and for network
 * "egress" a resolv.conf pointing at the namespace's DNS forwarder (slirp4netns answers on 10.0.2.3).
 */
import fs from "node:fs";
import path from "node:path";

export interface SandboxSystemFiles {
  /** [host file, path inside] for every sandbox. */
  common: [string, string][];
  /** Added for network "egress". */
  egress: [string, string][];
}

export const SLIRP_DNS = "10.0.2.3";

function write(file: string, text: string): string {
  const temp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temp, text, { mode: 0o644 });
  fs.renameSync(temp, file);
  return file;
}

export function sandboxSystemFiles(dir: string, uid: number): SandboxSystemFiles {
  fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
  fs.chmodSync(dir, 0o711);
  const passwd = write(
    path.join(dir, "passwd"),
    `root:x:0:0:root:/root:/usr/sbin/nologin\nagent:x:${uid}:${uid}:Podium agent:/home/agent:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
  );
  const group = write(path.join(dir, "group"), `root:x:0:\nagent:x:${uid}:\nnogroup:x:65534:\n`);
  const resolv = write(path.join(dir, "resolv.conf"), `nameserver ${SLIRP_DNS}\noptions edns0\n`);
  return {
    common: [
      [passwd, "/etc/passwd"],
      [group, "/etc/group"],
    ],
    egress: [[resolv, "/etc/resolv.conf"]],
  };
}
