import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type Process,
  type ProcessEventSchema,
  type ProcessInput,
  type ProcessSelector,
  type PTY,
  Signal,
} from "@wrenn/proto/process";
import { EnvdError, rpc } from "../errors.js";
import { keepaliveMs } from "../keepalive.js";
import { userFromHeaders } from "../user/index.js";
import type { ManagedProcess, PtySize } from "./managed-process.js";
import type { ProcessManager, Selector } from "./manager.js";
import type { Subscriber } from "./subscriber.js";

type ProcessEventInit = MessageInitShape<typeof ProcessEventSchema>;

/** A PTY dimension beyond this is a mistake, not a terminal. */
const maxPtyDimension = 10_000;

function selectorOf(selector: ProcessSelector | undefined): Selector | undefined {
  switch (selector?.selector.case) {
    case "pid":
      return { pid: selector.selector.value };
    case "tag":
      return { tag: selector.selector.value };
    default:
      return undefined;
  }
}

function ptySize(pty: PTY | undefined): PtySize {
  const cols = pty?.size?.cols ?? 0;
  const rows = pty?.size?.rows ?? 0;
  if (cols < 1 || rows < 1 || cols > maxPtyDimension || rows > maxPtyDimension) {
    throw new EnvdError(
      "invalid_argument",
      `PTY size must be 1..${maxPtyDimension} columns and rows (got ${cols}x${rows})`,
    );
  }
  return { cols, rows };
}

const signals: Partial<Record<Signal, NodeJS.Signals>> = {
  [Signal.SIGTERM]: "SIGTERM",
  [Signal.SIGKILL]: "SIGKILL",
};

/**
 * A process's events for one stream: `start`, then output as `data`, keepalives when idle, and
 * `end`. The caller going away (ctx.signal) detaches the stream and leaves the process running.
 */
async function* events(
  proc: ManagedProcess,
  sub: Subscriber,
  ctx: HandlerContext,
): AsyncGenerator<{ event: ProcessEventInit }> {
  const idleMs = keepaliveMs(ctx);
  // Detach as soon as the caller goes away, even while this generator is parked in a write that
  // will never drain: a dead stream must not hold the process paused.
  const detach = () => proc.unsubscribe(sub);
  ctx.signal.addEventListener("abort", detach, { once: true });
  try {
    yield { event: { event: { case: "start", value: { pid: proc.pid } } } };
    for (;;) {
      const next = await sub.next(idleMs, ctx.signal);
      switch (next.type) {
        case "aborted":
          return;
        case "idle":
          yield { event: { event: { case: "keepalive", value: {} } } };
          break;
        case "data":
          yield {
            event: {
              event: {
                case: "data",
                value: { output: { case: next.chunk.kind, value: next.chunk.data } },
              },
            },
          };
          break;
        case "end": {
          const { exitCode, exited, status, error } = next.exit;
          yield { event: { event: { case: "end", value: { exitCode, exited, status, error } } } };
          return;
        }
      }
    }
  } finally {
    ctx.signal.removeEventListener("abort", detach);
    detach();
  }
}

async function writeInput(proc: ManagedProcess, input: ProcessInput | undefined): Promise<void> {
  const which = input?.input;
  if (which?.case !== "stdin" && which?.case !== "pty")
    throw new EnvdError("invalid_argument", "input (stdin or pty bytes) is required");
  await proc.write(which.case, which.value);
}

/** Converts anything a stream handler throws into a ConnectError with envd's code. */
async function* guarded<T>(stream: () => AsyncGenerator<T>): AsyncGenerator<T> {
  try {
    yield* stream();
  } catch (err) {
    throw EnvdError.from(err).toConnectError();
  }
}

/** The process.Process Connect service over `manager`. */
export function processService(manager: ProcessManager): ServiceImpl<typeof Process> {
  return {
    list: () =>
      rpc(async () => ({
        processes: manager.list().map((p) => ({
          pid: p.pid,
          tag: p.tag,
          config: { cmd: p.spec.cmd, args: p.spec.args, envs: p.spec.envs, cwd: p.spec.cwd },
        })),
      })),

    start: (req, ctx) =>
      guarded(async function* () {
        const config = req.process;
        if (!config) throw new EnvdError("invalid_argument", "process config is required");
        const user = await userFromHeaders(ctx.requestHeader);
        const { proc, sub } = await manager.start(
          {
            spec: {
              cmd: config.cmd,
              args: config.args,
              envs: config.envs,
              cwd: config.cwd || undefined,
            },
            tag: req.tag || undefined,
            pty: req.pty ? ptySize(req.pty) : undefined,
            stdin: req.stdin ?? false,
          },
          user,
        );
        yield* events(proc, sub, ctx);
      }),

    connect: (req, ctx) =>
      guarded(async function* () {
        const proc = manager.select(selectorOf(req.process));
        yield* events(proc, proc.subscribe(), ctx);
      }),

    update: (req) =>
      rpc(async () => {
        const proc = manager.select(selectorOf(req.process));
        if (!req.pty) throw new EnvdError("invalid_argument", "pty (the new size) is required");
        proc.resize(ptySize(req.pty));
        return {};
      }),

    sendInput: (req) =>
      rpc(async () => {
        await writeInput(manager.select(selectorOf(req.process)), req.input);
        return {};
      }),

    streamInput: (reqs) =>
      rpc(async () => {
        let proc: ManagedProcess | undefined;
        for await (const req of reqs) {
          const event = req.event;
          if (event.case === "start") {
            if (proc)
              throw new EnvdError("invalid_argument", "the stream already selected a process");
            proc = manager.select(selectorOf(event.value.process));
          } else if (event.case === "data") {
            if (!proc)
              throw new EnvdError(
                "invalid_argument",
                "the first message must be start (select the process)",
              );
            await writeInput(proc, event.value.input);
          }
        }
        return {};
      }),

    sendSignal: (req) =>
      rpc(async () => {
        const proc = manager.select(selectorOf(req.process));
        const signal = signals[req.signal];
        if (!signal)
          throw new EnvdError(
            "invalid_argument",
            `unsupported signal ${req.signal}; use SIGTERM or SIGKILL`,
          );
        proc.kill(signal);
        return {};
      }),

    closeStdin: (req) =>
      rpc(async () => {
        manager.select(selectorOf(req.process)).closeStdin();
        return {};
      }),
  };
}
