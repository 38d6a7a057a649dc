/**
 * Volume images formatted ahead of the agents that take them (docs/security.md "Disk"). A new agent's volume
 * used to begin with `mkfs.ext4` on the path of its create: 6-13 ms here plus a fork of the coordinator. Once a
 * new volume was asked for, a few images of the quota last asked for are formatted in the background, one at
 * a time, in a directory only root reaches (`<dataDir>/sandbox/spare-images`, on the agents' filesystem), and
 * the next new volume of that size takes one by a link to its `volume.img` (never over an existing file).
 *
 * A spare holds what `mkfs.ext4 -d` of a new volume holds (empty workspace, home and tmp), is handed out once
 * (taken from the list before it is linked), and is never trusted across runs: the directory is emptied when
 * the coordinator starts, so what a killed coordinator left half-formatted there is never used.
 */
import fs from "node:fs";
import path from "node:path";
import type { Logger } from "../../shared/logger.js";
import { errorMessage } from "../../shared/errors.js";

/** Spare images kept by default; 0 disables them. */
export const DEFAULT_SPARE_IMAGES = 2;
/**
 * How long after the last take the refill starts: formatting forks the coordinator (a few ms of its event
 * loop), which should land after the creates of a burst, not in the middle of the one that took a spare.
 */
const REFILL_DELAY_MS = 1000;

export interface SpareImagesOptions {
  dir: string;
  count: number;
  /** Makes `image` (a path that does not exist) a formatted volume image of `bytes`. */
  format(image: string, bytes: number, signal: AbortSignal): Promise<void>;
  logger: Logger;
}

export class SpareImages {
  private readonly ready: string[] = [];
  /** The size the spares are made for: the last one asked for. */
  private bytes: number | undefined;
  private made = 0;
  private filling: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private usable = true;

  constructor(private readonly options: SpareImagesOptions) {
    fs.rmSync(options.dir, { recursive: true, force: true });
    fs.mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  }

  /**
   * Puts a spare of `bytes` at `target` (which must not exist); false when there is none (the caller formats
   * one). Either way the spares are then topped up for `bytes`, in the background.
   */
  take(target: string, bytes: number): boolean {
    if (this.options.count <= 0 || !this.usable || this.abort.signal.aborted) return false;
    if (this.bytes !== bytes) this.discardAll();
    this.bytes = bytes;
    this.refill();
    const spare = this.ready.shift();
    if (spare === undefined) return false;
    try {
      fs.linkSync(spare, target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Another filesystem (EXDEV): spares cannot serve this data dir; formatting in place still works.
      if (code === "EXDEV" || code === "EPERM") this.usable = false;
      this.options.logger.warn(`a spare volume image could not be used (${errorMessage(err)}); formatting one instead`);
      fs.rmSync(spare, { force: true });
      return false;
    }
    fs.rmSync(spare, { force: true });
    return true;
  }

  /** Stops making spares and deletes the ready ones. */
  async close(): Promise<void> {
    this.abort.abort();
    clearTimeout(this.timer);
    await this.filling;
    this.discardAll();
  }

  private discardAll(): void {
    for (const file of this.ready.splice(0)) fs.rmSync(file, { force: true });
  }

  private refill(): void {
    clearTimeout(this.timer);
    if (this.filling) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.filling = this.fill().finally(() => (this.filling = undefined));
    }, REFILL_DELAY_MS);
    this.timer.unref();
  }

  private async fill(): Promise<void> {
    const { signal } = this.abort;
    while (!signal.aborted && this.usable && this.bytes !== undefined && this.ready.length < this.options.count) {
      const bytes = this.bytes;
      const file = path.join(this.options.dir, `spare-${++this.made}.img`);
      // Formatted under another name: an `.img` in the directory is a whole spare.
      const partial = `${file}.partial`;
      try {
        await this.options.format(partial, bytes, signal);
        fs.renameSync(partial, file);
      } catch (err) {
        fs.rmSync(partial, { force: true });
        if (!signal.aborted) this.options.logger.warn(`formatting a spare volume image failed: ${errorMessage(err)}`);
        return;
      }
      // Asked for another size meanwhile, or closed: this one is of no use.
      if (signal.aborted || bytes !== this.bytes) fs.rmSync(file, { force: true });
      else this.ready.push(file);
    }
  }
}
