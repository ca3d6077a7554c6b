import { Template, TemplateBuildError, type TemplateBuildEvent } from "@wrenn/sdk";
import { type FormEvent, useEffect, useRef, useState } from "react";
import { messageOf, type Session, sdkOptions } from "../api/index.js";
import { Notice } from "./action.js";

const EXAMPLE = [
  "FROM wrenn/base",
  "ENV GREETING=hello",
  "RUN echo $GREETING > /tmp/greeting",
].join("\n");

interface LogLine {
  kind: "step" | "stdout" | "stderr" | "info" | "done" | "error";
  text: string;
  /** The step a line of output is from. */
  step?: number;
}

/**
 * The build log's lines for one event (the CLI's wording: `[i/n] STEP (cached)`); a failing
 * step's output only when it did not stream already.
 */
function linesOf(event: TemplateBuildEvent, before: LogLine[]): LogLine[] {
  switch (event.type) {
    case "build":
      return [{ kind: "info", text: `Build ${event.build_id}: ${event.steps} step(s)` }];
    case "step":
      return [
        {
          kind: "step",
          text: `[${event.index + 1}/${event.total}] ${event.step}${event.cached ? " (cached)" : ""}`,
        },
      ];
    case "log":
      return [{ kind: event.stream, text: event.text.replace(/\n$/, ""), step: event.index }];
    case "info":
      return [{ kind: "info", text: event.message }];
    case "step_done":
      return [];
    case "done":
      return [
        {
          kind: "done",
          text: `Built ${event.template.name} version ${event.template.version} in ${(event.duration_ms / 1000).toFixed(1)} s`,
        },
      ];
    case "error": {
      const where =
        event.step === undefined
          ? ""
          : ` (step ${event.step + 1}${event.exit_code === undefined ? "" : `, exit code ${event.exit_code}`})`;
      const lines: LogLine[] = [{ kind: "error", text: `Error: ${event.message}${where}` }];
      const streamed = before.some((l) => l.step !== undefined && l.step === event.step);
      if (event.output && !streamed)
        lines.push({ kind: "stderr", text: event.output.replace(/\n$/, "") });
      return lines;
    }
  }
}

/**
 * A Dockerfile built into a team template with `@wrenn/sdk` (`Template.fromDockerfile`, then
 * `Template.build`), its log shown line by line as it streams; Cancel aborts the request, which
 * cancels the build on the server.
 */
export function TemplateBuildForm(props: { session: Session; onBuilt: () => void }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [error, setError] = useState<string>();
  const [building, setBuilding] = useState(false);
  const abort = useRef<AbortController>(undefined);
  const log = useRef<HTMLPreElement>(null);

  // biome-ignore lint/correctness/useExhaustiveDependencies: follow the log as lines arrive
  useEffect(() => {
    log.current?.scrollTo({ top: log.current.scrollHeight });
  }, [lines]);
  // Leaving the page cancels a running build rather than leaving it orphaned.
  useEffect(() => () => abort.current?.abort(), []);

  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    const name = String(form.get("name")).trim();
    setError(undefined);
    let template: Template;
    try {
      template = Template.fromDockerfile(String(form.get("dockerfile")));
    } catch (err) {
      setError(messageOf(err));
      return;
    }
    if (template.steps.some((s) => s.type === "copy")) {
      setError(
        "COPY and ADD need local files, which a browser cannot send: build this one with `wrenn template build`.",
      );
      return;
    }
    const controller = new AbortController();
    abort.current = controller;
    setLines([]);
    setBuilding(true);
    try {
      await Template.build(template, {
        ...sdkOptions(props.session),
        name,
        signal: controller.signal,
        onLog: (event) => setLines((l) => [...l, ...linesOf(event, l)]),
      });
      props.onBuilt();
    } catch (err) {
      // A failed step is already in the log, with its output.
      if (controller.signal.aborted)
        setLines((l) => [...l, { kind: "error", text: "Build cancelled" }]);
      else if (!(err instanceof TemplateBuildError)) setError(messageOf(err));
    } finally {
      abort.current = undefined;
      setBuilding(false);
    }
  };

  return (
    <details className="panel" open>
      <summary>Build a template</summary>
      <form className="build-form" onSubmit={submit}>
        <label>
          Template name
          <input
            name="name"
            required
            pattern="[A-Za-z0-9_\-][A-Za-z0-9._\-]{0,63}"
            title="1-64 of letters, digits, '.', '_', '-' (no leading '.')"
            autoComplete="off"
          />
        </label>
        <label>
          Dockerfile
          <textarea
            name="dockerfile"
            rows={6}
            required
            spellCheck={false}
            defaultValue={EXAMPLE}
            aria-describedby="dockerfile-help"
          />
        </label>
        <p className="hint" id="dockerfile-help">
          FROM <code>wrenn/&lt;template&gt;</code> (or <code>debian:bookworm</code> for the base
          template), then RUN, ENV, WORKDIR, USER, ARG and CMD (the start command). COPY and ADD of
          local files are not possible from a browser: use <code>wrenn template build</code> for
          those. Each step is cached, so a rebuild redoes only what changed.
        </p>
        <div className="actions">
          <button type="submit" className="primary" disabled={building}>
            {building ? "Building…" : "Build"}
          </button>
          {building && (
            <button type="button" className="danger" onClick={() => abort.current?.abort()}>
              Cancel build
            </button>
          )}
        </div>
      </form>
      <Notice error={error} />
      {lines.length > 0 && (
        <pre className="build-log" role="log" aria-label="Build log" ref={log}>
          {lines.map((line, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: the log only grows; a line is its position
            <div key={i} className={`log-${line.kind}`}>
              {line.text}
            </div>
          ))}
        </pre>
      )}
    </details>
  );
}
