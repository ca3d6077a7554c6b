import { Sandbox as SdkSandbox } from "@wrenn/sdk";
import { type FormEvent, useEffect, useState } from "react";
import { messageOf, must, restClient, type Session, sdkOptions } from "../api/index.js";
import { Notice, useAction } from "../components/action.js";
import { FileBrowser } from "../components/file-browser.js";
import { ForkForm } from "../components/fork-form.js";
import { age } from "../components/format.js";
import { MetricsChart } from "../components/metrics-chart.js";
import { NetworkPanel } from "../components/network-rules.js";
import { Terminal } from "../components/terminal.js";
import { usePoll } from "../components/use-poll.js";
import { Link } from "../router/index.js";
import { SandboxActions } from "./sandboxes.js";

const SAMPLES = 90;

interface Series {
  times: number[];
  cpu: number[];
  mem: number[];
  disk: number[];
  memTotal?: number;
  diskTotal?: number;
}

/** Samples the metrics route every 2 s while the sandbox runs; the charts keep the last few minutes. */
function useMetrics(sandbox: SdkSandbox | undefined, running: boolean): Series {
  const [series, setSeries] = useState<Series>({ times: [], cpu: [], mem: [], disk: [] });
  useEffect(() => {
    if (!sandbox || !running) return;
    let stopped = false;
    const sample = async () => {
      const m = await sandbox.getMetrics().catch(() => undefined);
      if (!m || stopped) return;
      setSeries((s) => ({
        times: [...s.times, m.timestamp.getTime() / 1000].slice(-SAMPLES),
        cpu: [...s.cpu, m.cpuUsedPct ?? 0].slice(-SAMPLES),
        mem: [...s.mem, m.memUsedMb ?? 0].slice(-SAMPLES),
        disk: [...s.disk, m.diskUsedMb ?? 0].slice(-SAMPLES),
        memTotal: m.memTotalMb,
        diskTotal: m.diskTotalMb,
      }));
    };
    void sample();
    const timer = setInterval(sample, 2000);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [sandbox, running]);
  return series;
}

function SnapshotForm({ sandbox, onError }: { sandbox: SdkSandbox; onError: (m: string) => void }) {
  const [made, setMade] = useState<string>();
  const [busy, run] = useAction(onError);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const name = String(new FormData(e.currentTarget).get("name")).trim();
    await run(async () => {
      const snapshot = await sandbox.createSnapshot(name);
      setMade(snapshot.name);
    });
  };
  return (
    <form className="row" onSubmit={submit}>
      <label>
        Snapshot name
        <input name="name" required pattern="[A-Za-z0-9_\-][A-Za-z0-9._\-]{0,63}" />
      </label>
      <button type="submit" disabled={busy}>
        {busy ? "Snapshotting…" : "Create snapshot"}
      </button>
      {made && (
        <span role="status">
          Snapshot <Link href="/snapshots">{made}</Link> created.
        </span>
      )}
    </form>
  );
}

export function SandboxPage({ id, session }: { id: string; session: Session }) {
  const [error, setError] = useState<string>();
  const [sdk, setSdk] = useState<SdkSandbox>();
  const info = usePoll(
    () => must(restClient(session).GET("/v1/sandboxes/{id}", { params: { path: { id } } })),
    3000,
    id,
  );
  useEffect(() => {
    SdkSandbox.connect(id, { ...sdkOptions(session), resume: false }).then(setSdk, (err) =>
      setError(messageOf(err)),
    );
  }, [id, session]);
  const sandbox = info.data;
  const running = sandbox?.state === "running";
  const metrics = useMetrics(sdk, running);

  return (
    <section aria-labelledby="sandbox-title">
      <p>
        <Link href="/sandboxes">← Sandboxes</Link>
      </p>
      <h1 id="sandbox-title">
        Sandbox <code>{id}</code>
      </h1>
      <Notice error={error ?? info.error} />
      {sandbox && (
        <div className="panel">
          <dl className="details">
            <dt>State</dt>
            <dd>
              <span className={`state state-${sandbox.state}`} data-testid="sandbox-state">
                {sandbox.state}
              </span>
            </dd>
            <dt>Template</dt>
            <dd>{sandbox.template}</dd>
            <dt>Runtime</dt>
            <dd>{sandbox.runtime}</dd>
            <dt>Host</dt>
            <dd>{sandbox.host_id ? <Link href="/hosts">{sandbox.host_id}</Link> : "none yet"}</dd>
            <dt>Resources</dt>
            <dd>
              {sandbox.vcpus} vCPU · {sandbox.memory_mb} MiB memory · {sandbox.disk_size_mb} MiB
              disk
            </dd>
            <dt>Timeout</dt>
            <dd>{sandbox.timeout_sec === 0 ? "never" : `${sandbox.timeout_sec} s idle`}</dd>
            <dt>Created</dt>
            <dd>
              <time dateTime={sandbox.created_at}>{age(sandbox.created_at)} ago</time>
            </dd>
            <dt>Metadata</dt>
            <dd>
              {Object.entries(sandbox.metadata)
                .map(([k, v]) => `${k}=${v}`)
                .join(", ") || "none"}
            </dd>
          </dl>
          <SandboxActions
            sandbox={sandbox}
            session={session}
            onChange={info.reload}
            onError={setError}
          />
          {sdk && running && <SnapshotForm sandbox={sdk} onError={setError} />}
          {sdk && running && <ForkForm sandbox={sdk} onError={setError} />}
        </div>
      )}
      {sandbox && sandbox.state !== "stopped" && (
        <NetworkPanel sandbox={sandbox} sdk={sdk} onChange={info.reload} />
      )}
      {running && (
        <section aria-label="Metrics" className="charts">
          <MetricsChart title="CPU" unit="%" times={metrics.times} values={metrics.cpu} max={100} />
          <MetricsChart
            title="Memory"
            unit="MiB"
            times={metrics.times}
            values={metrics.mem}
            max={metrics.memTotal}
          />
          <MetricsChart
            title="Disk"
            unit="MiB"
            times={metrics.times}
            values={metrics.disk}
            max={metrics.diskTotal}
          />
        </section>
      )}
      {sdk && running && (
        <>
          <section aria-labelledby="terminal-title" className="panel">
            <h2 id="terminal-title">Terminal</h2>
            <Terminal sandbox={sdk} />
          </section>
          <FileBrowser sandbox={sdk} />
        </>
      )}
      {sandbox && !running && (
        <p className="hint">The terminal and files are there while the sandbox runs.</p>
      )}
    </section>
  );
}
