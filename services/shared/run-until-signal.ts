/** Keeps a service running until SIGINT/SIGTERM, then closes it and resolves with the exit code. */
export function runUntilSignal(close: () => Promise<void>, log: (line: string) => void): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      log(`received ${signal}, shutting down`);
      const force = setTimeout(() => {
        log("shutdown took too long; exiting");
        resolve(1);
      }, 30_000);
      force.unref();
      close().then(
        () => {
          clearTimeout(force);
          process.off("SIGINT", onSignal);
          process.off("SIGTERM", onSignal);
          resolve(0);
        },
        (err: unknown) => {
          log(`shutdown failed: ${err instanceof Error ? err.message : String(err)}`);
          resolve(1);
        },
      );
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}
