/** The JSON the console reads from the public REST API (docs/api.md). */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface Instance {
  instance_id: string;
  agent_id: string;
  deployment_id: string;
  status: string;
  runtime: string;
  coordinator_id: string;
  created_at: string | null;
  ready_at: string | null;
  ended_at: string | null;
  pid: number | null;
  exit: { code: number | null; signal: string | null; reason: string } | null;
  last_seq: number;
  queued_messages: number;
}

export interface Deployment {
  deployment_id: string;
  name: string;
  version: string;
  runtime: string;
  entry: string;
  digest: string;
  size: number;
  created_at: string;
  registry: string;
  created?: boolean;
}

/** One frame of the `/connect` WebSocket. */
export interface StreamEvent {
  messageType: string;
  content?: JsonObject;
  agentId?: string;
  instanceId?: string;
  seq: number;
  turn?: number;
  timestamp: string;
}

export interface JsonPatchOp {
  op: string;
  path: string;
  from?: string;
  value?: Json;
}

export interface StatePatch {
  version: number;
  patch: JsonPatchOp[];
  timestamp: string;
}

export interface MessageRecord {
  seq: number;
  direction: string;
  message_type: string;
  content: Json;
  timestamp: string;
  turn: number | null;
}

export interface LogRecord {
  id: number;
  timestamp: string;
  level: string;
  source: string;
  message: string;
}

export interface FileEntry {
  path: string;
  name: string;
  type: string;
  size: number;
  modified_at: string | null;
  iteration: number;
}

export interface FileContent {
  path: string;
  content: string;
  encoding: string;
  size: number;
  iteration: number;
  hash: string;
}

export interface Iteration {
  iteration: number;
  timestamp: string | null;
  size: number;
  hash: string;
  change: string;
}

export interface Agent {
  agent_id: string;
  instance_id: string | null;
  coordinator_id: string;
  last_seq: number;
  state_version: number;
}
