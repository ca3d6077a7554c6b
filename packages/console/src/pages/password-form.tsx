import { type FormEvent, useState } from "react";
import { must, renewSession, restClient, type Session } from "../api/index.js";
import { Notice, useAction } from "../components/action.js";

/**
 * Changes the password (`POST /v1/auth/password`). The server then refuses every login token,
 * this browser's too, so the console signs in again with the new password (its API key stays).
 */
export function PasswordForm(props: { session: Session; onSession: (s: Session) => void }) {
  const [error, setError] = useState<string>();
  const [done, setDone] = useState(false);
  const [busy, run] = useAction(setError);
  const change = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    const data = new FormData(form);
    const current = String(data.get("current_password"));
    const next = String(data.get("new_password"));
    setDone(false);
    if (next !== String(data.get("confirm_password"))) {
      setError("the new password and its confirmation differ");
      return;
    }
    await run(async () => {
      await must(
        restClient(props.session, "user").POST("/v1/auth/password", {
          body: { current_password: current, new_password: next },
        }),
      );
      form.reset();
      setError(undefined);
      setDone(true);
      props.onSession(await renewSession(props.session, next));
    });
  };
  return (
    <section className="panel" aria-labelledby="password-title">
      <h2 id="password-title">Password</h2>
      <form className="grid-form" onSubmit={change}>
        <label>
          Current password
          <input
            name="current_password"
            type="password"
            autoComplete="current-password"
            required
            maxLength={1024}
          />
        </label>
        <label>
          New password
          <input
            name="new_password"
            type="password"
            autoComplete="new-password"
            required
            minLength={8}
            maxLength={1024}
          />
        </label>
        <label>
          Confirm new password
          <input
            name="confirm_password"
            type="password"
            autoComplete="new-password"
            required
            minLength={8}
            maxLength={1024}
          />
        </label>
        <button type="submit" className="primary" aria-busy={busy} disabled={busy}>
          Change password
        </button>
      </form>
      <Notice
        error={error}
        info={done ? "Password changed: other sign-ins of this account have ended." : undefined}
      />
    </section>
  );
}
