/**
 * A large state moved from the snapshot thread to the main thread without one long parse: the thread
 * cuts the state into pieces of at most ~64 KiB of JSON (`planStatePieces`), and the main thread parses
 * and places them a few at a time between event-loop turns (`assembleStatePieces`), so other agents keep
 * running while a 50 MiB state loads. Parsing the state in one `JSON.parse` stalled the coordinator for
 * ~1 s at 50 MiB; structured clone across threads costs about as much.
 *
 * A piece either opens a container at a path (`open`), or adds members to the container at its path
 * (`members`: the JSON text of an object whose keys are added in order, or of an array whose items are
 * appended). Containers are opened before their members and members arrive in order, so the assembled
 * state's key order (and so its JSON) equals the original's.
 */
import type { Json as JsonValue, JsonObject } from "../../shared/json.js";

/** Largest JSON text of one piece, in UTF-16 code units (a container larger than this is split). */
export const STATE_PIECE_CHARS = 64 * 1024;

export type StatePath = (string | number)[];

export type StatePiece = { op: "open"; path: StatePath; kind: "object" | "array" } | { op: "members"; path: StatePath; start: number; end: number };

/** A planned state: its pieces, whose member texts are byte ranges of `text` (UTF-8). */
export interface StatePlan {
  pieces: StatePiece[];
  text: Uint8Array;
}

type Container = JsonObject | JsonValue[];

function isContainer(value: JsonValue): value is Container {
  return typeof value === "object" && value !== null;
}

/** Cuts `state` into pieces (on the snapshot thread: this stringifies each large container's members). */
export function planStatePieces(state: JsonObject, maxChars = STATE_PIECE_CHARS): StatePlan {
  const pieces: StatePiece[] = [];
  const texts: string[] = [];
  let bytes = 0;
  const members = (path: StatePath, text: string) => {
    const length = Buffer.byteLength(text);
    pieces.push({ op: "members", path, start: bytes, end: bytes + length });
    texts.push(text);
    bytes += length;
  };
  const plan = (value: Container, path: StatePath) => {
    const array = Array.isArray(value);
    pieces.push({ op: "open", path, kind: array ? "array" : "object" });
    let group: string[] = [];
    let groupChars = 0;
    const flush = () => {
      if (group.length > 0) members(path, array ? `[${group.join(",")}]` : `{${group.join(",")}}`);
      group = [];
      groupChars = 0;
    };
    const entries: [string | number, JsonValue][] = array ? value.map((item, index) => [index, item]) : Object.entries(value);
    for (const [key, child] of entries) {
      const text = JSON.stringify(child);
      if (text.length > maxChars && isContainer(child)) {
        flush();
        plan(child, [...path, key]);
        continue;
      }
      const member = array ? text : `${JSON.stringify(key)}:${text}`;
      if (groupChars + member.length > maxChars) flush();
      group.push(member);
      groupChars += member.length + 1;
    }
    flush();
  };
  plan(state, []);
  return { pieces, text: new TextEncoder().encode(texts.join("")) }; // owns its buffer: it can move to another thread
}

/** Own data property, also for a key named `__proto__` (plain assignment would set the prototype). */
function put(target: Container, key: string | number, value: JsonValue): void {
  if (key === "__proto__") Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else (target as Record<string | number, JsonValue>)[key] = value;
}

function at(root: JsonObject, path: StatePath): Container {
  let node: JsonValue = root;
  for (const key of path) node = (node as Record<string | number, JsonValue>)[key] as JsonValue;
  return node as Container;
}

/**
 * Parses and places a plan's pieces, yielding to the event loop after each `sliceMs` of work. Returns the
 * state; throws on malformed pieces (a plan from another version of this code) and when `signal` aborts.
 */
export async function assembleStatePieces(plan: StatePlan, options: { sliceMs?: number; signal?: AbortSignal } = {}): Promise<JsonObject> {
  const sliceMs = options.sliceMs ?? 2;
  const text = Buffer.from(plan.text.buffer, plan.text.byteOffset, plan.text.byteLength);
  const root: JsonObject = {};
  let sliceStart = performance.now();
  for (const piece of plan.pieces) {
    if (performance.now() - sliceStart >= sliceMs) {
      await new Promise((resolve) => setImmediate(resolve));
      options.signal?.throwIfAborted();
      sliceStart = performance.now();
    }
    if (piece.op === "open") {
      if (piece.path.length === 0) continue; // the root, an object
      const parent = at(root, piece.path.slice(0, -1));
      const key = piece.path[piece.path.length - 1] as string | number;
      const child: Container = piece.kind === "array" ? [] : {};
      if (Array.isArray(parent)) parent.push(child);
      else put(parent, key, child);
      continue;
    }
    const target = at(root, piece.path);
    const parsed = JSON.parse(text.toString("utf8", piece.start, piece.end)) as Container;
    if (Array.isArray(target)) {
      for (const item of parsed as JsonValue[]) target.push(item);
    } else {
      for (const [key, value] of Object.entries(parsed)) put(target, key, value);
    }
  }
  return root;
}
