import { InvalidArgumentError } from "../errors/index.js";
import {
  type ApiClient,
  type RequestOpts,
  readNdjson,
  requestOpts,
  runCallback,
  type WireResponse,
} from "../http/index.js";
import {
  type CodeContext,
  Execution,
  type ExecutionError,
  type OutputMessage,
  Result,
  type WireResult,
} from "./execution.js";

/** The port of the code-interpreter service in a `code-interpreter` sandbox. */
export const CODE_INTERPRETER_PORT = 49999;
const DEFAULT_RUN_TIMEOUT_MS = 60_000;

/** Options of {@link CodeInterpreter.runCode} (`sandbox.runCode`). */
export interface RunCodeOpts extends RequestOpts {
  /** The language's default context: `python` (the default) or `js`. Not with `context`. */
  language?: string;
  /** A context made by `createCodeContext` (or its id). Not with `language`. */
  context?: CodeContext | string;
  /** Environment variables for this cell only. */
  envs?: Record<string, string>;
  onStdout?: (output: OutputMessage) => unknown;
  onStderr?: (output: OutputMessage) => unknown;
  onResult?: (result: Result) => unknown;
  onError?: (error: ExecutionError) => unknown;
  /**
   * The whole call, running included (default 60 000 ms; 0 = no limit). When it passes, the
   * call fails with a TimeoutError and the service interrupts the cell.
   */
  timeoutMs?: number;
}

/** Options of {@link CodeInterpreter.createCodeContext}. */
export interface CreateCodeContextOpts extends RequestOpts {
  /** `python` (the default) or `js`. */
  language?: string;
  /** Working directory of the kernel (default the user's home). */
  cwd?: string;
}

type WireOutput =
  | WireResult
  | { type: "stdout" | "stderr"; text: string; timestamp?: string }
  | { type: "error"; name: string; value: string; traceback: string }
  | { type: "number_of_executions"; execution_count: number }
  | { type: "end_of_execution" | "unexpected_end_of_execution" | "keepalive" };

/**
 * Runs code cells in Jupyter kernels inside a sandbox made from the `code-interpreter` template,
 * through the server's sandbox port route (E2B's code-interpreter protocol on port 49999).
 * Reached as `sandbox.runCode(...)` and friends.
 */
export class CodeInterpreter {
  constructor(
    private readonly client: ApiClient,
    private readonly sandboxId: string,
    /** The sandbox's traffic access token when its ports are not public. */
    private readonly trafficAccessToken?: string,
  ) {}

  /**
   * Runs `code` and resolves with everything it produced; an exception the code raised is in
   * `execution.error`, not thrown. Variables persist within a context across calls.
   */
  async runCode(code: string, opts: RunCodeOpts = {}): Promise<Execution> {
    if (opts.language !== undefined && opts.context !== undefined) {
      throw new InvalidArgumentError("runCode takes a language or a context, not both", {
        code: "invalid_argument",
      });
    }
    const contextId = typeof opts.context === "string" ? opts.context : opts.context?.id;
    return this.call(
      "POST",
      "/execute",
      {
        code,
        ...(contextId !== undefined ? { context_id: contextId } : {}),
        ...(opts.language !== undefined ? { language: opts.language } : {}),
        ...(opts.envs !== undefined ? { env_vars: opts.envs } : {}),
      },
      { ...requestOpts(opts), timeoutMs: opts.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS },
      async (res) => {
        const execution = new Execution();
        if (!res.body) return execution;
        for await (const msg of readNdjson(res.body))
          await apply(execution, msg as WireOutput, opts);
        return execution;
      },
    );
  }

  /** Starts a new kernel: its own variables, imports and working directory. */
  createCodeContext(opts: CreateCodeContextOpts = {}): Promise<CodeContext> {
    return this.call(
      "POST",
      "/contexts",
      {
        ...(opts.language !== undefined ? { language: opts.language } : {}),
        ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      },
      opts,
      (res) => res.json() as Promise<CodeContext>,
    );
  }

  /** The running contexts, the default ones included. */
  listCodeContexts(opts: RequestOpts = {}): Promise<CodeContext[]> {
    return this.call("GET", "/contexts", undefined, opts, (res) => res.json()) as Promise<
      CodeContext[]
    >;
  }

  /** Restarts a context's kernel: its variables are gone, the context stays. */
  async restartCodeContext(context: CodeContext | string, opts: RequestOpts = {}): Promise<void> {
    await this.call("POST", `/contexts/${contextPath(context)}/restart`, undefined, opts, drain);
  }

  /** Shuts a context's kernel down. */
  async removeCodeContext(context: CodeContext | string, opts: RequestOpts = {}): Promise<void> {
    await this.call("DELETE", `/contexts/${contextPath(context)}`, undefined, opts, drain);
  }

  private call<T>(
    method: "GET" | "POST" | "DELETE",
    path: string,
    json: unknown,
    opts: RequestOpts,
    consume: (res: WireResponse) => Promise<T>,
  ): Promise<T> {
    return this.client.send(
      {
        method,
        path,
        ...(json !== undefined ? { json } : {}),
        headers: {
          "e2b-sandbox-id": this.sandboxId,
          "e2b-sandbox-port": String(CODE_INTERPRETER_PORT),
          ...(this.trafficAccessToken
            ? { "e2b-traffic-access-token": this.trafficAccessToken }
            : {}),
        },
        // The request ends at a port inside the sandbox: the API key must not travel with it.
        withoutApiKey: true,
        inSandbox: true,
        idempotent: method === "GET",
        ...requestOpts(opts),
      },
      consume,
    );
  }
}

function contextPath(context: CodeContext | string): string {
  return encodeURIComponent(typeof context === "string" ? context : context.id);
}

async function drain(res: WireResponse): Promise<void> {
  await res.text();
}

async function apply(execution: Execution, msg: WireOutput, opts: RunCodeOpts): Promise<void> {
  switch (msg.type) {
    case "stdout":
    case "stderr": {
      execution.logs[msg.type].push(msg.text);
      const output: OutputMessage = {
        line: msg.text,
        timestamp: msg.timestamp ? new Date(msg.timestamp) : new Date(),
        error: msg.type === "stderr",
      };
      await runCallback(() => (msg.type === "stdout" ? opts.onStdout : opts.onStderr)?.(output));
      break;
    }
    case "result": {
      const result = new Result(msg);
      execution.results.push(result);
      await runCallback(() => opts.onResult?.(result));
      break;
    }
    case "error": {
      const error = { name: msg.name, value: msg.value, traceback: msg.traceback };
      execution.error = error;
      await runCallback(() => opts.onError?.(error));
      break;
    }
    case "number_of_executions":
      execution.executionCount = msg.execution_count;
      break;
    default:
      break; // end markers and keepalives
  }
}
