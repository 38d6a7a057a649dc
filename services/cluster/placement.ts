/**
 * Choosing a coordinator for a new instance: "power of two choices" — pick two usable coordinators at
 * random and take the less loaded one. Close to least-loaded placement, but gateways working from
 * slightly stale load figures do not all pile onto the same coordinator.
 */
export interface PlacementCandidate {
  coordinatorId: string;
  instances: number;
  capacity: number;
  cpuLoad: number;
  draining: boolean;
  /** Not answering: its circuit breaker is open (or half-open, waiting for a probe). */
  unanswering?: boolean;
}

/** Never draining, never full, never one that does not answer. */
export function isPlaceable(c: PlacementCandidate): boolean {
  return !c.draining && !c.unanswering && c.capacity > 0 && c.instances < c.capacity;
}

export function placementLoad(c: PlacementCandidate): number {
  return c.instances / Math.max(1, c.capacity);
}

/** The less loaded of two: instances/capacity, then CPU load, then the first. */
export function lessLoaded<T extends PlacementCandidate>(a: T, b: T): T {
  const la = placementLoad(a);
  const lb = placementLoad(b);
  if (la !== lb) return la < lb ? a : b;
  if (a.cpuLoad !== b.cpuLoad) return a.cpuLoad < b.cpuLoad ? a : b;
  return a;
}

/** Power of two choices over the placeable candidates; undefined when none is placeable. */
export function pickCoordinator<T extends PlacementCandidate>(candidates: readonly T[], random: () => number = Math.random): T | undefined {
  const usable = candidates.filter(isPlaceable);
  if (usable.length <= 1) return usable[0];
  const i = Math.min(usable.length - 1, Math.floor(random() * usable.length));
  let j = Math.min(usable.length - 2, Math.floor(random() * (usable.length - 1)));
  if (j >= i) j++;
  return lessLoaded(usable[i] as T, usable[j] as T);
}

/** Why nothing was placeable, for the Unavailable error. */
export function describeNoCapacity(candidates: readonly PlacementCandidate[]): string {
  if (candidates.length === 0) return "no coordinator is registered in service discovery";
  const draining = candidates.filter((c) => c.draining).length;
  const full = candidates.filter((c) => !c.draining && c.instances >= c.capacity).length;
  const unanswering = candidates.filter((c) => c.unanswering && !c.draining && c.instances < c.capacity).length;
  const notAnswering = unanswering > 0 ? `, ${unanswering} not answering (circuit open)` : "";
  return `no coordinator can take a new instance: ${candidates.length} registered, ${draining} draining, ${full} at capacity${notAnswering}`;
}
