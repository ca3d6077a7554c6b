import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { keepHostFirewallState } from "@wrenn/agent";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { loadConfig } from "../src/config/index.js";
import { type SingleHost, startSingleHost } from "../src/single-host/index.js";
import { newTeamKey } from "./helpers/app.js";
import { type TestDatabase, testEngines } from "./helpers/databases.js";
import { leaksUnder } from "./helpers/host-state.js";

// The exec stream WebSocket, the processes REST routes, the file-watch SSE and metrics, over real
// HTTP and WebSocket against a single-host server with a real agent and test-minimal sandboxes.
// The full set runs on SQLite; PostgreSQL runs the happy path. Needs root, bubblewrap, iproute2,
// nftables/iptables, e2fsprogs, util-linux (like single-host.test.ts).

const TEMPLATE = "test-minimal";

type Frame = { json: Record<string, unknown> } | { stream: number; data: Buffer };

/** A WebSocket client that records every frame and how the socket closed. */
class StreamClient {
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: (() => void)[] = [];

  constructor(readonly ws: WebSocket) {
    ws.on("message", (data: Buffer, isBinary) => {
      this.frames.push(
        isBinary
          ? { stream: data[0] ?? 0, data: data.subarray(1) }
          : { json: JSON.parse(data.toString("utf8")) },
      );
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const wake of this.waiters.splice(0)) wake();
      });
    });
  }

  /** The frames so far, for failure messages. */
  describe(): string {
    return JSON.stringify(
      this.frames.map((f) => ("json" in f ? f.json : `${f.stream}:${f.data.toString()}`)),
    );
  }

  send(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** Everything written to `stream` (1 stdout, 2 stderr, 3 pty) so far. */
  output(stream: number): string {
    return Buffer.concat(
      this.frames.flatMap((f) => ("stream" in f && f.stream === stream ? [f.data] : [])),
    ).toString("utf8");
  }

  json(type: string): Record<string, unknown>[] {
    return this.frames.flatMap((f) => ("json" in f && f.json.type === type ? [f.json] : []));
  }

  /** Waits until `ready()` holds (checked on every frame), failing after `withinMs`. */
  async until(ready: () => boolean, what: string, withinMs = 10_000): Promise<void> {
    const deadline = Date.now() + withinMs;
    while (!ready()) {
      if (this.ws.readyState === WebSocket.CLOSED && !ready())
        throw new Error(`socket closed before ${what}: ${this.describe()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}: ${this.describe()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  started(): Promise<Record<string, unknown>> {
    return this.until(() => this.json("start").length > 0, "start").then(
      () => this.json("start")[0] as Record<string, unknown>,
    );
  }

  async ended(): Promise<{ end: Record<string, unknown>; code: number }> {
    const { code } = await this.closed;
    const end = this.json("end")[0];
    if (!end)
      throw new Error(`no end frame (close ${code}): ${JSON.stringify(this.json("error"))}`);
    return { end, code };
  }
}

for (const engine of testEngines()) {
  const full = engine.name === "sqlite";
  describe.skipIf(engine.skipReason)(
    `exec stream, processes, watch and metrics on ${engine.name}${engine.skipReason ? ` (skipped: ${engine.skipReason})` : ""}`,
    { timeout: 60_000 },
    () => {
      let dataDir: string;
      let agentDir: string;
      let database: TestDatabase;
      let host: SingleHost;
      let url: string;
      let keyA: Record<string, string>;
      let keyB: Record<string, string>;
      let sandbox: string;
      let restoreHost: () => Promise<void> = async () => {};
      const sockets = new Set<WebSocket>();

      const call = async (
        method: string,
        path: string,
        options: { json?: unknown; headers?: Record<string, string> } = {},
      ) =>
        fetch(`${url}${path}`, {
          method,
          headers: {
            ...keyA,
            ...(options.json === undefined ? {} : { "content-type": "application/json" }),
            ...options.headers,
          },
          ...(options.json === undefined ? {} : { body: JSON.stringify(options.json) }),
        });
      const json = async <T = Record<string, unknown>>(res: Response | Promise<Response>) =>
        (await (await res).json()) as T;
      const exec = async (cmd: string, extra: Record<string, unknown> = {}) =>
        json<{ stdout: string; exit_code: number }>(
          call("POST", `/v1/sandboxes/${sandbox}/exec`, { json: { cmd, ...extra } }),
        );

      const streamUrl = (id = sandbox, query = "") =>
        `${url.replace(/^http/, "ws")}/v1/sandboxes/${id}/exec/stream${query}`;

      /** Opens the exec stream and sends `first` (a frame object, or raw data as it is). */
      const open = async (
        first?: Record<string, unknown> | Buffer | string,
        options: { headers?: Record<string, string>; id?: string; query?: string } = {},
      ) => {
        const ws = new WebSocket(streamUrl(options.id, options.query), {
          headers: options.headers ?? keyA,
        });
        sockets.add(ws);
        const client = new StreamClient(ws);
        await new Promise<void>((resolve, reject) => {
          ws.once("open", resolve);
          ws.once("error", reject);
        });
        if (first !== undefined)
          ws.send(
            Buffer.isBuffer(first) || typeof first === "string" ? first : JSON.stringify(first),
          );
        return client;
      };

      /** The HTTP answer to an upgrade the server refuses. */
      const refused = (options: {
        headers?: Record<string, string>;
        id?: string;
        query?: string;
      }) =>
        new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
          const ws = new WebSocket(streamUrl(options.id, options.query), {
            headers: options.headers ?? keyA,
          });
          sockets.add(ws);
          ws.once("open", () => reject(new Error("the upgrade was accepted")));
          ws.once("error", () => {});
          ws.once("unexpected-response", (_req, res) => {
            let text = "";
            res.on("data", (chunk: Buffer) => {
              text += chunk;
            });
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
          });
        });

      const create = async () => {
        const res = await call("POST", "/v1/sandboxes", {
          json: { template: TEMPLATE, memory_mb: 256, disk_size_mb: 128 },
        });
        expect(res.status, await res.clone().text()).toBe(201);
        return (await json<{ id: string }>(res)).id;
      };

      const processList = async () =>
        (
          await json<{ processes: { pid: number; tag: string | null; cmd: string }[] }>(
            call("GET", `/v1/sandboxes/${sandbox}/processes`),
          )
        ).processes;

      beforeAll(async () => {
        restoreHost = await keepHostFirewallState();
        dataDir = await mkdtemp(join(tmpdir(), "wrenn-exec-stream-"));
        agentDir = await mkdtemp(join(tmpdir(), "wrenn-exec-stream-agent-"));
        const config = loadConfig({
          WRENN_DATA_DIR: dataDir,
          WRENN_DEFAULT_TEMPLATE: TEMPLATE,
          WRENN_PORT: "0",
        });
        database = await engine.create();
        host = await startSingleHost(
          config,
          pino({ level: process.env.WRENN_TEST_LOG ?? "silent" }),
          {
            db: database.handle,
            agentDir,
            warmPool: [],
            reconcileIntervalMs: 1_000,
          },
        );
        await host.ready;
        url = host.http?.url ?? "";
        keyA = await newTeamKey(host.app);
        keyB = await newTeamKey(host.app);
        sandbox = await create();
      }, 120_000);

      afterAll(async () => {
        for (const ws of sockets) ws.terminate();
        if (host) {
          const runtime = host.embedded.agent.runtime;
          for (const s of runtime.list()) await runtime.destroy(s.id).catch(() => {});
          await host.close();
        }
        await database?.cleanup();
        const leaks = agentDir ? await leaksUnder(agentDir) : [];
        if (dataDir) await rm(dataDir, { recursive: true, force: true });
        if (agentDir && leaks.length === 0) await rm(agentDir, { recursive: true, force: true });
        await restoreHost();
        expect(leaks).toEqual([]);
      }, 120_000);

      it("streams stdout and stderr in order, then the exit, then closes 1000", async () => {
        const c = await open({
          type: "start",
          cmd: "echo one; sleep 0.05; echo two >&2; sleep 0.05; echo three; exit 3",
        });
        const start = await c.started();
        expect(start).toEqual({ type: "start", pid: expect.any(Number), tag: null });
        const { end, code } = await c.ended();
        expect(code).toBe(1000);
        expect(end).toMatchObject({ type: "end", exit_code: 3, exited: true, error: null });
        const outputs = c.frames.flatMap((f) =>
          "stream" in f ? [`${f.stream}:${f.data.toString()}`] : [],
        );
        expect(outputs).toEqual(["1:one\n", "2:two\n", "1:three\n"]);
        // Frame order: start first, end last.
        expect(c.frames[0]).toEqual({ json: start });
        expect(c.frames.at(-1)).toEqual({ json: end });
      });

      it.skipIf(!full)("feeds stdin and ends it with close_stdin (cat sees EOF)", async () => {
        const c = await open({ type: "start", cmd: "cat", stdin: true });
        // Sent before the start answer arrives: the server queues them in order.
        c.ws.send(Buffer.from("hello "));
        c.ws.send(Buffer.from("world"));
        c.send({ type: "close_stdin" });
        const { end } = await c.ended();
        expect(end).toMatchObject({ exit_code: 0, exited: true });
        expect(c.output(1)).toBe("hello world");
      });

      it.skipIf(!full)("runs a PTY whose size follows resize", async () => {
        const c = await open({
          type: "start",
          cmd: "id -un; stty size; read line; stty size",
          pty: { cols: 80, rows: 24 },
        });
        await c.started();
        await c.until(() => c.output(3).includes("24 80"), "the first size");
        c.send({ type: "resize", cols: 100, rows: 30 });
        c.ws.send(Buffer.from("go\r"));
        const { end } = await c.ended();
        expect(end).toMatchObject({ exit_code: 0 });
        expect(c.output(3)).toContain("30 100");
        expect(c.output(3)).toMatch(/^user\r?$/m); // the default user, not root
        expect(c.output(1)).toBe("");
      });

      it.skipIf(!full)("refuses resize without a PTY but keeps the stream", async () => {
        const c = await open({ type: "start", cmd: "cat", stdin: true });
        await c.started();
        c.send({ type: "resize", cols: 10, rows: 10 });
        await c.until(() => c.json("error").length > 0, "the error frame");
        expect(c.json("error")[0]).toMatchObject({ code: "invalid_argument" });
        c.ws.send(Buffer.from("still here"));
        c.send({ type: "close_stdin" });
        const { end } = await c.ended();
        expect(end).toMatchObject({ exit_code: 0 });
        expect(c.output(1)).toBe("still here");
      });

      it.skipIf(!full)("delivers signals", async () => {
        const c = await open({ type: "start", cmd: "sleep", args: ["60"] });
        await c.started();
        c.send({ type: "signal", signal: "SIGTERM" });
        const { end, code } = await c.ended();
        expect(code).toBe(1000);
        expect(end).toMatchObject({ exited: false });
        expect(String(end.status)).toMatch(/TERM|terminated|signal/i);
      });

      it.skipIf(!full)(
        "applies a kill sent before the start answer by a client that left at once",
        async () => {
          const marker = `/tmp/not-killed-${randomBytes(3).toString("hex")}`;
          const c = await open({ type: "start", cmd: `sleep 1; touch ${marker}` });
          // Kill, then leave, without waiting for the start answer.
          c.send({ type: "signal", signal: "SIGKILL" });
          c.ws.close(1000);
          await c.closed;
          await sleep(2_000);
          const check = await exec(`test -e ${marker} && echo ran || echo killed`);
          expect(check.stdout).toBe("killed\n");
        },
      );

      it("detaches on close and reattaches by tag and by pid; REST lists, feeds and closes", async () => {
        const tag = `bg-${randomBytes(3).toString("hex")}`;
        const first = await open({ type: "start", cmd: "cat", stdin: true, tag });
        const { pid } = await first.started();
        expect(first.json("start")[0]).toMatchObject({ tag });
        first.ws.close(1000);
        await first.closed;

        // Still running after the client left.
        expect(await processList()).toContainEqual(
          expect.objectContaining({ pid, tag, cmd: "/bin/sh" }),
        );

        const byTag = await open({ type: "connect", tag });
        expect(await byTag.started()).toEqual({ type: "start", pid, tag });
        byTag.ws.send(Buffer.from("after reattach\n"));
        await byTag.until(() => byTag.output(1) === "after reattach\n", "output after reattach");
        byTag.ws.close(1000);
        await byTag.closed;

        const byPid = await open({ type: "connect", pid });
        expect(await byPid.started()).toEqual({ type: "start", pid, tag });
        const stdin = await call("POST", `/v1/sandboxes/${sandbox}/processes/${pid}/stdin`, {
          json: { data: Buffer.from("via rest\n").toString("base64"), encoding: "base64" },
        });
        expect(stdin.status, await stdin.clone().text()).toBe(204);
        await byPid.until(() => byPid.output(1) === "via rest\n", "REST stdin on the stream");
        const close = await call("POST", `/v1/sandboxes/${sandbox}/processes/${pid}/close-stdin`);
        expect(close.status).toBe(204);
        const { end } = await byPid.ended();
        expect(end).toMatchObject({ exit_code: 0, exited: true });
        expect((await processList()).map((p) => p.pid)).not.toContain(pid);
      });

      it.skipIf(!full)(
        "signals over REST; unknown pids and bad bodies answer with codes",
        async () => {
          const c = await open({ type: "start", cmd: "sleep 60" });
          const { pid } = await c.started();
          c.ws.close();
          await c.closed;
          const sent = await call("POST", `/v1/sandboxes/${sandbox}/processes/${pid}/signal`, {
            json: { signal: "SIGKILL" },
          });
          expect(sent.status).toBe(204);
          const deadline = Date.now() + 10_000;
          while ((await processList()).some((p) => p.pid === pid)) {
            if (Date.now() > deadline) throw new Error("the killed process is still listed");
            await sleep(50);
          }
          const gone = await call("POST", `/v1/sandboxes/${sandbox}/processes/${pid}/signal`, {
            json: { signal: "SIGTERM" },
          });
          expect(gone.status).toBe(404);
          expect(await json(gone)).toMatchObject({ code: "not_found" });
          for (const [path, body, status] of [
            ["signal", { signal: "SIGHUP" }, 400],
            ["stdin", { data: "%%%", encoding: "base64" }, 400],
            ["stdin", { data: "x" }, 404],
            ["close-stdin", undefined, 404],
          ] as const) {
            const res = await call("POST", `/v1/sandboxes/${sandbox}/processes/${pid}/${path}`, {
              ...(body ? { json: body } : {}),
            });
            expect(res.status, `${path} ${JSON.stringify(body)}`).toBe(status);
          }
          expect(
            (
              await call("POST", `/v1/sandboxes/${sandbox}/processes/abc/signal`, {
                json: { signal: "SIGTERM" },
              })
            ).status,
          ).toBe(400);
        },
      );

      it.skipIf(!full)(
        "holds a fast writer while the client does not read (backpressure)",
        async () => {
          const MB = 32;
          const c = await open();
          c.ws.pause(); // read nothing: the server's socket buffer fills, then envd's, then the pipe
          c.send({
            type: "start",
            cmd: `dd if=/dev/zero bs=1M count=${MB} 2>/dev/null`,
            tag: "dd",
          });
          // Unheld, dd is done in a blink; held, it waits with most bytes unsent. Seen running
          // first (a busy host may take a while to start it), then still running a second on.
          const running = async () => (await processList()).some((p) => p.tag === "dd");
          const deadline = Date.now() + 10_000;
          while (!(await running()) && Date.now() < deadline) await sleep(50);
          await sleep(1_000);
          expect(await running()).toBe(true);
          c.ws.resume();
          const { end } = await c.ended();
          expect(end).toMatchObject({ exit_code: 0 });
          const received = c.frames.reduce((n, f) => n + ("stream" in f ? f.data.length : 0), 0);
          expect(received).toBe(MB * 1024 * 1024);
        },
      );

      it.skipIf(!full)("kills a command past timeout_ms: error timeout, close 4504", async () => {
        const c = await open({ type: "start", cmd: "sleep 60", timeout_ms: 200, tag: "slow" });
        const { pid } = await c.started();
        const { code } = await c.closed;
        expect(code).toBe(4504);
        expect(c.json("error")).toEqual([
          { type: "error", code: "timeout", message: expect.any(String) },
        ]);
        expect(c.json("end")).toEqual([]);
        expect((await processList()).map((p) => p.pid)).not.toContain(pid);
      });

      it.skipIf(!full)("answers malformed frames with error frames, never a crash", async () => {
        const firsts: [Buffer | string | Record<string, unknown>, number, RegExp][] = [
          ["not json", 4400, /JSON object/],
          [Buffer.from([1, 2, 3]), 4400, /first frame/],
          [{ type: "nope" }, 4400, /unknown frame type "nope"/],
          [{ type: "start" }, 4400, /cmd/],
          [{ type: "start", cmd: "true", pty: { cols: 0, rows: 5 } }, 4400, /pty\.cols/],
          [{ type: "connect" }, 4400, /pid or tag/],
          [{ type: "connect", pid: 999_999 }, 4404, /999999/],
          [Buffer.alloc(2 * 1024 * 1024), 4413, /1048576/],
        ];
        for (const [first, closeCode, message] of firsts) {
          const c = await open(first);
          const { code } = await c.closed;
          expect(code, JSON.stringify(c.json("error"))).toBe(closeCode);
          expect(c.json("error")).toEqual([
            { type: "error", code: expect.any(String), message: expect.stringMatching(message) },
          ]);
        }

        // After the start, a bad control frame is reported and the stream goes on.
        const c = await open({ type: "start", cmd: "cat", stdin: true });
        await c.started();
        for (const bad of ["{", "[]", '{"type":"dance"}', '{"type":"signal","signal":"SIGHUP"}'])
          c.ws.send(bad);
        c.send({ type: "start", cmd: "true" });
        await c.until(() => c.json("error").length === 5, "five error frames");
        expect(c.json("error").map((e) => e.code)).toEqual(Array(5).fill("invalid_argument"));
        c.ws.send(Buffer.from("ok"));
        c.send({ type: "close_stdin" });
        const { end, code } = await c.ended();
        expect([end.exit_code, code]).toEqual([0, 1000]);
        expect(c.output(1)).toBe("ok");

        // Past the WebSocket layer's own cap: cut by ws itself (1009), the server lives on.
        const huge = await open({ type: "start", cmd: "cat", stdin: true });
        await huge.started();
        huge.ws.send(Buffer.alloc(5 * 1024 * 1024));
        expect((await huge.closed).code).toBe(1009);

        // A command that cannot start ends with its error, as envd reports it.
        const missing = await open({ type: "start", cmd: "/no/such/binary", args: [] });
        const ended = await missing.ended();
        expect(ended.end).toMatchObject({ exit_code: 127, error: expect.any(String) });
        expect((await call("GET", "/health")).status).toBe(200);
      });

      it.skipIf(!full)(
        "refuses before the upgrade: bad key 401, other team 404, paused 409",
        async () => {
          expect(await refused({ headers: { "x-api-key": "wrn_nope" } })).toMatchObject({
            status: 401,
            body: { code: "unauthenticated" },
          });
          expect(await refused({ headers: {} })).toMatchObject({ status: 401 });
          expect(await refused({ headers: keyB })).toMatchObject({
            status: 404,
            body: { code: "not_found" },
          });
          expect(await refused({ id: "nosuchsandbox" })).toMatchObject({ status: 404 });
          // Browsers cannot set WebSocket headers: a single-use ticket in the query, never the key.
          expect(
            await refused({
              headers: {},
              query: `?api_key=${encodeURIComponent(keyA["x-api-key"] ?? "")}`,
            }),
          ).toMatchObject({ status: 401 });
          const issued = await call("POST", `/v1/sandboxes/${sandbox}/ticket`);
          expect(issued.status).toBe(201);
          const { ticket } = (await issued.json()) as { ticket: string };
          const viaTicket = await open(
            { type: "start", cmd: "echo q" },
            { headers: {}, query: `?ticket=${encodeURIComponent(ticket)}` },
          );
          expect((await viaTicket.ended()).end).toMatchObject({ exit_code: 0 });
          expect(viaTicket.output(1)).toBe("q\n");
          // Spent: the same ticket opens nothing a second time.
          expect(
            await refused({ headers: {}, query: `?ticket=${encodeURIComponent(ticket)}` }),
          ).toMatchObject({ status: 401 });
          // A plain GET (no upgrade) says what it is.
          const plain = await call("GET", `/v1/sandboxes/${sandbox}/exec/stream`);
          expect(plain.status).toBe(400);

          expect((await call("POST", `/v1/sandboxes/${sandbox}/pause`)).status).toBe(200);
          try {
            expect(await refused({})).toMatchObject({
              status: 409,
              body: { code: "failed_precondition" },
            });
          } finally {
            expect((await call("POST", `/v1/sandboxes/${sandbox}/resume`)).status).toBe(200);
          }
        },
      );

      it.skipIf(!full)(
        "ends the stream with unavailable (4503) when the sandbox goes away",
        async () => {
          const doomed = await create();
          const c = await open({ type: "start", cmd: "sleep 60" }, { id: doomed });
          await c.started();
          expect((await call("DELETE", `/v1/sandboxes/${doomed}`)).status).toBe(204);
          const { code } = await c.closed;
          expect([code, c.json("error")[0]?.code]).toEqual([4503, "unavailable"]);
        },
      );

      it("watches a directory over SSE and stops envd's watch on disconnect", async () => {
        const dir = `/tmp/watch-${randomBytes(3).toString("hex")}`;
        expect((await exec(`mkdir -p ${dir}/sub`)).exit_code).toBe(0);
        // inotify watches held in the sandbox, counted as root (envd's included).
        const watches = async () =>
          Number(
            (
              await exec("cat /proc/[0-9]*/fdinfo/* 2>/dev/null | grep -c '^inotify' || true", {
                user: "root",
              })
            ).stdout.trim(),
          );
        const before = await watches();

        const abort = new AbortController();
        const res = await fetch(
          `${url}/v1/sandboxes/${sandbox}/files/watch?path=${dir}&recursive=true`,
          { headers: { ...keyA, accept: "text/event-stream" }, signal: abort.signal },
        );
        expect(res.status).toBe(200);
        expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
        const events: { event: string; data: Record<string, unknown> }[] = [];
        let wake = () => {};
        const reading = (async () => {
          const decoder = new TextDecoder();
          let buffered = "";
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            buffered += decoder.decode(chunk, { stream: true });
            let end = buffered.indexOf("\n\n");
            while (end >= 0) {
              const block = buffered.slice(0, end);
              buffered = buffered.slice(end + 2);
              const event = /^event: (.*)$/m.exec(block)?.[1];
              const data = /^data: (.*)$/m.exec(block)?.[1];
              if (event && data) events.push({ event, data: JSON.parse(data) });
              wake();
              end = buffered.indexOf("\n\n");
            }
          }
        })().catch(() => {});
        const until = async (ready: () => boolean, what: string) => {
          const deadline = Date.now() + 10_000;
          while (!ready()) {
            if (Date.now() > deadline) throw new Error(`${what}: ${JSON.stringify(events)}`);
            await new Promise<void>((resolve) => {
              wake = resolve;
              setTimeout(resolve, 100);
            });
          }
        };
        await until(() => events[0]?.event === "ready", "ready first");
        expect(await watches()).toBeGreaterThan(before);

        await exec(`echo x > ${dir}/a.txt; echo y >> ${dir}/sub/b.txt; sleep 0.1; rm ${dir}/a.txt`);
        const seen = (type: string, name: string) =>
          events.some((e) => e.event === "fs" && e.data.type === type && e.data.name === name);
        await until(
          () => seen("create", "a.txt") && seen("create", "sub/b.txt") && seen("remove", "a.txt"),
          "create and remove events",
        );
        await exec(`echo more >> ${dir}/sub/b.txt`);
        await until(() => seen("write", "sub/b.txt"), "a write event");

        abort.abort();
        await reading;
        const deadline = Date.now() + 10_000;
        while ((await watches()) > before) {
          if (Date.now() > deadline) throw new Error("envd still watches after the disconnect");
          await sleep(100);
        }

        const missing = await call("GET", `/v1/sandboxes/${sandbox}/files/watch?path=/nope`);
        expect(missing.status).toBe(404);
        expect(await json(missing)).toMatchObject({ code: "not_found" });
        await exec(`touch ${dir}/file`);
        const notDir = await call("GET", `/v1/sandboxes/${sandbox}/files/watch?path=${dir}/file`);
        expect(notDir.status).toBe(400);
        const other = await call("GET", `/v1/sandboxes/${sandbox}/files/watch?path=${dir}`, {
          headers: keyB,
        });
        expect(other.status).toBe(404);
      });

      it("reports metrics", async () => {
        const res = await call("GET", `/v1/sandboxes/${sandbox}/metrics`);
        expect(res.status, await res.clone().text()).toBe(200);
        const m = await json<Record<string, number | string>>(res);
        expect(m).toEqual({
          cpu_used_pct: expect.any(Number),
          cpu_count: expect.any(Number),
          mem_used_mb: expect.any(Number),
          mem_total_mb: expect.any(Number),
          disk_used_mb: expect.any(Number),
          disk_total_mb: expect.any(Number),
          timestamp: expect.any(String),
        });
        expect(m.mem_total_mb).toBe(256);
        expect(Number(m.mem_used_mb)).toBeGreaterThan(0);
        expect(Number(m.disk_total_mb)).toBeGreaterThan(0);
        expect(
          (await call("GET", `/v1/sandboxes/${sandbox}/metrics`, { headers: keyB })).status,
        ).toBe(404);
      });

      it.skipIf(!full)("measures the exec round trip over the WebSocket", async () => {
        // Interleaved with POST /exec so both see the same load; figures, not assertions.
        const onSocket: number[] = [];
        const withUpgrade: number[] = [];
        const sync: number[] = [];
        for (let i = 0; i < 30; i++) {
          const t0 = performance.now();
          const c = await open();
          const t1 = performance.now();
          c.send({ type: "start", cmd: "true", args: [] });
          await c.until(() => c.json("end").length > 0, "end");
          const t2 = performance.now();
          onSocket.push(t2 - t1);
          withUpgrade.push(t2 - t0);
          await c.closed;
          const t3 = performance.now();
          expect((await exec("true", { args: [] })).exit_code).toBe(0);
          sync.push(performance.now() - t3);
        }
        const p50 = (xs: number[]) =>
          ([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0).toFixed(2);
        console.info(
          `[exec-stream] start true → end p50 ${p50(onSocket)} ms on an open socket, ` +
            `${p50(withUpgrade)} ms with the upgrade; POST /exec p50 ${p50(sync)} ms`,
        );
        expect(onSocket).toHaveLength(30);
      });
    },
  );
}
