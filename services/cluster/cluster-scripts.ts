/**
 * Lua scripts for the few read-check-write steps that must not interleave with a coordinator's
 * heartbeat (a coordinator can come back between a gateway's read and its write).
 */
import type { Redis } from "ioredis";
import type { ClusterKeys } from "./cluster-keys.js";

/** KEYS[1] = coordinators set; ARGV[1] = heartbeat key prefix; ARGV[2..] = ids. SREMs ids whose heartbeat key is absent. */
const PRUNE_COORDINATORS = `
local n = 0
for i = 2, #ARGV do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 0 then n = n + redis.call('SREM', KEYS[1], ARGV[i]) end
end
return n`;

/**
 * KEYS[1] = heartbeat key; KEYS[2] = the coordinator's instance set; ARGV[1] = instance key prefix;
 * ARGV[2] = retention ms. Unless the coordinator is registered again, gives every mapping of its
 * instances (and the set) a TTL. Returns the number of instances, or -1 when it is registered.
 */
const EXPIRE_ORPHANS = `
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local ids = redis.call('SMEMBERS', KEYS[2])
for _, id in ipairs(ids) do redis.call('PEXPIRE', ARGV[1] .. id, ARGV[2]) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return #ids`;

export async function pruneCoordinators(redis: Redis, keys: ClusterKeys, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  return Number(await redis.eval(PRUNE_COORDINATORS, 1, keys.coordinators, keys.coordinator(""), ...ids));
}

export async function expireOrphans(redis: Redis, keys: ClusterKeys, coordinatorId: string, retentionMs: number): Promise<number> {
  return Number(await redis.eval(EXPIRE_ORPHANS, 2, keys.coordinator(coordinatorId), keys.coordinatorInstances(coordinatorId), keys.instance(""), retentionMs));
}
