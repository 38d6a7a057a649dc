/**
 * One signal that aborts when either of two does: `first` is the caller's (optional), `second` the callee's own
 * (a timeout, a lost coordinator, a breaker's cut). Without a caller's signal it is `second` itself, so nothing
 * is linked. Built on the platform's `AbortSignal.any`, which drops its listeners with the signals.
 */
export function eitherSignal(first: AbortSignal | undefined, second: AbortSignal): AbortSignal {
  return first ? AbortSignal.any([first, second]) : second;
}
