import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream } from "node:stream/web";
import { Args } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { attach } from "../../services/sandboxes.js";

export default class FilesCat extends ApiCommand<typeof FilesCat> {
  static override summary = "Print a file from a sandbox (bytes as they are).";
  static override args = {
    id: Args.string({ description: "Sandbox id.", required: true }),
    path: Args.string({ description: "File path.", required: true }),
  };

  async run(): Promise<void> {
    const sandbox = await attach(this.args.id, await this.connection());
    const stream = await sandbox.files.read(this.args.path, { format: "stream" });
    await pipeline(Readable.fromWeb(stream as ReadableStream<Uint8Array>), process.stdout, {
      end: false,
    });
  }
}
