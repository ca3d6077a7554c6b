import { must, restClient, type Session } from "../api/index.js";
import { Notice } from "../components/action.js";
import { usePoll } from "../components/use-poll.js";
import { PasswordForm } from "./password-form.js";
import { TeamInvites } from "./team-invites.js";
import { TeamMembers } from "./team-members.js";

/** Who is signed in, for which team, and what this browser holds (from `GET /v1/auth/whoami`). */
export function AccountPage(props: { session: Session; onSession: (s: Session) => void }) {
  const { session } = props;
  const who = usePoll(() => must(restClient(session, "user").GET("/v1/auth/whoami")), 0);
  return (
    <section aria-labelledby="account-title">
      <h1 id="account-title">Account</h1>
      <Notice error={who.error} />
      {who.data && (
        <dl className="details panel">
          <dt>Email</dt>
          <dd>{who.data.email ?? session.email}</dd>
          <dt>User</dt>
          <dd>
            <code>{who.data.user_id ?? "–"}</code>
          </dd>
          <dt>Team</dt>
          <dd>
            {who.data.team_name} <code>{who.data.team_id}</code>
          </dd>
          <dt>Signed in until</dt>
          <dd>
            <time dateTime={session.expiresAt}>{new Date(session.expiresAt).toLocaleString()}</time>
          </dd>
          <dt>This console's API key</dt>
          <dd>
            <code>{session.apiKey.slice(0, 12)}…</code> (deleted when you sign out)
          </dd>
        </dl>
      )}
      <TeamMembers session={session} {...(who.data?.user_id ? { userId: who.data.user_id } : {})} />
      <TeamInvites session={session} />
      <PasswordForm session={session} onSession={props.onSession} />
    </section>
  );
}
