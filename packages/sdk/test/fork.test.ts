import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConflictError, InvalidArgumentError, NotFoundError, Sandbox } from "../src/index.js";
import { SMALL, startTestServer, type TestServer } from "./helpers/server.js";

// sandbox.fork() against a real single-host server with real test-minimal sandboxes.

let server: TestServer;
let conn: { apiUrl: string; apiKey: string };

beforeAll(async () => {
  server = await startTestServer();
  conn = { apiUrl: server.url, apiKey: server.apiKey };
});

afterAll(async () => {
  await server?.close();
});

describe("Sandbox.fork", () => {
  it("makes sandboxes with the source's files that then go their own ways", async () => {
    const source = await Sandbox.create({ ...conn, ...SMALL, metadata: { suite: "fork" } });
    await source.files.write("/home/user/state.txt", "at the fork");
    const forks = await source.fork(2);
    try {
      expect(forks).toHaveLength(2);
      for (const f of forks) {
        expect(await f.files.read("/home/user/state.txt")).toBe("at the fork");
        expect((await f.getInfo()).metadata).toEqual({
          suite: "fork",
          forked_from: source.sandboxId,
        });
      }
      for (const s of [source, ...forks]) await s.files.write("/home/user/state.txt", s.sandboxId);
      for (const s of [source, ...forks]) {
        expect(await s.files.read("/home/user/state.txt")).toBe(s.sandboxId);
      }
      await expect(source.fork(0)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(source.fork(11)).rejects.toBeInstanceOf(InvalidArgumentError);
      await forks[0]!.pause();
      await expect(forks[0]!.fork()).rejects.toBeInstanceOf(ConflictError);
    } finally {
      for (const s of [...forks, source]) await s.kill();
    }
    await expect(source.fork()).rejects.toBeInstanceOf(NotFoundError);
  });
});
