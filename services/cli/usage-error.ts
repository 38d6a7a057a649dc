/** A command line that cannot run as given: the CLI prints it with the usage and exits with code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}
