/**
 * What an instance's start went through (its steps with their times, the agent's last stderr lines), for
 * the error of a start that never became ready and for the log.
 */
const MAX_STEPS = 8;
const STDERR_LINES = 8;

export class StartProgress {
  private readonly began = Date.now();
  private readonly steps: string[] = [];
  private readonly stderr: string[] = [];

  step(what: string): void {
    if (this.steps.length < MAX_STEPS) this.steps.push(`${what} after ${Date.now() - this.began} ms`);
  }

  stderrLine(line: string): void {
    this.stderr.push(line);
    if (this.stderr.length > STDERR_LINES) this.stderr.shift();
  }

  /** The last stderr lines, newline-joined, at most `maxChars` (the end kept). */
  stderrTail(maxChars: number, separator = "\n"): string {
    return this.stderr.join(separator).slice(-maxChars);
  }

  /** `<what> (<steps>; the agent used N ms of CPU)` and the same with stderr, for the log. */
  timedOut(timeoutMs: number, cpuMicros: number | undefined): { message: string; logged: string } {
    const progress = this.steps.length > 0 ? this.steps.join(", ") : "the sandbox never started";
    const used = cpuMicros === undefined ? "" : `; the agent used ${Math.round(cpuMicros / 1000)} ms of CPU`;
    const message = `agent did not become ready within ${timeoutMs} ms (${progress}${used})`;
    const tail = this.stderrTail(500, " | ");
    return { message, logged: tail ? `${message}; stderr: ${tail}` : message };
  }
}
