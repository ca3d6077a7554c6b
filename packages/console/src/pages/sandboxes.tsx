import { Sandbox as SdkSandbox } from "@wrenn/sdk";
import { type FormEvent, useState } from "react";
import { must, restClient, type Sandbox, type Session, sdkOptions } from "../api/index.js";
import { ActionButton, Notice, useAction } from "../components/action.js";
import { age, parsePairs } from "../components/format.js";
import { NetworkFields, readNetwork } from "../components/network-rules.js";
import { usePoll } from "../components/use-poll.js";
import { Link, navigate } from "../router/index.js";

const STATES = ["running", "paused", "pending", "error", "missing", "stopped"] as const;
const RUNTIMES = ["namespace", "microvm"];

/** Pause/resume, timeout and kill of one sandbox (and with `fork`, one fork), through the SDK. */
export function SandboxActions(props: {
  sandbox: Sandbox;
  session: Session;
  onChange: () => void;
  onError: (message: string) => void;
  fork?: boolean;
}) {
  const { sandbox, session, onError } = props;
  const [timeout, setTimeoutSec] = useState(String(sandbox.timeout_sec));
  const connect = () => SdkSandbox.connect(sandbox.id, { ...sdkOptions(session), resume: false });
  const run = (act: (s: SdkSandbox) => Promise<unknown>) => async () => {
    await act(await connect());
    props.onChange();
  };
  const live = sandbox.state !== "stopped";
  return (
    <div className="actions">
      {sandbox.state === "paused" ? (
        <ActionButton
          onAction={run((s) => s.resume())}
          onError={onError}
          label={`Resume ${sandbox.id}`}
        >
          Resume
        </ActionButton>
      ) : (
        <ActionButton
          onAction={run((s) => s.pause())}
          onError={onError}
          disabled={sandbox.state !== "running"}
          label={`Pause ${sandbox.id}`}
        >
          Pause
        </ActionButton>
      )}
      <span className="inline-field">
        <input
          type="number"
          min={0}
          value={timeout}
          onChange={(e) => setTimeoutSec(e.target.value)}
          aria-label={`Timeout of ${sandbox.id} in seconds`}
          disabled={!live}
        />
        <ActionButton
          onAction={run((s) => s.setTimeout(Number(timeout) * 1000))}
          onError={onError}
          disabled={!live}
          label={`Set timeout of ${sandbox.id}`}
        >
          Set timeout
        </ActionButton>
      </span>
      {props.fork && (
        <ActionButton
          onAction={run((s) => s.fork(1))}
          onError={onError}
          disabled={sandbox.state !== "running"}
          label={`Fork ${sandbox.id}`}
        >
          Fork
        </ActionButton>
      )}
      <ActionButton
        danger
        onAction={run((s) => s.kill())}
        onError={onError}
        disabled={!live}
        label={`Kill ${sandbox.id}`}
      >
        Kill
      </ActionButton>
    </div>
  );
}

function CreateSandbox(props: { session: Session; onError: (m: string) => void }) {
  const [busy, run] = useAction(props.onError);
  const hosts = usePoll(() => must(restClient(props.session).GET("/v1/hosts")), 0);
  const ready = hosts.data?.hosts.filter((h) => h.state === "ready") ?? [];
  // The runtimes the ready hosts offer; both until the list has loaded (or when none is ready).
  const offered = RUNTIMES.filter((r) => ready.some((h) => h.runtimes.includes(r)));
  const runtimes = offered.length > 0 ? offered : RUNTIMES;
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const num = (name: string) => {
      const v = String(f.get(name) ?? "").trim();
      return v === "" ? undefined : Number(v);
    };
    await run(async () => {
      const from = String(f.get("from") ?? "").trim();
      const timeoutSec = num("timeout");
      // Only what differs from the server's defaults: internet on, no rules.
      const { allowInternetAccess, allowOut, denyOut } = readNetwork(f);
      const created = await SdkSandbox.create({
        ...sdkOptions(props.session),
        ...(f.get("kind") === "snapshot" ? { snapshot: from } : from ? { template: from } : {}),
        vcpus: num("vcpus"),
        memoryMb: num("memory"),
        diskSizeMb: num("disk"),
        timeoutMs: timeoutSec === undefined ? undefined : timeoutSec * 1000,
        envs: parsePairs(String(f.get("envs")), "Environment"),
        metadata: parsePairs(String(f.get("metadata")), "Metadata"),
        hostId: String(f.get("host") ?? "") || undefined,
        runtime: String(f.get("runtime") ?? "") || undefined,
        ...(allowInternetAccess ? {} : { allowInternetAccess }),
        ...(allowOut.length + denyOut.length > 0 ? { network: { allowOut, denyOut } } : {}),
      });
      navigate(`/sandboxes/${created.sandboxId}`);
    });
  };
  return (
    <details className="panel">
      <summary>New sandbox</summary>
      <form className="grid-form" onSubmit={submit}>
        <fieldset className="row">
          <legend>Start from</legend>
          <label>
            <input type="radio" name="kind" value="template" defaultChecked /> template
          </label>
          <label>
            <input type="radio" name="kind" value="snapshot" /> snapshot
          </label>
        </fieldset>
        <label>
          Template or snapshot name
          <input name="from" placeholder="the server's default template" />
        </label>
        <label>
          Host
          <select name="host" defaultValue="">
            <option value="">any (the scheduler picks)</option>
            {ready.map((h) => (
              <option key={h.id} value={h.id}>
                {h.hostname ?? h.id} ({h.runtimes.join(", ")})
              </option>
            ))}
          </select>
        </label>
        <label>
          Runtime
          <select name="runtime" defaultValue="namespace">
            {runtimes.map((r) => (
              <option key={r} value={r}>
                {r === "microvm"
                  ? "microvm (a QEMU guest with its own kernel; slower to start)"
                  : r}
              </option>
            ))}
          </select>
        </label>
        <label>
          vCPUs
          <input name="vcpus" type="number" min={1} max={64} />
        </label>
        <label>
          Memory (MiB)
          <input name="memory" type="number" min={64} />
        </label>
        <label>
          Disk (MiB)
          <input name="disk" type="number" min={16} />
        </label>
        <label>
          Timeout (s, 0 = never)
          <input name="timeout" type="number" min={0} />
        </label>
        <label>
          Environment (KEY=value per line)
          <textarea name="envs" rows={2} />
        </label>
        <label>
          Metadata (key=value per line)
          <textarea name="metadata" rows={2} />
        </label>
        <NetworkFields />
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Creating…" : "Create sandbox"}
        </button>
      </form>
    </details>
  );
}

