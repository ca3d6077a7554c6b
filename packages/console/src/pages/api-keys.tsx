import { type FormEvent, useState } from "react";
import { messageOf, must, restClient, type Session } from "../api/index.js";
import { ActionButton, Notice } from "../components/action.js";
import { age } from "../components/format.js";
import { usePoll } from "../components/use-poll.js";

export function ApiKeysPage({ session }: { session: Session }) {
  const [error, setError] = useState<string>();
  const [created, setCreated] = useState<{ name: string; key: string }>();
  const list = usePoll(() => must(restClient(session).GET("/v1/api-keys")), 0);

  const create = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    const name = String(new FormData(form).get("name")).trim();
    try {
      const key = await must(restClient(session).POST("/v1/api-keys", { body: { name } }));
      setCreated({ name: key.name, key: key.key });
      form.reset();
      await list.reload();
    } catch (err) {
      setError(messageOf(err));
    }
  };

  return (
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">API keys</h1>
      <form className="row panel" onSubmit={create}>
        <label className="grow">
          Name
          <input name="name" required maxLength={128} placeholder="ci" />
        </label>
        <button type="submit" className="primary">
          Create key
        </button>
      </form>
      {created && (
        <div className="panel created-key" role="status">
          <p>
            Key <strong>{created.name}</strong> — copy it now, it is not shown again:
          </p>
          <code data-testid="new-key">{created.key}</code>{" "}
          <button type="button" onClick={() => void navigator.clipboard?.writeText(created.key)}>
            Copy
          </button>
        </div>
      )}
      <Notice error={error ?? list.error} />
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Prefix</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.api_keys.map((k) => (
              <tr key={k.id} data-key={k.name}>
                <td data-label="Name">
                  {k.name}
                  {k.id === session.apiKeyId ? " (this console)" : ""}
                </td>
                <td data-label="Prefix">
                  <code>{k.prefix}…</code>
                </td>
                <td data-label="Created">{age(k.created_at)} ago</td>
                <td data-label="Last used">
                  {k.last_used_at ? `${age(k.last_used_at)} ago` : "never"}
                </td>
                <td data-label="Actions">
                  <ActionButton
                    danger
                    label={`Delete key ${k.name}`}
                    disabled={k.id === session.apiKeyId}
                    onError={setError}
                    onAction={async () => {
                      await must(
                        restClient(session).DELETE("/v1/api-keys/{id}", {
                          params: { path: { id: k.id } },
                        }),
                      );
                      await list.reload();
                    }}
                  >
                    Delete
                  </ActionButton>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
