/**
 * NDJSON frame I/O for the runner.
 * - FrameWriter writes whole lines to fd 3 with blocking fs.writeSync, looping over partial
 *   writes (and sleeping briefly on EAGAIN should the host hand us a non-blocking fd). Writes are
 *   synchronous, so frames go out complete and in call order; a 50 MB frame is one loop. A long
 *   synchronous run of frames is batched (below); `flush()` before the process exits.
 * - FdLineReader reads stdin lines; one huge `init` line and many small frames are both linear.
 */
import * as fs from "node:fs";

export class FrameChannelClosedError extends Error {
  override readonly name = "FrameChannelClosedError";
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Frames of one synchronous run written at once; after these, the run's frames are batched. */
const BURST_FRAMES = 8;
/** A batch is written once it holds this many characters, or its oldest frame waited this long. */
const BATCH_CHARS = 64 * 1024;
const BATCH_MS = 5;

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * Frames go out in call order. The first BURST_FRAMES of a synchronous run (what runs before the event loop
 * takes over again) are written at once, so a turn's few events reach the host without waiting for the rest
 * of the run; after that the run's frames are batched and written when BATCH_CHARS or BATCH_MS is reached or
 * the run ends (a microtask): a loop that sends thousands of events costs a write per 64 KiB instead of one
 * per event, and the host reads and stores them in larger batches (about 2x the events/s end to end).
 */
export class FrameWriter {
  private pending: string[] = [];
  private pendingChars = 0;
  private pendingSince = 0;
  /** Frames written in the current run. */
  private burst = 0;
  private scheduled = false;

  /** `sink`: where the lines go instead of `fd` (a warm runner's rehearsal, warm-up.ts). */
  constructor(
    private readonly fd: number,
    private readonly sink?: (bytes: Buffer) => void,
  ) {}

  /** Serializes `frame` and writes it as one line. */
  write(frame: object): void {
    this.writeJson(JSON.stringify(frame));
  }

  /** Writes pre-serialized JSON text (one object, no newline) as one line. */
  writeJson(json: string): void {
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
    if (this.burst < BURST_FRAMES) {
      this.burst++;
      this.writeText(json + "\n");
      return;
    }
    if (this.pending.length === 0) this.pendingSince = performance.now();
    this.pending.push(json);
    this.pendingChars += json.length + 1;
    if (this.pendingChars >= BATCH_CHARS || performance.now() - this.pendingSince >= BATCH_MS) this.writePending();
  }

  /** Writes what is batched, now (the run ended, or the process is about to exit). */
  flush(): void {
    this.scheduled = false;
    this.burst = 0;
    this.writePending();
  }

  private writePending(): void {
    if (this.pending.length === 0) return;
    const text = this.pending.join("\n") + "\n";
    this.pending = [];
    this.pendingChars = 0;
    this.writeText(text);
  }

  private writeText(text: string): void {
    const bytes = Buffer.from(text, "utf8");
    if (this.sink) return this.sink(bytes);
    let offset = 0;
    while (offset < bytes.length) {
      try {
        offset += fs.writeSync(this.fd, bytes, offset, bytes.length - offset);
      } catch (error) {
        const code = errorCode(error);
        if (code === "EAGAIN" || code === "EINTR") {
          Atomics.wait(sleeper, 0, 0, 2);
          continue;
        }
        if (code === "EPIPE" || code === "EBADF" || code === "ECONNRESET") throw new FrameChannelClosedError(`frame channel closed (${code})`);
        throw error;
      }
    }
  }
}

/** Splits a byte stream into '\n'-terminated lines without re-scanning earlier chunks. */
export class LineSplitter {
  private pending: Buffer[] = [];

  constructor(public onLine: (line: string) => void) {}

  push(data: Buffer): void {
    let start = 0;
    let newline = data.indexOf(10, start);
    while (newline !== -1) {
      const piece = data.subarray(start, newline);
      let line: string;
      if (this.pending.length === 0) line = piece.toString("utf8");
      else {
        this.pending.push(piece);
        line = Buffer.concat(this.pending).toString("utf8");
        this.pending = [];
      }
      if (line.length > 0) this.onLine(line);
      start = newline + 1;
      newline = data.indexOf(10, start);
    }
    if (start < data.length) this.pending.push(data.subarray(start));
  }

  /** Delivers a last unterminated line, if any. */
  end(): void {
    if (this.pending.length === 0) return;
    const line = Buffer.concat(this.pending).toString("utf8");
    this.pending = [];
    if (line.trim().length > 0) this.onLine(line);
  }
}

const MIN_READ = 64 * 1024;
const MAX_READ = 4 * 1024 * 1024;

/**
 * Reads lines from a file descriptor (stdin) with async fs.read, which runs off the event loop, so
 * handlers keep running while the reader waits. Cheaper to start under Bun than process.stdin.
 * Read sizes grow while reads come back full (a 50 MB init line), and shrink back afterwards.
 */
export class FdLineReader {
  private readonly splitter: LineSplitter;
  private closed = false;
  private size = MIN_READ;

  constructor(
    private readonly fd: number,
    onLine: (line: string) => void,
    private readonly onEnd: () => void,
  ) {
    this.splitter = new LineSplitter(onLine);
  }

  /**
   * Starts reading. With `firstLineSync`, the first line (the `init` frame) is read with blocking
   * readSync: the first async read costs a thread-pool hop of several ms at start-up.
   */
  start(firstLineSync = false): void {
    if (firstLineSync && !this.readFirstLineSync()) return;
    this.read();
  }

  /** Returns false when the input ended. */
  private readFirstLineSync(): boolean {
    let seen = false;
    const splitter = this.splitter;
    const original = splitter.onLine;
    splitter.onLine = (line) => {
      seen = true;
      original(line);
    };
    try {
      while (!seen && !this.closed) {
        const buffer = Buffer.allocUnsafe(this.size);
        let bytes: number;
        try {
          bytes = fs.readSync(this.fd, buffer, 0, buffer.length, null);
        } catch (error) {
          const code = errorCode(error);
          if (code === "EAGAIN" || code === "EINTR") return true; // non-blocking fd: go async
          throw error;
        }
        if (bytes === 0) {
          this.finish();
          return false;
        }
        this.size = bytes === buffer.length ? Math.min(this.size * 2, MAX_READ) : MIN_READ;
        splitter.push(bytes === buffer.length ? buffer : buffer.subarray(0, bytes));
      }
    } finally {
      splitter.onLine = original;
    }
    return !this.closed;
  }

  private finish(): void {
    this.closed = true;
    this.splitter.end();
    this.onEnd();
  }

  close(): void {
    this.closed = true;
  }

  private read(): void {
    if (this.closed) return;
    const buffer = Buffer.allocUnsafe(this.size);
    fs.read(this.fd, buffer, 0, buffer.length, null, (error, bytes) => {
      if (this.closed) return;
      if (error) {
        const code = errorCode(error);
        if (code === "EAGAIN" || code === "EINTR") {
          setTimeout(() => this.read(), 2);
          return;
        }
      }
      if (error || bytes === 0) {
        this.finish();
        return;
      }
      this.size = bytes === buffer.length ? Math.min(this.size * 2, MAX_READ) : MIN_READ;
      this.splitter.push(bytes === buffer.length ? buffer : buffer.subarray(0, bytes));
      this.read();
    });
  }
}
