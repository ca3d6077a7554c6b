import { mkdir, readdir, rename, rm } from "node:fs/promises";
import type { Logger } from "pino";
import { AgentError } from "../errors.js";
import { createSandboxDisk, destroySandboxDisk, partialName } from "./disk.js";

export interface DiskPoolOptions {
  /**
   * Directory of ready disks: on the same filesystem as the sandbox dirs (taking one is a
   * rename), and passed in `keepDirs` to listStorageDebris.
   */
  dir: string;
  /** Disks kept ready per size (default 2). */
  readyPerSize?: number;
  /**
   * Distinct sizes kept ready (default 4): the most recently asked for. Any tenant can ask for
   * any size, so without it the pool grows by readyPerSize disks with every new size.
   */
  maxSizes?: number;
  /**
   * Awaited before each disk a refill makes: the runtime's creates under way come first (mkfs
   * and the loop mount would take the CPU and the spawns from the create that took a disk).
   */
  yieldTo?: () => Promise<void>;
  log?: Logger;
}

/**
 * Sandbox disks made ahead of time: formatted, loop-mounted, with upper/ and work/. Taking one
 * renames its directory to the sandbox's (mounts follow the rename), so a create skips mkfs and
 * the loop mount, about 20–40 ms here. Each ready disk holds a loop device and a mount.
 */
export class DiskPool {
  readonly dir: string;
  readonly readyPerSize: number;
  readonly maxSizes: number;
  /** Sizes asked for, least recent first; at most maxSizes. */
  readonly #recent: number[] = [];
  readonly #log: Logger | undefined;
  readonly #yieldTo: (() => Promise<void>) | undefined;
  /** Refills run one at a time: they compete with sandbox creates for the same cores. */
  #refilling: Promise<void> = Promise.resolve();
  readonly #queued = new Set<number>();
  /** Set by clear(): a take() still in flight at shutdown must not make disks nobody removes. */
  #closed = false;

  constructor(options: DiskPoolOptions) {
    this.dir = options.dir;
    this.readyPerSize = options.readyPerSize ?? 2;
    this.maxSizes = options.maxSizes ?? 4;
    this.#log = options.log;
    this.#yieldTo = options.yieldTo;
  }

  /** Destroys every disk in the pool, ready or half made (agent start: nothing is trusted). */
  async prune(): Promise<AgentError[]> {
    this.#closed = false;
    return this.#destroyAll();
  }

  async #destroyAll(): Promise<AgentError[]> {
    await this.settled();
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const errors: AgentError[] = [];
    for (const name of names) errors.push(...(await destroySandboxDisk(`${this.dir}/${name}`)));
    return errors;
  }

  /** Names of the ready disks of `sizeMb`. */
  async ready(sizeMb: number): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names.filter((n) => n.startsWith(`${sizeMb}mb-`) && !n.includes(".partial-"));
  }

  /**
   * Moves a ready disk of `sizeMb` to `dest` (which must not exist). False when none is ready.
   * Either way a background refill starts.
   */
  async take(sizeMb: number, dest: string): Promise<boolean> {
    try {
      for (const name of await this.ready(sizeMb)) {
        try {
          await rename(`${this.dir}/${name}`, dest);
          return true;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === "EEXIST" || code === "ENOTEMPTY") {
            throw new AgentError("already_exists", `${dest} already exists`);
          }
          // ENOENT: a concurrent create took it first.
          if (code !== "ENOENT") throw AgentError.from(err);
        }
      }
      return false;
    } finally {
      this.fill(sizeMb);
    }
  }

  /** Tops up `sizeMb` in the background; `settled()` waits for it. */
  fill(sizeMb: number): void {
    if (this.#closed) return;
    this.#touch(sizeMb);
    if (this.#queued.has(sizeMb)) return;
    this.#queued.add(sizeMb);
    this.#refilling = this.#refilling
      .then(async () => {
        this.#queued.delete(sizeMb);
        await mkdir(this.dir, { recursive: true });
        for (let n = (await this.ready(sizeMb)).length; n < this.readyPerSize; n++) {
          await this.#yieldTo?.();
          if (this.#closed) return;
          const entry = `${this.dir}/${sizeMb}mb-${Date.now()}-${n}`;
          const partial = partialName(entry);
          await createSandboxDisk({ dir: partial, diskSizeMb: sizeMb });
          await rename(partial, entry);
        }
      })
      .catch((err: unknown) => {
        this.#log?.warn({ err, sizeMb }, "disk pool: refill failed");
      });
  }

  /** Marks `sizeMb` most recent; the least recent size past maxSizes loses its ready disks. */
  #touch(sizeMb: number): void {
    const at = this.#recent.indexOf(sizeMb);
    if (at >= 0) this.#recent.splice(at, 1);
    this.#recent.push(sizeMb);
    if (this.#recent.length <= this.maxSizes) return;
    const evicted = this.#recent.shift() as number;
    this.#refilling = this.#refilling
      .then(async () => {
        // Asked for again meanwhile: it is among the recent ones once more.
        if (this.#recent.includes(evicted)) return;
        for (const name of await this.ready(evicted)) {
          const errors = await destroySandboxDisk(`${this.dir}/${name}`);
          if (errors.length > 0)
            this.#log?.warn({ errors, sizeMb: evicted }, "disk pool: evict failed");
        }
      })
      .catch((err: unknown) => {
        this.#log?.warn({ err, sizeMb: evicted }, "disk pool: evict failed");
      });
  }

  /** Waits for background refills (tests, shutdown). */
  settled(): Promise<void> {
    return this.#refilling;
  }

  /** Destroys every ready disk and the pool dir; no refill starts after it (until prune()). */
  async clear(): Promise<AgentError[]> {
    this.#closed = true;
    const errors = await this.#destroyAll();
    await rm(this.dir, { recursive: true, force: true });
    return errors;
  }
}
