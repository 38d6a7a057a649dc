/**
 * The instances a coordinator holds, on disk (`<dataDir>/instances.db`, mode 0600: it holds their
 * environment and secrets), so that a restarted coordinator gets them back: hibernated, with the same
 * instance ids, their schedules armed, woken by a message or a due schedule. A row is written when an
 * instance is created (or resumed with a new environment) and deleted when it ends. What each agent had
 * left unfinished is settled when it wakes (docs/runtime.md#delivery).
 */
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import type { AgentRuntime } from "./runtime-commands.js";
import { closeDatabase, openDatabase, PAGE_CACHE_KIB, type SqliteDatabase } from "./store/sqlite.js";
import type { Migration } from "./store/migrations.js";
import { errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";

export interface RegisteredInstance {
  instanceId: string;
  agentId: string;
  deploymentId: string;
  runtime: AgentRuntime;
  /** environment + secrets, as the create gave them. */
  agentEnv: Record<string, string>;
  createdAt: number;
}

const MIGRATIONS: readonly Migration[] = [
  (db) =>
    db.exec(`
      CREATE TABLE instances (
        instance_id   TEXT    PRIMARY KEY,
        agent_id      TEXT    NOT NULL UNIQUE,
        deployment_id TEXT    NOT NULL,
        runtime       TEXT    NOT NULL,
        agent_env     TEXT    NOT NULL,
        created_at    INTEGER NOT NULL
      ) STRICT;
    `),
];

type Row = [string, string, string, AgentRuntime, string, number];

export class InstanceRegistry {
  private readonly upsert;
  private readonly remove;
  private readonly all;

  private constructor(private readonly db: SqliteDatabase) {
    this.upsert = db.prepare<Row>("INSERT OR REPLACE INTO instances (instance_id, agent_id, deployment_id, runtime, agent_env, created_at) VALUES (?, ?, ?, ?, ?, ?)");
    this.remove = db.prepare<[string]>("DELETE FROM instances WHERE instance_id = ?");
    this.all = db.prepare<[], Row>("SELECT instance_id, agent_id, deployment_id, runtime, agent_env, created_at FROM instances ORDER BY created_at").raw();
  }

  static open(dataDir: string): InstanceRegistry {
    const file = path.join(dataDir, "instances.db");
    fs.closeSync(fs.openSync(file, "a", 0o600));
    fs.chmodSync(file, 0o600);
    const db = openDatabase(file, MIGRATIONS, -PAGE_CACHE_KIB); // one per coordinator: the 2 MiB cache as before
    db.pragma("secure_delete = ON"); // an ended instance's secrets do not linger in free pages
    return new InstanceRegistry(db);
  }

  put(instance: RegisteredInstance): void {
    this.upsert.run(instance.instanceId, instance.agentId, instance.deploymentId, instance.runtime, JSON.stringify(instance.agentEnv), instance.createdAt);
  }

  delete(instanceId: string): void {
    this.remove.run(instanceId);
  }

  list(): RegisteredInstance[] {
    return this.all.all().map(([instanceId, agentId, deploymentId, runtime, env, createdAt]) => ({
      instanceId,
      agentId,
      deploymentId,
      runtime,
      agentEnv: JSON.parse(env) as Record<string, string>,
      createdAt,
    }));
  }

  close(): void {
    closeDatabase(this.db);
  }
}

/**
 * Where an agent's history ends and when its soonest schedule is due, read from its messages.db without
 * opening its stores (cheap at a coordinator's start). Zeros and undefined for an agent with no database.
 */
export function readAgentMarks(agentDir: string): { lastSeq: number; nextDueAt: number | undefined } {
  const file = path.join(agentDir, "messages.db");
  if (!fs.existsSync(file)) return { lastSeq: 0, nextDueAt: undefined };
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const lastSeq = (db.prepare("SELECT max(seq) FROM messages").pluck().get() as number | null) ?? 0;
    let nextDueAt: number | undefined;
    try {
      nextDueAt = (db.prepare("SELECT min(due_at) FROM schedules").pluck().get() as number | null) ?? undefined;
    } catch {
      nextDueAt = undefined; // a database from before schedules: it has none
    }
    return { lastSeq, nextDueAt };
  } finally {
    db.close();
  }
}

/**
 * Restores each registered instance with `restore` (given where its agent's history ends and its soonest
 * schedule); one that cannot be restored is logged and dropped from the registry.
 */
export function restoreInstances(
  registry: InstanceRegistry,
  agentDir: (agentId: string) => string,
  logger: Logger,
  restore: (row: RegisteredInstance, marks: ReturnType<typeof readAgentMarks>) => void,
): void {
  for (const row of registry.list()) {
    try {
      restore(row, readAgentMarks(agentDir(row.agentId)));
    } catch (err) {
      logger.warn(`cannot restore instance ${row.instanceId}: ${errorMessage(err)}`, { instance_id: row.instanceId, agent_id: row.agentId });
      registry.delete(row.instanceId);
    }
  }
}
