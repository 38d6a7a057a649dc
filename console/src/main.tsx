/** The console's entry: the login gate, the navigation and a hash router over the views. */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./console.css";
import { describeError, keyAccepted, storedKey, storeKey } from "./api-client.js";
import { LoginView } from "./login-view.js";
import { InstancesView } from "./instances-view.js";
import { InstanceView } from "./instance-view.js";
import { DeploymentsView } from "./deployments-view.js";
import { CoordinatorsView } from "./coordinators-view.js";

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const onChange = () => setHash(location.hash);
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return hash;
}

function Routes({ hash }: { hash: string }) {
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "instances" && parts[1]) return <InstanceView key={parts[1]} instanceId={parts[1]} tab={parts[2] ?? "stream"} traceId={parts[3]} />;
  if (parts[0] === "deployments") return <DeploymentsView />;
  if (parts[0] === "coordinators") return <CoordinatorsView />;
  return <InstancesView />;
}

type Gate = { kind: "checking" } | { kind: "login"; error?: string } | { kind: "open"; keyless: boolean };

function App() {
  const [gate, setGate] = useState<Gate>({ kind: "checking" });
  const hash = useHash();
  const check = (key: string) => {
    keyAccepted(key)
      .then((ok) => {
        if (ok) {
          storeKey(key);
          setGate({ kind: "open", keyless: key === "" });
        } else {
          storeKey("");
          setGate({ kind: "login", ...(key ? { error: "This key was refused (401)." } : {}) });
        }
      })
      .catch((err: unknown) => setGate({ kind: "login", error: describeError(err) }));
  };
  useEffect(() => check(storedKey()), []);
  if (gate.kind === "checking") return <p class="muted pad">Connecting…</p>;
  if (gate.kind === "login") return <LoginView error={gate.error} onKey={check} />;
  const section = hash.replace(/^#\/?/, "").split("/")[0] || "instances";
  return (
    <div class="shell">
      <nav class="nav">
        <span class="brand">Podium</span>
        <a href="#/instances" class={section === "instances" ? "active" : ""}>
          Instances
        </a>
        <a href="#/deployments" class={section === "deployments" ? "active" : ""}>
          Deployments
        </a>
        <a href="#/coordinators" class={section === "coordinators" ? "active" : ""}>
          Coordinators
        </a>
        <span class="spacer" />
        {gate.keyless ? (
          <span class="muted">no API key needed</span>
        ) : (
          <button
            type="button"
            onClick={() => {
              storeKey("");
              setGate({ kind: "login" });
            }}
          >
            Log out
          </button>
        )}
      </nav>
      <main class="main">
        <Routes hash={hash} />
      </main>
    </div>
  );
}

const root = document.getElementById("app");
if (root) render(<App />, root);
