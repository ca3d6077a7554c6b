import type { Logger } from "pino";
import { type RawData, WebSocket } from "ws";
import { ServerError } from "../../errors.js";
import type { ProcessStream, SandboxProcesses } from "../../service/index.js";
import {
  closeCodeOf,
  endFrame,
  errorFrame,
  MAX_FRAME_BYTES,
  outputFrame,
  parseControlFrame,
  parseOpenFrame,
  startFrame,
  startInput,
} from "./frames.js";

/** Output is read from envd only while less than this waits in the socket (backpressure). */
const OUTPUT_HIGH_WATER = 1024 * 1024;
/** Reading client frames pauses while this much stdin waits to reach envd. */
const INPUT_HIGH_WATER = 1024 * 1024;

function bytesOf(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

const sizeOf = (data: RawData) =>
  Array.isArray(data) ? data.reduce((n, b) => n + b.byteLength, 0) : data.byteLength;

/**
 * One exec stream socket: the first frame starts or attaches to a process, then output flows out
 * as binary frames and control frames flow in, until the process ends (close 1000), the stream
 * fails (error frame, close 4xxx) or the client goes away (the process is left running).
 */
export class ExecStreamSession {
  /** Settles once the first frame is handled: the process, or undefined when there is none. */
  private ready: Promise<ProcessStream | undefined> | undefined;
  private stream: ProcessStream | undefined;
  private readonly opened = performance.now();
  private finished = false;
  /** Bytes of frames waiting for the process to start. */
  private queued = 0;

  constructor(
    private readonly ws: WebSocket,
    private readonly processes: SandboxProcesses,
    private readonly logger: Logger,
    private readonly context: { sandboxId: string; teamId: string },
  ) {
    ws.on("message", (data, isBinary) => this.onMessage(data, isBinary));
    ws.on("close", (code) => this.onClose(code));
    // A socket error is followed by close; the stream is detached there.
    ws.on("error", (err) => this.logger.debug({ err, ...context }, "exec stream socket error"));
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.finished) return;
    if (sizeOf(data) > MAX_FRAME_BYTES) {
      this.fail(
        new ServerError("payload_too_large", `frames are limited to ${MAX_FRAME_BYTES} bytes`),
      );
      return;
    }
    if (!this.ready) {
      this.ready = this.open(data, isBinary);
      return;
    }
    // Frames sent before the process was up wait for it, in order.
    const size = sizeOf(data);
    this.queued += size;
    this.flow();
    void this.ready.then((stream) => {
      this.queued -= size;
      // Also once the client has left: what it sent before leaving (a kill, then close) counts.
      if (stream) this.control(stream, data, isBinary);
      this.flow();
    });
  }

  /** Stops reading client frames while too much input waits (queued, or on its way to envd). */
  private flow(): void {
    const waiting = this.queued + (this.stream?.pendingInput ?? 0);
    if (waiting > INPUT_HIGH_WATER && !this.ws.isPaused) this.ws.pause();
    else if (waiting <= INPUT_HIGH_WATER / 2 && this.ws.isPaused) this.ws.resume();
  }

  private async open(data: RawData, isBinary: boolean): Promise<ProcessStream | undefined> {
    if (isBinary) {
      this.fail(new ServerError("invalid_argument", "the first frame must be start or connect"));
      return undefined;
    }
    const parsed = parseOpenFrame(bytesOf(data).toString("utf8"));
    if (!parsed.ok) {
      this.fail(new ServerError("invalid_argument", parsed.message));
      return undefined;
    }
    const frame = parsed.frame;
    let stream: ProcessStream;
    try {
      stream =
        frame.type === "start"
          ? await this.processes.start(startInput(frame))
          : await this.processes.connect(
              frame.pid !== undefined ? { pid: frame.pid } : { tag: frame.tag ?? "" },
            );
    } catch (err) {
      this.fail(ServerError.from(err));
      return undefined;
    }
    if (this.finished) {
      // The client left while it started: the process runs on, and gets the frames it sent first.
      stream.detach();
      return stream;
    }
    this.stream = stream;
    this.ws.send(startFrame(stream.pid, stream.tag));
    void this.pump(stream);
    return stream;
  }

  private async pump(stream: ProcessStream): Promise<void> {
    try {
      for await (const event of stream) {
        if (this.finished) return;
        if (event.type === "end") {
          this.ws.send(endFrame(event));
          this.finish(1000);
          return;
        }
        const flushed = new Promise<void>((resolve) => {
          this.ws.send(outputFrame(event.stream, event.data), () => resolve());
        });
        if (this.ws.bufferedAmount >= OUTPUT_HIGH_WATER) await flushed;
      }
    } catch (err) {
      this.fail(ServerError.from(err));
    }
  }

  private control(stream: ProcessStream, data: RawData, isBinary: boolean): void {
    // Failed controls answer an error frame; the stream and its process go on.
    const report = (err: unknown) => this.report(ServerError.from(err));
    if (isBinary) {
      stream
        .write(bytesOf(data))
        .catch(report)
        .finally(() => this.flow());
      this.flow();
      return;
    }
    const parsed = parseControlFrame(bytesOf(data).toString("utf8"));
    if (!parsed.ok) {
      this.report(new ServerError("invalid_argument", parsed.message));
      return;
    }
    const frame = parsed.frame;
    const done =
      frame.type === "close_stdin"
        ? stream.closeStdin()
        : frame.type === "resize"
          ? stream.resize(frame.cols, frame.rows)
          : stream.signal(frame.signal);
    done.catch(report);
  }

  /** An error frame that does not end the stream. */
  private report(err: ServerError): void {
    if (!this.finished && this.ws.readyState === WebSocket.OPEN) this.ws.send(errorFrame(err));
  }

  /** An error frame, then the close code that names it; the process is left as it is. */
  private fail(err: ServerError): void {
    if (this.finished) return;
    if (err.code === "internal")
      this.logger.error({ err, ...this.context }, "exec stream internal error");
    this.report(err);
    this.finish(closeCodeOf(err), err.code);
  }

  private finish(code: number, reason?: string): void {
    if (this.finished) return;
    this.finished = true;
    this.stream?.detach();
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, reason);
  }

  private onClose(code: number): void {
    const wasOpen = !this.finished;
    this.finished = true;
    // The client closing detaches: the process keeps running (kill it first to end it).
    this.stream?.detach();
    this.logger.info(
      {
        op: "exec.stream",
        ...this.context,
        pid: this.stream?.pid,
        code,
        detached: wasOpen,
        ms: Math.round(performance.now() - this.opened),
      },
      "exec stream closed",
    );
  }
}
