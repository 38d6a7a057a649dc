/**
 * At most `size` pieces of work at once, the rest waiting in order. InstanceManager runs instance
 * teardowns through it (closing databases, unmounting disks, removing cgroups: synchronous work on the
 * event loop), so a stop storm — a drain, a mass delete, a burst of cancelled creates — is spread over
 * many loop turns instead of landing in one.
 */
export class WorkSlots {
  private used = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly size: number) {
    if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}`);
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.used < this.size) this.used++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve)); // the releasing holder hands its slot over
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.used--;
    }
  }
}