export function SandboxesPage({ session }: { session: Session }) {
  const [states, setStates] = useState<string[]>([]);
  const [metadata, setMetadata] = useState("");
  const [error, setError] = useState<string>();
  const filter = new URLSearchParams(
    metadata
      .split(/[,\s]+/)
      .filter((p) => p.includes("="))
      .map((p) => p.split("=", 2) as [string, string]),
  ).toString();
  const list = usePoll(
    () =>
      must(
        restClient(session).GET("/v1/sandboxes", {
          params: {
            query: {
              limit: 200,
              ...(states.length > 0 ? { state: states.join(",") } : {}),
              ...(filter ? { metadata: filter } : {}),
            },
          },
        }),
      ),
    3000,
    `${states.join(",")}|${filter}`,
  );
  const sandboxes = list.data?.sandboxes ?? [];

  return (
    <section aria-labelledby="sandboxes-title">
      <h1 id="sandboxes-title">Sandboxes</h1>
      <CreateSandbox session={session} onError={setError} />
      <Notice error={error ?? list.error} />
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <fieldset className="row">
          <legend>State</legend>
          {STATES.map((s) => (
            <label key={s}>
              <input
                type="checkbox"
                checked={states.includes(s)}
                onChange={(e) =>
                  setStates(e.target.checked ? [...states, s] : states.filter((x) => x !== s))
                }
              />{" "}
              {s}
            </label>
          ))}
        </fieldset>
        <label>
          Metadata (key=value, …)
          <input value={metadata} onChange={(e) => setMetadata(e.target.value)} />
        </label>
      </form>
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Sandboxes of the team, refreshed every 3 seconds</caption>
          <thead>
            <tr>
              <th scope="col">Sandbox</th>
              <th scope="col">State</th>
              <th scope="col">Template</th>
              <th scope="col">Runtime</th>
              <th scope="col">Host</th>
              <th scope="col">Resources</th>
              <th scope="col">Age</th>
              <th scope="col">Metadata</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {sandboxes.map((s) => (
              <tr key={s.id} data-sandbox={s.id}>
                <td data-label="Sandbox">
                  <Link href={`/sandboxes/${s.id}`}>{s.id}</Link>
                </td>
                <td data-label="State">
                  <span className={`state state-${s.state}`}>{s.state}</span>
                </td>
                <td data-label="Template">{s.template}</td>
                <td data-label="Runtime">{s.runtime}</td>
                <td data-label="Host">
                  {/* A host id is a UUID: its first 8 characters tell hosts apart here. */}
                  {s.host_id ? <code title={s.host_id}>{s.host_id.slice(0, 8)}</code> : "–"}
                </td>
                <td data-label="Resources">
                  {s.vcpus} vCPU · {s.memory_mb} MiB · {s.disk_size_mb} MiB disk
                </td>
                <td data-label="Age">{age(s.created_at)}</td>
                <td data-label="Metadata" className="break-anywhere">
                  {Object.entries(s.metadata)
                    .map(([k, v]) => `${k}=${v}`)
                    .join(", ")}
                </td>
                <td data-label="Actions">
                  <SandboxActions
                    sandbox={s}
                    session={session}
                    onChange={list.reload}
                    onError={setError}
                    fork
                  />
                </td>
              </tr>
            ))}
            {list.data && sandboxes.length === 0 && (
              <tr>
                <td colSpan={9}>No sandboxes{states.length || filter ? " match" : " yet"}.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
