/**
 * A new agent's databases, copied from a template instead of created in place. Creating a SQLite database
 * (file, WAL switch, migrations) is synchronous and fsync-bound: ~50 ms of the event loop per agent for its
 * three stores on an idle host, several times that under a burst of creates. The template is made once per
 * process, by AgentStore itself (so it always has this build's schema), and copied with asynchronous file
 * copies (libuv's thread pool); opening the copies costs ~4 ms.
 */
import fs from "node:fs";
import path from "node:path";
import { AgentStore, LOGS_DB, MESSAGES_DB, STATE_DB } from "./store/agent-store.js";
import { errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";

const DATABASES = [MESSAGES_DB, STATE_DB, LOGS_DB];

export class StoreTemplate {
  private made: Promise<boolean> | undefined;

  /** `dir` is this process's own (it is rebuilt on first use). */
  constructor(
    private readonly dir: string,
    private readonly logger: Logger,
  ) {}

  /**
   * Copies empty databases into `agentDir` when it holds none of them (a new agent); returns whether it did.
   * Never throws: without a copy, AgentStore.open creates the databases itself.
   */
  async seed(agentDir: string): Promise<boolean> {
    const existing = await Promise.all(
      DATABASES.map((name) =>
        fs.promises.access(path.join(agentDir, name)).then(
          () => true,
          () => false,
        ),
      ),
    );
    if (existing.some(Boolean) || !(await this.make())) return false;
    try {
      await Promise.all(DATABASES.map((name) => fs.promises.copyFile(path.join(this.dir, name), path.join(agentDir, name), fs.constants.COPYFILE_EXCL)));
      return true;
    } catch (err) {
      this.logger.warn(`seeding an agent's databases failed; creating them in place: ${errorMessage(err)}`, { agent_dir: agentDir });
      return false;
    }
  }

  private make(): Promise<boolean> {
    this.made ??= (async () => {
      await fs.promises.rm(this.dir, { recursive: true, force: true });
      AgentStore.open({ dir: this.dir }).close(); // checkpointed and closed: the .db files are complete
      return true;
    })().catch((err: unknown) => {
      this.logger.warn(`cannot make the agent database template; agents' databases are created in place: ${errorMessage(err)}`);
      return false;
    });
    return this.made;
  }
}
