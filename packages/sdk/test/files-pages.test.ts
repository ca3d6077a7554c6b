import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "../src/index.js";
import { SMALL, startTestServer, type TestServer } from "./helpers/server.js";

// Issue #13, unbounded structures: a directory listing to depth 16 comes in pages (limit +
// cursor) from the Wrenn API, on a real tree 16 levels deep and 2,500 files wide; envd's own
// (E2B) protocol is unchanged. Needs root, like every test of a real single-host server.

const root = process.getuid?.() === 0;
const WIDE = 2_500;
const DEEP = 16;

describe.skipIf(!root)("files.listPages", { timeout: 120_000 }, () => {
  let server: TestServer;
  let sandbox: Sandbox;
  /** Every path the tree holds, as `find` sees it. */
  let expected: string[];

  const get = async (query: string) => {
    const res = await fetch(
      `${server.url}/v1/sandboxes/${sandbox.sandboxId}/files/list?path=/tmp/t&${query}`,
      { headers: { "x-api-key": server.apiKey } },
    );
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    server = await startTestServer();
    sandbox = await Sandbox.create({ apiUrl: server.url, apiKey: server.apiKey, ...SMALL });
    const chain = Array.from({ length: DEEP - 1 }, (_, i) => `d${i}`).join("/");
    const made = await sandbox.commands.run(
      `mkdir -p /tmp/t/wide /tmp/t/${chain} && cd /tmp/t/wide && seq 1 ${WIDE} | xargs touch ` +
        `&& touch /tmp/t/${chain}/leaf && find /tmp/t -mindepth 1`,
    );
    expect(made.exitCode).toBe(0);
    expected = made.stdout.trim().split("\n").sort();
  }, 120_000);
  afterAll(async () => {
    await server?.close();
  });

  it("walks a deep and wide tree a page at a time, every entry once, in path order", async () => {
    const pages: string[][] = [];
    for await (const page of sandbox.files.listPages("/tmp/t", { depth: DEEP, limit: 700 }).pages())
      pages.push(page.map((e) => e.path));
    expect(pages.length).toBe(Math.ceil(expected.length / 700));
    for (const page of pages) expect(page.length).toBeLessThanOrEqual(700);
    expect(pages.flat()).toEqual(expected);
    // The leaf 16 levels down is in it; `list` fetches the pages itself.
    expect(expected.some((p) => p.endsWith("/leaf"))).toBe(true);
    expect((await sandbox.files.list("/tmp/t", { depth: DEEP })).map((e) => e.path)).toEqual(
      expected,
    );
  });

  it("answers at most 1000 entries by default, and refuses bad pages clearly", async () => {
    const first = await get(`depth=${DEEP}`);
    expect(first.status).toBe(200);
    expect((first.body.entries as unknown[]).length).toBe(1000);
    expect(typeof first.body.next_cursor).toBe("string");
    for (const query of ["limit=0", "limit=1001", "cursor=not-a-cursor", "cursor=Lw%3D%3D"]) {
      const bad = await get(query);
      expect(bad.status, query).toBe(400);
      expect(bad.body).toMatchObject({ code: "invalid_argument" });
    }
  });
});
