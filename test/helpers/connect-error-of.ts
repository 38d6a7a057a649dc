/** The ConnectError a call fails with; a call that succeeds fails the test. */
import { ConnectError } from "@connectrpc/connect";

export async function connectErrorOf(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail, but it succeeded");
}
