import { useState } from "react";
import { must, restClient, type Session } from "../api/index.js";
import { ConfirmButton, Notice } from "../components/action.js";
import { age } from "../components/format.js";
import { usePoll } from "../components/use-poll.js";

/**
 * The team's members (`GET /v1/teams/members`); an owner removes one with
 * `DELETE /v1/teams/members/{user_id}`, asked twice (the server refuses others, and the last
 * owner); the member's login tokens for the team stop working at once.
 */
export function TeamMembers({ session, userId }: { session: Session; userId?: string }) {
  const [error, setError] = useState<string>();
  const list = usePoll(() => must(restClient(session, "user").GET("/v1/teams/members")), 0);
  return (
    <section className="panel" aria-labelledby="members-title">
      <h2 id="members-title">Members</h2>
      <Notice error={error ?? list.error} />
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Email</th>
              <th scope="col">Role</th>
              <th scope="col">Joined</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.members.map((m) => (
              <tr key={m.user_id} data-member={m.email}>
                <td data-label="Email">
                  {m.email}
                  {m.user_id === userId ? " (you)" : ""}
                </td>
                <td data-label="Role">{m.role}</td>
                <td data-label="Joined">{age(m.joined_at)} ago</td>
                <td data-label="Actions">
                  <ConfirmButton
                    label={`Remove ${m.email} from the team`}
                    question={`Remove ${m.email} from the team?`}
                    disabled={m.user_id === userId}
                    onError={setError}
                    onAction={async () => {
                      await must(
                        restClient(session, "user").DELETE("/v1/teams/members/{user_id}", {
                          params: { path: { user_id: m.user_id } },
                        }),
                      );
                      await list.reload();
                    }}
                  >
                    Remove
                  </ConfirmButton>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
