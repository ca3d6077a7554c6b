import type { StartResponse } from "@wrenn/proto/process";

export interface CollectedOutput {
  pid: number | undefined;
  stdout: string;
  stderr: string;
  pty: string;
  exitCode: number | undefined;
  exited: boolean | undefined;
  status: string | undefined;
  error: string | undefined;
}

/** Drains a Start/Connect event stream into text and the end event's fields. */
export async function collectOutput(
  stream: AsyncIterable<Pick<StartResponse, "event">>,
): Promise<CollectedOutput> {
  const out: CollectedOutput = {
    pid: undefined,
    stdout: "",
    stderr: "",
    pty: "",
    exitCode: undefined,
    exited: undefined,
    status: undefined,
    error: undefined,
  };
  const decoder = new TextDecoder();
  for await (const { event } of stream) {
    const e = event?.event;
    if (e?.case === "start") out.pid = e.value.pid;
    if (e?.case === "data") {
      const { case: kind, value } = e.value.output;
      if (kind) out[kind] += decoder.decode(value);
    }
    if (e?.case === "end") {
      out.exitCode = e.value.exitCode;
      out.exited = e.value.exited;
      out.status = e.value.status;
      out.error = e.value.error;
    }
  }
  return out;
}
