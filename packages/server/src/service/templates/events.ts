/** One line of a build's log stream (NDJSON), in order. */
export type BuildEvent =
  | { type: "build"; build_id: string; name: string; steps: number }
  | { type: "step"; index: number; total: number; step: string; cached: boolean }
  | { type: "log"; index: number; stream: "stdout" | "stderr"; text: string }
  | { type: "step_done"; index: number; duration_ms: number }
  | { type: "info"; message: string }
  | { type: "done"; template: BuiltTemplate; duration_ms: number }
  | {
      type: "error";
      code: string;
      message: string;
      step?: number;
      exit_code?: number;
      output?: string;
    };

/** A built template as clients see it. */
export interface BuiltTemplate {
  id: string;
  name: string;
  version: number;
  /** The template or snapshot the build started from (its FROM). */
  base: string;
  /** Bytes its own layers take on a host (what it was built from not counted); null: unknown. */
  size_bytes: number | null;
  vcpus: number;
  memory_mb: number;
  disk_size_mb: number;
  created_at: string;
  start_cmd: string | null;
}

/** A failure that ends a build, carried to the caller as its `error` event. */
export class BuildFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly step?: number,
    readonly exitCode?: number,
    readonly output?: string,
  ) {
    super(message);
  }
}
