import { Sandbox as SdkSandbox, Template as SdkTemplate } from "@wrenn/sdk";
import { useState } from "react";
import { type Session, sdkOptions } from "../api/index.js";
import { ActionButton, ConfirmButton, Notice } from "../components/action.js";
import { age, bytes } from "../components/format.js";
import { TemplateBuildForm } from "../components/template-build.js";
import { usePoll } from "../components/use-poll.js";
import { navigate } from "../router/index.js";

export function TemplatesPage({ session }: { session: Session }) {
  const [error, setError] = useState<string>();
  const list = usePoll(() => SdkTemplate.list(sdkOptions(session)), 5000);
  const templates = list.data ?? [];
  // A sandbox starts from a template's newest version (the list is oldest first).
  const newest = new Map(templates.map((t) => [t.name, t.templateId]));
  return (
    <section aria-labelledby="templates-title">
      <h1 id="templates-title">Templates</h1>
      <p className="hint">
        The team's templates, every version; new sandboxes start from a template's newest version.
        Size is the disk a version's own layers take on a host, its base not counted.
      </p>
      <TemplateBuildForm session={session} onBuilt={() => void list.reload()} />
      <Notice error={error ?? list.error} />
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Templates of the team, refreshed every 5 seconds</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Version</th>
              <th scope="col">Base</th>
              <th scope="col">Size</th>
              <th scope="col">Resources</th>
              <th scope="col">Start command</th>
              <th scope="col">Created</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {templates.map((t) => (
              <tr key={t.templateId} data-template={t.name} data-version={t.version}>
                <td data-label="Name">{t.name}</td>
                <td data-label="Version">{t.version}</td>
                <td data-label="Base">{t.base}</td>
                <td data-label="Size">
                  {t.sizeBytes === undefined ? (
                    <span title="built before sizes were recorded">unknown</span>
                  ) : (
                    <data value={t.sizeBytes}>{bytes(t.sizeBytes)}</data>
                  )}
                </td>
                <td data-label="Resources">
                  {t.vcpus} vCPU · {t.memoryMb} MiB · {t.diskSizeMb} MiB disk
                </td>
                <td data-label="Start command">{t.startCmd ? <code>{t.startCmd}</code> : "–"}</td>
                <td data-label="Created">
                  <time dateTime={t.createdAt.toISOString()} title={t.createdAt.toISOString()}>
                    {age(t.createdAt.toISOString())} ago
                  </time>
                </td>
                <td data-label="Actions">
                  <div className="actions">
                    {newest.get(t.name) === t.templateId && (
                      <ActionButton
                        label={`Start a sandbox from ${t.name}`}
                        onError={setError}
                        onAction={async () => {
                          const sandbox = await SdkSandbox.create({
                            ...sdkOptions(session),
                            template: t.name,
                          });
                          navigate(`/sandboxes/${sandbox.sandboxId}`);
                        }}
                      >
                        Start sandbox
                      </ActionButton>
                    )}
                    <ConfirmButton
                      label={`Delete ${t.name} version ${t.version}`}
                      question={`Delete ${t.name} version ${t.version}?`}
                      onError={setError}
                      onAction={async () => {
                        await SdkTemplate.delete(t.templateId, sdkOptions(session));
                        await list.reload();
                      }}
                    >
                      Delete
                    </ConfirmButton>
                  </div>
                </td>
              </tr>
            ))}
            {list.data && templates.length === 0 && (
              <tr>
                <td colSpan={8}>No templates yet.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
