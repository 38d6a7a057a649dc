/** Most agent output one instance records in logs.db (docs/security.md). */
export const LOG_BUDGET_BYTES = 256 * 1024 * 1024;

/**
 * What the agent writes to logs.db (stdout, stderr, ctx.log) is budgeted per instance, so that a flood
 * cannot fill the host's disk: `charge` says whether a line is recorded, and "exhausted" once, the first
 * time one is not, so the platform can say why the rest goes missing.
 */
export class LogBudget {
  private used = 0;
  private exhausted = false;

  constructor(private readonly limitBytes = LOG_BUDGET_BYTES) {}

  charge(message: string, hasFields: boolean): "record" | "exhausted" | "drop" {
    this.used += message.length + (hasFields ? 64 : 0);
    if (this.used <= this.limitBytes) return "record";
    if (this.exhausted) return "drop";
    this.exhausted = true;
    return "exhausted";
  }

  get limitMiB(): number {
    return this.limitBytes / 1048576;
  }
}
