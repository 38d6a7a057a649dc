/** What `session/list` can say about sessions this process has seen (shared across connections). */
export interface SessionDirectory {
  get(sessionId: string): { cwd: string; title?: string } | undefined;
  set(sessionId: string, entry: { cwd: string; title?: string }): void;
}

export function createSessionDirectory(limit = 10_000): SessionDirectory {
  const entries = new Map<string, { cwd: string; title?: string }>();
  return {
    get: (id) => entries.get(id),
    set: (id, entry) => {
      entries.delete(id);
      entries.set(id, entry);
      if (entries.size > limit) entries.delete(entries.keys().next().value as string);
    },
  };
}
