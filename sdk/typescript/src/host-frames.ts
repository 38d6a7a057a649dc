/**
 * Host -> agent frames. Their types and decoder are generated from the protocol schema (protocol.gen.ts);
 * this parses one line and checks the protocol version of `init` before anything else, so a host of another
 * version gets a `fatal` naming both versions instead of whatever field its `init` no longer matches.
 */
import { AGENT_PROTOCOL_VERSION, decodeHostToAgent, FrameError, type HostToAgent, type JsonObject } from "./protocol.gen.js";

export type { InitFrame } from "./protocol.gen.js";
export type HostFrame = HostToAgent;

/** `init` says another protocol version than this SDK speaks: the runner cannot run the agent. */
export class ProtocolMismatchError extends Error {
  override readonly name = "ProtocolMismatchError";
  constructor(
    readonly received: unknown,
    sdk: string,
  ) {
    const version = received === undefined ? "none" : (JSON.stringify(received) ?? String(received)).slice(0, 40);
    super(`agent protocol mismatch: the host speaks version ${version}, ${sdk} speaks version ${AGENT_PROTOCOL_VERSION}; run the agent with the SDK of its coordinator's version`);
  }
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Parses one host line. Throws FrameError with a reason on anything malformed, ProtocolMismatchError for an
 * `init` of another version (`sdk` names this SDK in its message).
 */
export function parseHostFrame(line: string, sdk: string): HostToAgent {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new FrameError("frame is not valid JSON");
  }
  if (!isObject(value) || typeof value.type !== "string") throw new FrameError("frame has no type");
  if (value.type === "init" && value.protocol !== AGENT_PROTOCOL_VERSION) throw new ProtocolMismatchError(value.protocol, sdk);
  const frame = decodeHostToAgent(value);
  if (frame.type === "init" && !frame.workspace) frame.workspace = process.cwd();
  return frame;
}
