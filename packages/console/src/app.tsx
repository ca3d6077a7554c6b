import { useEffect, useState } from "react";
import { loadSession, type Session, signOut } from "./api/index.js";
import { AccountPage } from "./pages/account.js";
import { ApiKeysPage } from "./pages/api-keys.js";
import { HostsPage } from "./pages/hosts.js";
import { SandboxPage } from "./pages/sandbox.js";
import { SandboxesPage } from "./pages/sandboxes.js";
import { SignInPage } from "./pages/sign-in.js";
import { SnapshotsPage } from "./pages/snapshots.js";
import { TemplatesPage } from "./pages/templates.js";
import { Link, navigate, usePath } from "./router/index.js";

const NAV = [
  { href: "/sandboxes", label: "Sandboxes" },
  { href: "/snapshots", label: "Snapshots" },
  { href: "/templates", label: "Templates" },
  { href: "/api-keys", label: "API keys" },
  { href: "/hosts", label: "Hosts" },
  { href: "/account", label: "Account" },
];

function Page(props: { path: string; session: Session; onSession: (s: Session) => void }) {
  const { path, session } = props;
  const sandbox = /^\/sandboxes\/([^/]+)$/.exec(path);
  // Keyed: another sandbox (a fork's link) is a fresh page, not this one's terminal and charts.
  if (sandbox?.[1]) {
    const id = decodeURIComponent(sandbox[1]);
    return <SandboxPage key={id} id={id} session={session} />;
  }
  switch (path) {
    case "/snapshots":
      return <SnapshotsPage session={session} />;
    case "/templates":
      return <TemplatesPage session={session} />;
    case "/api-keys":
      return <ApiKeysPage session={session} />;
    case "/hosts":
      return <HostsPage session={session} />;
    case "/account":
      return <AccountPage session={session} onSession={props.onSession} />;
    default:
      return <SandboxesPage session={session} />;
  }
}

export function App() {
  const path = usePath();
  const [session, setSession] = useState(loadSession);

  useEffect(() => {
    if (!session && path !== "/sign-in") navigate("/sign-in");
    if (session && (path === "/sign-in" || path === "/")) navigate("/sandboxes");
  }, [session, path]);

  useEffect(() => {
    const label = NAV.find((n) => path.startsWith(n.href))?.label ?? "Sign in";
    document.title = `${label} · Wrenn`;
  }, [path]);

  if (!session) return <SignInPage onSignedIn={setSession} />;
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link href="/sandboxes" className="brand">
          Wrenn
        </Link>
        <nav aria-label="Main">
          <ul>
            {NAV.map((n) => (
              <li key={n.href}>
                <Link href={n.href} aria-current={path.startsWith(n.href) ? "page" : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="account">
          <Link href="/account" title="Your account">
            {session.email}
          </Link>
          <button
            type="button"
            onClick={async () => {
              await signOut(session);
              setSession(undefined);
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <main id="main">
        <Page path={path} session={session} onSession={setSession} />
      </main>
    </>
  );
}
