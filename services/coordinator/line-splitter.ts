/**
 * Splits a byte stream into '\n'-terminated lines and hands over every complete line of a chunk
 * at once, so a burst of agent frames is handled (and persisted) as one batch. Partial lines are
 * kept as a list of buffers and joined once, so a 50 MB frame is not re-copied per chunk.
 */
export class LineSplitter {
  private pending: Buffer[] = [];

  constructor(private readonly onLines: (lines: string[]) => void) {}

  push(chunk: Buffer): void {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(10, start);
      if (newline === -1) break;
      const part = chunk.subarray(start, newline);
      if (this.pending.length > 0) {
        this.pending.push(part);
        lines.push(Buffer.concat(this.pending).toString("utf8"));
        this.pending = [];
      } else {
        lines.push(part.toString("utf8"));
      }
      start = newline + 1;
    }
    if (start < chunk.length) this.pending.push(chunk.subarray(start));
    if (lines.length > 0) this.onLines(lines);
  }

  /** The stream ended: a last line without '\n' still counts. */
  end(): void {
    if (this.pending.length === 0) return;
    const last = Buffer.concat(this.pending).toString("utf8");
    this.pending = [];
    this.onLines([last]);
  }
}
