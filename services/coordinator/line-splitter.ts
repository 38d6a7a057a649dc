/**
 * Splits a byte stream into '\n'-terminated lines and hands over every complete line of a chunk
 * at once, so a burst of agent frames is handled (and persisted) as one batch. Partial lines are
 * kept as a list of buffers and joined once, so a 50 MB frame is not re-copied per chunk.
 * A line longer than `maxLine` bytes is cut there (the rest is dropped up to its '\n', marked
 * " …[truncated]") and `onOverflow` is told: an agent cannot grow the coordinator's memory with a line
 * that never ends.
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private overflowed = false;

  constructor(
    private readonly onLines: (lines: string[]) => void,
    private readonly maxLine = Number.POSITIVE_INFINITY,
    private readonly onOverflow?: () => void,
  ) {}

  push(chunk: Buffer): void {
    let lines: string[] = [];
    let start = 0;
    const last = chunk.lastIndexOf(10);
    if (last !== -1 && (this.pending.length > 0 || this.overflowed)) {
      // The first line ends one kept from earlier chunks.
      const newline = chunk.indexOf(10);
      this.add(chunk.subarray(0, newline));
      lines.push(this.take());
      start = newline + 1;
    }
    if (last >= start && last - start <= this.maxLine) {
      // No line in between can be too long: decode them at once and split the text (a '\n' byte is never
      // inside a UTF-8 sequence, so this is what decoding each line gives).
      const split = chunk.toString("utf8", start, last).split("\n");
      if (lines.length === 0) lines = split;
      else for (const line of split) lines.push(line);
      start = last + 1;
    }
    for (;;) {
      const newline = chunk.indexOf(10, start);
      if (newline === -1) break;
      const part = chunk.subarray(start, newline);
      if (this.pending.length === 0 && !this.overflowed && part.length <= this.maxLine) {
        lines.push(part.toString("utf8"));
      } else {
        this.add(part);
        lines.push(this.take());
      }
      start = newline + 1;
    }
    if (start < chunk.length) this.add(chunk.subarray(start));
    if (lines.length > 0) this.onLines(lines);
  }

  /** The stream ended: a last line without '\n' still counts. */
  end(): void {
    if (this.pending.length === 0 && !this.overflowed) return;
    this.onLines([this.take()]);
  }

  private add(part: Buffer): void {
    if (this.overflowed) return;
    const room = this.maxLine - this.pendingBytes;
    if (part.length <= room) {
      this.pending.push(part);
      this.pendingBytes += part.length;
      return;
    }
    if (room > 0) this.pending.push(part.subarray(0, room));
    this.pendingBytes = this.maxLine;
    this.overflowed = true;
    this.onOverflow?.();
  }

  private take(): string {
    const text = Buffer.concat(this.pending).toString("utf8") + (this.overflowed ? " …[truncated]" : "");
    this.pending = [];
    this.pendingBytes = 0;
    this.overflowed = false;
    return text;
  }
}
