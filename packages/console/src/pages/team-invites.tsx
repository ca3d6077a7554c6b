import { useState } from "react";
import { apiUrl, type Invite, must, restClient, type Session } from "../api/index.js";
import { ActionButton, Notice } from "../components/action.js";
import { age } from "../components/format.js";
import { usePoll } from "../components/use-poll.js";

const when = (iso: string) => <time dateTime={iso}>{new Date(iso).toLocaleString()}</time>;

/**
 * Invitations into the team: an owner makes one (`POST /v1/teams/invites`, its token shown once)
 * and revokes a pending one (`DELETE /v1/teams/invites/{id}`); members see the pending ones
 * (`GET /v1/teams/invites`, never their tokens).
 */
export function TeamInvites({ session }: { session: Session }) {
  const [invite, setInvite] = useState<Invite>();
  const [error, setError] = useState<string>();
  const pending = usePoll(() => must(restClient(session, "user").GET("/v1/teams/invites")), 0);
  const create = async () => {
    setInvite(await must(restClient(session, "user").POST("/v1/teams/invites")));
    setError(undefined);
    await pending.reload();
  };
  const revoke = async (id: string) => {
    await must(
      restClient(session, "user").DELETE("/v1/teams/invites/{id}", {
        params: { path: { id } },
      }),
    );
    if (invite?.id === id) setInvite(undefined);
    setError(undefined);
    await pending.reload();
  };
  const invites = pending.data?.invites ?? [];
  return (
    <section className="panel" aria-labelledby="team-title">
      <h2 id="team-title">Team</h2>
      <p className="hint">A team owner can invite someone: the invitation works once.</p>
      <ActionButton onAction={create} onError={setError}>
        Create invitation
      </ActionButton>
      <Notice error={error ?? pending.error} />
      {invite && (
        <div role="status">
          <p>
            Shown once. Send it to the person you invite; they sign up with it (until{" "}
            {when(invite.expires_at)}) and join this team:
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
      <h3 id="invites-title">Pending invitations</h3>
      {pending.data && invites.length === 0 && <p className="hint">None.</p>}
      {invites.length > 0 && (
        <div className="table-wrap">
          <table aria-labelledby="invites-title">
            <thead>
              <tr>
                <th scope="col">Invitation</th>
                <th scope="col">Created</th>
                <th scope="col">Expires</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {invites.map((i) => (
                <tr key={i.id} data-invite={i.id}>
                  <td data-label="Invitation">
                    <code>{i.id}</code>
                  </td>
                  <td data-label="Created">{age(i.created_at)} ago</td>
                  <td data-label="Expires">{when(i.expires_at)}</td>
                  <td data-label="Actions">
                    <ActionButton
                      danger
                      label={`Revoke invitation ${i.id}`}
                      onError={setError}
                      onAction={() => revoke(i.id)}
                    >
                      Revoke
                    </ActionButton>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
