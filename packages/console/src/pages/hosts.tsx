import { type FormEvent, useState } from "react";
import {
  ApiError,
  apiUrl,
  type Host,
  messageOf,
  must,
  restClient,
  type Session,
} from "../api/index.js";
import { ActionButton, ConfirmButton, Notice } from "../components/action.js";
import { age } from "../components/format.js";
import { usePoll } from "../components/use-poll.js";

/** "3 of 8 MiB" when the host reports a capacity, else just the use. */
const of = (used: number, total: number | undefined, unit = "") =>
  `${total === undefined ? used : `${used} of ${total}`}${unit && ` ${unit}`}`;

function RegistrationToken({ session }: { session: Session }) {
  const [made, setMade] = useState<{ token: string; expiresAt: string; shared: boolean }>();
  const [error, setError] = useState<string>();
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    try {
      const token = await must(
        restClient(session).POST("/v1/hosts/tokens", {
          body: {
            shared: form.get("shared") === "on",
            ttl_sec: Number(form.get("ttl")) * 60,
          },
        }),
      );
      setMade({ token: token.token, expiresAt: token.expires_at, shared: token.shared });
      setError(undefined);
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return (
    <details className="panel">
      <summary>Add a host</summary>
      <form className="row" onSubmit={submit}>
        <label>
          Token valid for (minutes)
          <input name="ttl" type="number" min={1} max={1440} defaultValue={60} />
        </label>
        <label>
          <input name="shared" type="checkbox" /> shared: serves every team (operator only)
        </label>
        <button type="submit" className="primary">
          Create registration token
        </button>
      </form>
      <Notice error={error} />
      {made && (
        <div role="status">
          <p>
            On the new machine, as root, run (the token works once, until{" "}
            {new Date(made.expiresAt).toLocaleTimeString()}):
          </p>
          <pre className="command" data-testid="join-command">
            wrenn agent start --server-url {apiUrl()} --registration-token {made.token}{" "}
            --advertise-url http://&lt;this-host&gt;:5007
          </pre>
        </div>
      )}
    </details>
  );
}

function HostActions(props: {
  host: Host;
  session: Session;
  onChange: () => void;
  onError: (m: string) => void;
}) {
  const { host, session, onError } = props;
  const [blocked, setBlocked] = useState<string>();
  const remove = async (force: boolean) => {
    try {
      await must(
        restClient(session).DELETE("/v1/hosts/{id}", {
          params: { path: { id: host.id }, query: force ? { force: "true" } : {} },
        }),
      );
      props.onChange();
    } catch (err) {
      if (err instanceof ApiError && err.code === "conflict" && !force) setBlocked(err.message);
      else throw err;
    }
  };
  return (
    <div className="actions">
      <ActionButton
        label={`Drain ${host.id}`}
        disabled={host.state !== "ready"}
        onError={onError}
        onAction={async () => {
          await must(
            restClient(session).POST("/v1/hosts/{id}/drain", {
              params: { path: { id: host.id } },
            }),
          );
          props.onChange();
        }}
      >
        Drain
      </ActionButton>
      <ConfirmButton
        label={`Remove ${host.id}`}
        question={`Remove host ${host.hostname ?? host.id}? Its credentials are revoked: its agent must register again with a new token to come back.`}
        onError={onError}
        onAction={() => remove(false)}
      >
        Remove
      </ConfirmButton>
      {/* Until its sandboxes are gone: then a plain Remove works. */}
      {blocked && host.usage.sandboxes > 0 && (
        <span role="alert" className="notice error">
          Not removed: {blocked}{" "}
          <ActionButton
            danger
            label={`Remove ${host.id} and destroy its sandboxes`}
            onError={onError}
            onAction={() => remove(true)}
          >
            Remove anyway, destroying them
          </ActionButton>
        </span>
      )}
    </div>
  );
}

export function HostsPage({ session }: { session: Session }) {
  const [error, setError] = useState<string>();
  const list = usePoll(() => must(restClient(session).GET("/v1/hosts")), 5000);
  return (
    <section aria-labelledby="hosts-title">
      <h1 id="hosts-title">Hosts</h1>
      <RegistrationToken session={session} />
      <Notice error={error ?? list.error} />
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Host</th>
              <th scope="col">State</th>
              <th scope="col">Serves</th>
              <th scope="col">Runtimes</th>
              <th scope="col">Sandboxes</th>
              <th scope="col">vCPUs</th>
              <th scope="col">Memory</th>
              <th scope="col">Last seen</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.hosts.map((h) => (
              <tr key={h.id} data-host={h.id}>
                <td data-label="Host">
                  {h.hostname ?? h.id}
                  {h.address && <div className="hint">{h.address}</div>}
                  {h.version && <div className="hint">agent {h.version}</div>}
                </td>
                <td data-label="State">
                  <span className={`state state-${h.state}`}>{h.state}</span>
                </td>
                <td data-label="Serves">{h.shared ? "every team" : "this team"}</td>
                <td data-label="Runtimes">
                  {h.runtimes
                    .map((r) => (r === h.default_runtime ? `${r} (default)` : r))
                    .join(", ")}
                </td>
                <td data-label="Sandboxes">{h.usage.sandboxes}</td>
                <td data-label="vCPUs">{of(h.usage.vcpus, h.capacity?.vcpus)}</td>
                <td data-label="Memory">{of(h.usage.memory_mb, h.capacity?.memory_mb, "MiB")}</td>
                <td data-label="Last seen">
                  {h.last_seen_at ? `${age(h.last_seen_at)} ago` : "never"}
                </td>
                <td data-label="Actions">
                  <HostActions
                    host={h}
                    session={session}
                    onChange={list.reload}
                    onError={setError}
                  />
                </td>
              </tr>
            ))}
            {list.data && list.data.hosts.length === 0 && (
              <tr>
                <td colSpan={9}>No hosts yet: add one above.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
