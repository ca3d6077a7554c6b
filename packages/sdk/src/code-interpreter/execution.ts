/** A line of output a cell printed, as it was printed. */
export interface OutputMessage {
  /** The text (a chunk of the stream, usually one line with its newline). */
  line: string;
  /** When the kernel sent it. */
  timestamp: Date;
  /** True for stderr. */
  error: boolean;
}

/** The exception a cell raised (the cell's failure, not the SDK's: `runCode` still resolves). */
export interface ExecutionError {
  /** The exception's class, e.g. `ZeroDivisionError`. */
  name: string;
  /** Its message. */
  value: string;
  /** The formatted traceback, without colour codes. */
  traceback: string;
}

/** A running code context: one kernel whose variables persist across `runCode` calls. */
export interface CodeContext {
  id: string;
  language: string;
  cwd: string;
}

/** A result's wire object (E2B's code-interpreter protocol). */
export interface WireResult {
  type: "result";
  is_main_result?: boolean;
  text?: string;
  html?: string;
  markdown?: string;
  svg?: string;
  png?: string;
  jpeg?: string;
  pdf?: string;
  latex?: string;
  json?: unknown;
  javascript?: string;
  data?: Record<string, unknown>;
  chart?: Record<string, unknown>;
  extra?: Record<string, unknown>;
}

const FORMATS = [
  "text",
  "html",
  "markdown",
  "svg",
  "png",
  "jpeg",
  "pdf",
  "latex",
  "json",
  "javascript",
  "data",
  "chart",
] as const;

/**
 * Something a cell displayed: its value (the main result, the cell's last expression) or a
 * `display()` call such as a matplotlib figure. Each representation is optional; images are
 * base64.
 */
export class Result {
  readonly text?: string;
  readonly html?: string;
  readonly markdown?: string;
  readonly svg?: string;
  /** PNG image, base64. */
  readonly png?: string;
  /** JPEG image, base64. */
  readonly jpeg?: string;
  /** PDF, base64. */
  readonly pdf?: string;
  readonly latex?: string;
  readonly json?: unknown;
  readonly javascript?: string;
  /** A pandas DataFrame's columns as lists. */
  readonly data?: Record<string, unknown>;
  /** Chart data extracted from a figure, when the service provides it. */
  readonly chart?: Record<string, unknown>;
  /** MIME types without a field of their own. */
  readonly extra: Record<string, unknown>;
  /** True for the cell's value; false for a display call. */
  readonly isMainResult: boolean;

  constructor(wire: WireResult) {
    for (const key of FORMATS) {
      if (wire[key] !== undefined && wire[key] !== null) {
        (this as Record<string, unknown>)[key] = wire[key];
      }
    }
    this.extra = wire.extra ?? {};
    this.isMainResult = wire.is_main_result === true;
  }

  /** The representations present, e.g. `["text", "png"]`. */
  formats(): string[] {
    return [
      ...FORMATS.filter((key) => this[key] !== undefined && key !== "text"),
      ...Object.keys(this.extra),
    ];
  }
}

/** Everything one `runCode` call produced. */
export class Execution {
  /** The cell's value and what it displayed, in order. */
  readonly results: Result[] = [];
  /** What it printed, chunk by chunk. */
  readonly logs: { stdout: string[]; stderr: string[] } = { stdout: [], stderr: [] };
  /** The exception it raised, if any. */
  error: ExecutionError | undefined;
  /** The context's execution counter for this cell. */
  executionCount: number | undefined;

  /** The text of the main result (the cell's last expression), if it had one. */
  get text(): string | undefined {
    return this.results.find((r) => r.isMainResult)?.text;
  }
}
