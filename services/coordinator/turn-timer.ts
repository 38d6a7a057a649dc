/**
 * The maximum duration of a turn (`max_turn_ms`): past it the turn is cancelled, and if it has not ended
 * `turn_kill_grace_ms` later the agent's process is killed. One per running turn; cleared when it ends.
 */
export class TurnTimer {
  private timer: NodeJS.Timeout | undefined;

  constructor(maxTurnMs: number, killGraceMs: number, actions: { cancel(): void; kill(): void }) {
    this.timer = setTimeout(() => {
      actions.cancel();
      this.timer = setTimeout(() => actions.kill(), killGraceMs);
    }, maxTurnMs);
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
