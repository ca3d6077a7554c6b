import { must, restClient, type Session } from "../api/index.js";
import { Notice } from "../components/action.js";
import { age } from "../components/format.js";
import { usePoll } from "../components/use-poll.js";

export function HostsPage({ session }: { session: Session }) {
  const list = usePoll(() => must(restClient(session).GET("/v1/hosts")), 5000);
  return (
    <section aria-labelledby="hosts-title">
      <h1 id="hosts-title">Hosts</h1>
      <Notice error={list.error} />
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Host</th>
              <th scope="col">Address</th>
              <th scope="col">State</th>
              <th scope="col">Runtimes</th>
              <th scope="col">Capacity</th>
              <th scope="col">Last seen</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.hosts.map((h) => (
              <tr key={h.id} data-host={h.id}>
                <td data-label="Host">{h.id}</td>
                <td data-label="Address">{h.address}</td>
                <td data-label="State">
                  <span className={`state state-${h.state}`}>{h.state}</span>
                </td>
                <td data-label="Runtimes">{h.runtimes.join(", ")}</td>
                <td data-label="Capacity">
                  {Object.entries(h.capacity)
                    .map(([k, v]) => `${k} ${v}`)
                    .join(" · ")}
                </td>
                <td data-label="Last seen">
                  {h.last_seen_at ? `${age(h.last_seen_at)} ago` : "never"}
                </td>
              </tr>
            ))}
            {list.data && list.data.hosts.length === 0 && (
              <tr>
                <td colSpan={6}>No hosts registered.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
