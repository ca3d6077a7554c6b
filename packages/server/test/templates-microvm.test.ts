import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { microVmUnavailable } from "@wrenn/agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTemplateHost, type TemplateHost } from "./helpers/template-host.js";

// A template built from a recipe (in namespace build sandboxes, as always) started on the
// microVM runtime: its image stacks the template's whole layer chain, the VM is booted once and
// its memory snapshotted only after the start command passed its ready check, and every
// sandbox restores that snapshot with the start command's process already running. Real QEMU
// (TCG here): one case.

const TEMPLATE = "test-minimal";
// Records, once, a nonce, its pid and when it started; serves them with a per-process hit count.
const SERVER_JS = `const started = { nonce: require("crypto").randomUUID(), pid: process.pid, at: Date.now() };
require("fs").writeFileSync("/tmp/started.json", JSON.stringify(started));
let hits = 0;
require("http").createServer((q, s) => s.end(JSON.stringify({ ...started, hits: ++hits }))).listen(8080);
`;
const sha256 = (data: string) => createHash("sha256").update(data).digest("hex");

const skip = await microVmUnavailable();
if (skip) console.warn(`templates-microvm skipped: ${skip}`);

describe.skipIf(skip)(
  "a template with a start command on the microVM runtime",
  {
    timeout: 600_000,
  },
  () => {
    let th: TemplateHost;

    beforeAll(async () => {
      th = await startTemplateHost({
        template: TEMPLATE,
        templateCache: process.env.WRENN_TEST_TEMPLATE_CACHE,
        microvm: true,
      });
    }, 300_000);

    // Every sandbox (VMs included) goes, then the server; nothing may be left under the agent.
    afterAll(async () => expect(await th?.close()).toEqual([]), 180_000);

    it("restores the start command running from the memory snapshot taken after its ready check", async () => {
      const { events, last } = await th.build({
        name: "mvweb",
        memory_mb: 256,
        disk_size_mb: 512,
        files: { [sha256(SERVER_JS)]: Buffer.from(SERVER_JS).toString("base64") },
        steps: [
          { type: "run", cmd: "echo from the recipe > /opt/marker", user: "root" },
          {
            type: "copy",
            dest: "/opt/app/server.js",
            files: [{ path: "", sha256: sha256(SERVER_JS) }],
            user: "root",
          },
          {
            type: "start",
            cmd: "node /opt/app/server.js",
            ready: { port: 8080 },
            ready_timeout_ms: 60_000,
          },
        ],
      });
      expect(last, JSON.stringify(events.slice(-3))).toMatchObject({
        type: "done",
        template: { name: "mvweb", start_cmd: "node /opt/app/server.js" },
      });
      const templateId = (last.template as { id: string }).id;

      const ids: string[] = [];
      const create = async () => {
        const started = Date.now();
        const created = await th.call("POST", "/v1/sandboxes", {
          template: "mvweb",
          runtime: "microvm",
        });
        expect(created.status, await created.clone().text()).toBe(201);
        const body = (await created.json()) as { id: string; runtime: string; memory_mb: number };
        ids.push(body.id);
        // What the template recorded is locked here too.
        expect(body).toMatchObject({ runtime: "microvm", memory_mb: 256 });
        // At hand-out: the template's files, and the start command's port answering (first try).
        const served = await th.exec(body.id, "cat /opt/marker; wget -qO- http://127.0.0.1:8080/");
        expect(served.exit_code, served.stderr).toBe(0);
        const [marker, json] = served.stdout.split("\n");
        expect(marker).toBe("from the recipe");
        const state = JSON.parse(json ?? "") as {
          nonce: string;
          pid: number;
          at: number;
          hits: number;
        };
        const file = await th.exec(body.id, "cat /tmp/started.json");
        expect(JSON.parse(file.stdout)).toEqual({
          nonce: state.nonce,
          pid: state.pid,
          at: state.at,
        });
        const { processes } = (await (
          await th.call("GET", `/v1/sandboxes/${body.id}/processes`)
        ).json()) as {
          processes: { tag: string | null; pid: number; args: string[] }[];
        };
        expect(processes.find((p) => p.tag === "start")?.args.at(-1)).toBe(
          "node /opt/app/server.js",
        );
        return { started, state };
      };

      try {
        // The first create boots the template once (memory snapshot), then restores it.
        const a = await create();
        const b = await create();
        // One process, started once before the snapshot: the same nonce (drawn at its start),
        // pid and start time in both, that start before the second create was asked for; each
        // sandbox has its own copy of its memory (its first request in each).
        expect(b.state).toEqual(a.state);
        expect(a.state.hits).toBe(1);
        expect(b.state.at).toBeLessThan(b.started);
        for (const id of ids)
          expect((await th.call("DELETE", `/v1/sandboxes/${id}`)).status).toBe(204);
        ids.length = 0;
      } finally {
        for (const id of ids) await th.call("DELETE", `/v1/sandboxes/${id}`).catch(() => {});
      }

      // Deleting the template takes its microVM image and ready snapshot with it.
      const vmDir = join(th.agentDir, "microvm");
      const made = async () =>
        [
          ...(await readdir(join(vmDir, "images")).catch(() => [] as string[])),
          ...(await readdir(join(vmDir, "snapshots")).catch(() => [] as string[])),
        ].filter((f) => f.includes(templateId));
      expect((await made()).length).toBeGreaterThanOrEqual(2);
      expect((await th.call("DELETE", "/v1/templates/mvweb")).status).toBe(204);
      for (let i = 0; i < 100 && (await made()).length > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await made()).toEqual([]);
    });
  },
);
