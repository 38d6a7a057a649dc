/**
 * An editor may send its first requests back to back, without waiting for `initialize`'s answer. The
 * adapter answers `initialize` first, then what came after it (here: a session/new that fails at once,
 * for want of a deployment). Raw newline-delimited JSON-RPC, so the order of the lines is what is tested.
 */
import { describe, expect, it } from "@jest/globals";
import * as acp from "@agentclientprotocol/sdk";
import { AcpAgent } from "../../services/acp/acp-agent.js";
import type { PodiumBackend } from "../../services/acp/podium-backend.js";
import { silentLogger } from "../../services/shared/logger.js";

/** No call reaches it in this test: every request is answered before any backend call. */
const unusedBackend = new Proxy({} as PodiumBackend, {
  get: (_target, name) => () => Promise.reject(new Error(`backend.${String(name)} was not expected`)),
});

async function exchange(lines: object[]): Promise<{ id?: number; result?: unknown; error?: { message: string } }[]> {
  const encoder = new TextEncoder();
  let closeInput: () => void = () => undefined;
  const input = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(lines.map((line) => JSON.stringify(line)).join("\n") + "\n"));
      closeInput = () => controller.close();
    },
  });
  const replies: { id?: number; result?: unknown; error?: { message: string } }[] = [];
  const decoder = new TextDecoder();
  let pending = "";
  const output = new WritableStream<Uint8Array>({
    write(chunk) {
      pending += decoder.decode(chunk, { stream: true });
      for (let end = pending.indexOf("\n"); end >= 0; end = pending.indexOf("\n")) {
        replies.push(JSON.parse(pending.slice(0, end)) as (typeof replies)[number]);
        pending = pending.slice(end + 1);
      }
    },
  });
  const agent = new AcpAgent({ backend: unusedBackend, logger: silentLogger });
  const served = agent.serve(acp.ndJsonStream(output, input));
  for (let i = 0; i < 200 && replies.length < lines.length; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  closeInput();
  await served;
  return replies;
}

describe("ACP request order", () => {
  it("answers initialize before a session/new sent right behind it", async () => {
    const replies = await exchange([
      { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: acp.PROTOCOL_VERSION, clientCapabilities: {} } },
      { jsonrpc: "2.0", id: 2, method: "session/new", params: { cwd: "/tmp/project", mcpServers: [] } },
    ]);
    expect(replies.map((reply) => reply.id)).toEqual([1, 2]);
    expect(replies[0]?.result).toMatchObject({ protocolVersion: acp.PROTOCOL_VERSION });
    expect(replies[1]?.error?.message).toMatch(/Invalid params/i);
  });
});
