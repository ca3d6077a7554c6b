import { Sandbox as SdkSandbox, Snapshot as SdkSnapshot } from "@wrenn/sdk";
import { useState } from "react";
import { must, restClient, type Session, sdkOptions } from "../api/index.js";
import { ActionButton, Notice } from "../components/action.js";
import { age } from "../components/format.js";
import { usePoll } from "../components/use-poll.js";
import { navigate } from "../router/index.js";

export function SnapshotsPage({ session }: { session: Session }) {
  const [error, setError] = useState<string>();
  const list = usePoll(() => must(restClient(session).GET("/v1/snapshots")), 5000);
  const snapshots = list.data?.snapshots ?? [];
  return (
    <section aria-labelledby="snapshots-title">
      <h1 id="snapshots-title">Snapshots</h1>
      <p className="hint">
        Make one from a running sandbox's page; a snapshot starts new sandboxes with that sandbox's
        files.
      </p>
      <Notice error={error ?? list.error} />
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Base template</th>
              <th scope="col">From sandbox</th>
              <th scope="col">Resources</th>
              <th scope="col">Age</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {snapshots.map((s) => (
              <tr key={s.id} data-snapshot={s.name}>
                <td data-label="Name">{s.name}</td>
                <td data-label="Base template">{s.base_template}</td>
                <td data-label="From sandbox">{s.source_sandbox_id ?? "–"}</td>
                <td data-label="Resources">
                  {s.vcpus} vCPU · {s.memory_mb} MiB · {s.disk_size_mb} MiB disk
                </td>
                <td data-label="Age">{age(s.created_at)}</td>
                <td data-label="Actions">
                  <div className="actions">
                    <ActionButton
                      label={`Start a sandbox from ${s.name}`}
                      onError={setError}
                      onAction={async () => {
                        const sandbox = await SdkSandbox.create({
                          ...sdkOptions(session),
                          snapshot: s.name,
                        });
                        navigate(`/sandboxes/${sandbox.sandboxId}`);
                      }}
                    >
                      Start sandbox
                    </ActionButton>
                    <ActionButton
                      danger
                      label={`Delete snapshot ${s.name}`}
                      onError={setError}
                      onAction={async () => {
                        await SdkSnapshot.delete(s.name, sdkOptions(session));
                        await list.reload();
                      }}
                    >
                      Delete
                    </ActionButton>
                  </div>
                </td>
              </tr>
            ))}
            {list.data && snapshots.length === 0 && (
              <tr>
                <td colSpan={6}>No snapshots yet.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
