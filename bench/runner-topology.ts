/**
 * The floor of Podium's streaming path, for the benchmarks' ratios: a WebSocket server that writes each
 * client message as one line to a bare Bun runner's stdin and sends every line the runner prints back as
 * one WebSocket frame. Same topology as `podium dev` (client -> server -> runner process over pipes ->
 * back) without persistence, isolation, translation or the gateway -> coordinator hop.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { WebSocketServer } from "ws";
import { resolveRuntimeCommands } from "../services/coordinator/runtime-commands.js";

/** Answers {n} with n stream_update lines and a stream_end line, like the flood-ts agent. */
const RUNNER = `
let buffered = "";
for await (const chunk of Bun.stdin.stream()) {
  buffered += new TextDecoder().decode(chunk);
  for (let end = buffered.indexOf("\\n"); end >= 0; end = buffered.indexOf("\\n")) {
    const message = JSON.parse(buffered.slice(0, end));
    buffered = buffered.slice(end + 1);
    const n = message.n ?? 1;
    let out = "";
    for (let i = 0; i < n; i++) {
      out += JSON.stringify({ messageType: "stream_update", content: { text: "x", i }, seq: i }) + "\\n";
      if (out.length > 65536) { process.stdout.write(out); out = ""; }
    }
    process.stdout.write(out + JSON.stringify({ messageType: "stream_end" }) + "\\n");
  }
}
`;

export interface RunnerTopology {
  url: string;
  close(): Promise<void>;
}

export async function startRunnerTopology(): Promise<RunnerTopology> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-bench-topology-"));
  const script = path.join(dir, "runner.ts");
  fs.writeFileSync(script, RUNNER);
  const server = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  const children = new Set<ReturnType<typeof spawn>>();
  server.on("connection", (socket) => {
    const child = spawn(resolveRuntimeCommands().bun, [script], { stdio: ["pipe", "pipe", "inherit"] });
    children.add(child);
    let pending = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      pending += chunk;
      let start = 0;
      for (let end = pending.indexOf("\n"); end >= 0; end = pending.indexOf("\n", start)) {
        socket.send(pending.slice(start, end));
        start = end + 1;
      }
      pending = pending.slice(start);
    });
    socket.on("message", (data) => child.stdin.write(`${data.toString()}\n`));
    socket.on("close", () => child.kill());
  });
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `ws://127.0.0.1:${port}`,
    async close() {
      for (const child of children) child.kill();
      await new Promise((resolve) => server.close(resolve));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
