/**
 * What a message sent while the agent is busy (a turn running or queued) does: "double-texting".
 * A deployment chooses with podium.json `on_busy`; a message may override it (`multitask_strategy`,
 * LangGraph's name). docs/runtime.md#when-the-agent-is-busy has the event sequence of each.
 *
 * - enqueue (default): queued behind what runs and waits, run in order;
 * - reject: refused with ABORTED (409); nothing is recorded, nothing runs;
 * - interrupt: the running turn is cancelled, queued turns are superseded, and this message runs next.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { MultitaskStrategy } from "../../gen/podium/v1/instance_service_pb.js";

export type BusyPolicy = "enqueue" | "reject" | "interrupt";
export const BUSY_POLICIES: readonly BusyPolicy[] = ["enqueue", "reject", "interrupt"];
export const DEFAULT_BUSY_POLICY: BusyPolicy = "enqueue";

const TO_PROTO: Record<BusyPolicy, MultitaskStrategy> = {
  enqueue: MultitaskStrategy.ENQUEUE,
  reject: MultitaskStrategy.REJECT,
  interrupt: MultitaskStrategy.INTERRUPT,
};

/** True for one of BUSY_POLICIES. */
export function isBusyPolicy(value: unknown): value is BusyPolicy {
  return typeof value === "string" && (BUSY_POLICIES as readonly string[]).includes(value);
}

/**
 * A client's `multitask_strategy` (JSON edges): undefined/null means the deployment's; anything else must
 * be a policy. LangGraph's "rollback" is named in the error, since users moving over will try it.
 */
export function parseMultitaskStrategy(value: unknown, field = "multitask_strategy"): BusyPolicy | undefined {
  if (value === undefined || value === null) return undefined;
  if (isBusyPolicy(value)) return value;
  const rollback = value === "rollback" ? ' ("rollback" is not supported: an agent\'s history is never rewritten; use "interrupt")' : "";
  throw new ConnectError(`${field} must be one of ${BUSY_POLICIES.map((p) => `"${p}"`).join(", ")}${rollback}`, Code.InvalidArgument);
}

export function busyPolicyToProto(policy: BusyPolicy | undefined): MultitaskStrategy {
  return policy ? TO_PROTO[policy] : MultitaskStrategy.UNSPECIFIED;
}

export function busyPolicyFromProto(strategy: MultitaskStrategy): BusyPolicy | undefined {
  switch (strategy) {
    case MultitaskStrategy.UNSPECIFIED:
      return undefined;
    case MultitaskStrategy.ENQUEUE:
      return "enqueue";
    case MultitaskStrategy.REJECT:
      return "reject";
    case MultitaskStrategy.INTERRUPT:
      return "interrupt";
    default:
      throw new ConnectError(`unknown multitask_strategy ${String(strategy)}`, Code.InvalidArgument);
  }
}
