import { type FormEvent, useState } from "react";
import { type Session, signIn } from "../api/index.js";
import { Notice, useAction } from "../components/action.js";

export function SignInPage({ onSignedIn }: { onSignedIn: (session: Session) => void }) {
  const [error, setError] = useState<string>();
  const [busy, run] = useAction(setError);

  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setError(undefined);
    await run(async () => {
      onSignedIn(await signIn(String(form.get("email")), String(form.get("password"))));
    });
  };

  return (
    <main id="main" className="sign-in">
      <form onSubmit={submit} aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">Sign in to Wrenn</h1>
        <label>
          Email
          <input name="email" type="email" autoComplete="username" required />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" required />
        </label>
        <Notice error={error} />
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <p className="hint">
          The first start printed the admin's email and password (<code>npm start</code> or{" "}
          <code>wrenn server start</code>).
        </p>
      </form>
    </main>
  );
}
