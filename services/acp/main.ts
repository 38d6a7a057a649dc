/** `podium acp --url URL --deployment ID`: an ACP agent over stdio backed by a Podium gateway. */
export async function runAcp(_argv: string[], _env: NodeJS.ProcessEnv): Promise<number> {
  process.stderr.write("podium acp: not available yet\n");
  return 1;
}
