/** How the CLI commands read a gateway's JSON answer: the body, or an Error naming the status and the API's error. */
export async function readGatewayJson<T>(res: Response, what: string): Promise<T> {
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${what} failed: HTTP ${res.status} ${text.slice(0, 200)}`);
  }
  if (!res.ok) {
    const error = (json as { error?: { code?: string; message?: string } }).error;
    throw new Error(`${what} failed: HTTP ${res.status} ${error?.code ?? ""}: ${error?.message ?? text.slice(0, 200)}`);
  }
  return json as T;
}
