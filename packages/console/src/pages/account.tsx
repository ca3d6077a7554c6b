import { useState } from "react";
import { apiUrl, type Invite, must, restClient, type Session } from "../api/index.js";
import { ActionButton, Notice } from "../components/action.js";
import { usePoll } from "../components/use-poll.js";
import { TeamMembers } from "./team-members.js";

/** An invitation into the team (`POST /v1/teams/invites`, owners only), its token shown once. */
function TeamInvite({ session }: { session: Session }) {
  const [invite, setInvite] = useState<Invite>();
  const [error, setError] = useState<string>();
  const create = async () => {
    setInvite(await must(restClient(session, "user").POST("/v1/teams/invites")));
    setError(undefined);
  };
  return (
    <section className="panel" aria-labelledby="team-title">
      <h2 id="team-title">Team</h2>
      <p className="hint">A team owner can invite someone: the invitation works once.</p>
      <ActionButton onAction={create} onError={setError}>
        Create invitation
      </ActionButton>
      <Notice error={error} />
      {invite && (
        <div role="status">
          <p>
            Shown once. Send it to the person you invite; they sign up with it (until{" "}
            <time dateTime={invite.expires_at}>{new Date(invite.expires_at).toLocaleString()}</time>
            ) and join this team:
          </p>
          <pre className="command" data-testid="invite-token">
            {invite.token}
          </pre>
          <pre className="command" data-testid="invite-signup">
            curl -X POST {apiUrl()}/v1/auth/signup -H 'content-type: application/json' -d
            {` '{"email": "<their email>", "password": "<their password>", "invite": "${invite.token}"}'`}
          </pre>
        </div>
      )}
    </section>
  );
}

/** Who is signed in, for which team, and what this browser holds (from `GET /v1/auth/whoami`). */
export function AccountPage({ session }: { session: Session }) {
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
      <TeamInvite session={session} />
    </section>
  );
}
