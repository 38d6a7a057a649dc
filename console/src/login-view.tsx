/** Asks for the gateway's API key; it is kept in this tab's session storage only. */
import { useState } from "preact/hooks";

export function LoginView({ error, onKey }: { error: string | undefined; onKey: (key: string) => void }) {
  const [key, setKey] = useState("");
  return (
    <form
      class="login"
      onSubmit={(e) => {
        e.preventDefault();
        onKey(key.trim());
      }}
    >
      <h1>Podium console</h1>
      <p class="muted">This gateway needs an API key (one of PODIUM_API_KEY). It stays in this tab's session storage.</p>
      <label>
        API key
        <input name="api-key" type="password" autocomplete="current-password" value={key} onInput={(e) => setKey(e.currentTarget.value)} autofocus />
      </label>
      <button type="submit" disabled={!key.trim()}>
        Log in
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
