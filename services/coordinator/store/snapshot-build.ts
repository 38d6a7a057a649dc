/**
 * Rebuilding an agent's state from what state.db holds (a snapshot and the patches after it), shared by
 * StateStore's load and by the snapshot thread, which builds a new snapshot from the same rows without
 * touching the coordinator's live copy of the state (snapshot-thread.ts).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { JsonObject, JsonPatchOp } from "../../shared/json.js";
import { isJsonObject } from "../../shared/json.js";
import { applyAtomically } from "./apply-atomically.js";
import { decodeSnapshot, encodeSnapshot, type SnapshotEncoding } from "./snapshot-codec.js";
import { planStatePieces, type StatePlan } from "./state-pieces.js";

/** A stored snapshot's bytes: its chunks in order (one part for a snapshot stored inline). */
export interface StoredSnapshot {
  version: number;
  encoding: string;
  parts: Uint8Array[];
}

/** [version, ops JSON text] of one stored patch. */
export type PatchText = [version: number, ops: string];

export function decodeState(snapshot: StoredSnapshot): JsonObject {
  const buffers = snapshot.parts.map((part) => Buffer.from(part.buffer, part.byteOffset, part.byteLength));
  const parsed: unknown = JSON.parse(decodeSnapshot(snapshot.encoding, buffers.length === 1 ? (buffers[0] as Buffer) : Buffer.concat(buffers)));
  if (!isJsonObject(parsed)) throw new ConnectError(`snapshot ${snapshot.version} is not a JSON object`, Code.DataLoss);
  return parsed;
}

/** Applies stored patches after `version`, which must follow it without a gap. */
export function replayPatches(state: JsonObject, version: number, patches: Iterable<PatchText>): { state: JsonObject; version: number; patchBytes: number } {
  let patchBytes = 0;
  for (const [next, ops] of patches) {
    if (next !== version + 1) throw new ConnectError(`state patches jump from version ${version} to ${next}`, Code.DataLoss);
    try {
      // As stored: limits that came later must not make a stored patch unreadable.
      state = applyAtomically(state, JSON.parse(ops) as JsonPatchOp[], { depth: false }).state;
    } catch (err) {
      throw new ConnectError(`stored state patch ${next} does not apply: ${String(err)}`, Code.DataLoss, undefined, undefined, err);
    }
    version = next;
    patchBytes += Buffer.byteLength(ops);
  }
  return { state, version, patchBytes };
}

export interface SnapshotJob {
  /** The newest stored snapshot, if any. */
  base: StoredSnapshot | undefined;
  /** The patches after it, up to the version to snapshot. */
  patches: PatchText[];
  compress: boolean;
}

export interface BuiltSnapshot {
  version: number;
  encoding: SnapshotEncoding;
  data: Uint8Array;
  rawBytes: number;
}

/** The snapshot of the version the job's last patch makes (decode, replay, serialize, compress). */
export function buildSnapshot(job: SnapshotJob): BuiltSnapshot {
  const replayed = replayPatches(job.base ? decodeState(job.base) : {}, job.base?.version ?? 0, job.patches);
  const encoded = encodeSnapshot(JSON.stringify(replayed.state), job.compress);
  return { version: replayed.version, encoding: encoded.encoding, data: encoded.data, rawBytes: encoded.rawBytes };
}

/** What loading a large state needs: the newest snapshot and every patch after it. */
export interface LoadJob {
  base: StoredSnapshot | undefined;
  patches: PatchText[];
  /** Also serialize the state (for the agent's `init`). */
  json: boolean;
}

export interface LoadedState {
  version: number;
  /** Bytes of the patches after the snapshot (the snapshot policy counts them). */
  patchBytes: number;
  /** The state cut into pieces for the main thread to assemble between event-loop turns. */
  plan: StatePlan;
  /** The state's JSON (UTF-8), as the agent's `init` carries it; empty unless the job asked for it. */
  json: Uint8Array;
}

/** The current state of a large agent (decode, replay), planned in pieces and serialized for `init`. */
export function loadState(job: LoadJob): LoadedState {
  const replayed = replayPatches(job.base ? decodeState(job.base) : {}, job.base?.version ?? 0, job.patches);
  const json = job.json ? new TextEncoder().encode(JSON.stringify(replayed.state)) : new Uint8Array(0);
  return { version: replayed.version, patchBytes: replayed.patchBytes, plan: planStatePieces(replayed.state), json };
}
