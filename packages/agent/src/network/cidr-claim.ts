import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { AgentError } from "../errors.js";
import { runCommand } from "../host/index.js";
import { isStampAlive, ownStamp, type ProcessStamp } from "../lock/dir-lock.js";
import { parseCidr } from "./address-pool.js";
import { hostIfName } from "./names.js";

/** Where every agent on this host records the sandbox range it uses (tmpfs: gone at reboot). */
export const CIDR_CLAIMS_DIR = "/run/wrenn/cidrs";

interface Claim extends ProcessStamp {
  cidr: string;
  agent_dir: string;
}

export interface CidrClaim {
  release(): Promise<void>;
}

export interface ClaimCidrOptions {
  cidr: string;
  agentDir: string;
  /** Resource ids of this agent's own sandboxes: routes on their veths are ours. */
  ownResourceIds: readonly string[];
  /** Default {@link CIDR_CLAIMS_DIR}. */
  dir?: string;
}

/**
 * Claims a sandbox range for this agent, refusing (failed_precondition) one that overlaps the
 * claim of another live agent or a route on this host that is not one of this agent's veths.
 * The claim is written before the others are read, so of two agents starting at once with
 * overlapping ranges at least one refuses. Claims of dead processes are removed.
 */
export async function claimSandboxCidr(opts: ClaimCidrOptions): Promise<CidrClaim> {
  const dir = opts.dir ?? CIDR_CLAIMS_DIR;
  const range = toRange(opts.cidr);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const stamp = await ownStamp();
  // One file per agent (a process may run several, each with its own directory).
  const file = join(dir, `${stamp.pid}-${stamp.start_time}-${randomBytes(4).toString("hex")}.json`);
  const claim: Claim = { ...stamp, cidr: opts.cidr, agent_dir: opts.agentDir };
  const tmp = join(dir, `.${randomBytes(4).toString("hex")}.tmp`);
  await writeFile(tmp, `${JSON.stringify(claim)}\n`);
  await rename(tmp, file);
  const release = async () => void (await rm(file, { force: true }));
  try {
    for (const name of await readdir(dir)) {
      if (!name.endsWith(".json") || join(dir, name) === file) continue;
      const other = await readClaim(join(dir, name));
      if (!other || !(await isStampAlive(other))) {
        await rm(join(dir, name), { force: true });
        continue;
      }
      if (overlaps(range, toRange(other.cidr))) {
        throw new AgentError(
          "failed_precondition",
          `sandbox range ${opts.cidr} overlaps ${other.cidr}, used by the agent with pid ${other.pid} (${other.agent_dir}); pick another WRENN_SANDBOX_CIDR`,
        );
      }
    }
    const own = new Set(opts.ownResourceIds.map(hostIfName));
    for (const route of await ipv4Routes()) {
      if (route.prefixLength === 0 || own.has(route.dev)) continue;
      if (overlaps(range, { start: route.start, size: 2 ** (32 - route.prefixLength) })) {
        throw new AgentError(
          "failed_precondition",
          `sandbox range ${opts.cidr} overlaps the route ${route.text} on this host; pick another WRENN_SANDBOX_CIDR`,
        );
      }
    }
  } catch (err) {
    await release();
    throw err;
  }
  return { release };
}

interface Range {
  start: number;
  size: number;
}

function toRange(cidr: string): Range {
  const parsed = parseCidr(cidr);
  return { start: parsed.network, size: 2 ** (32 - parsed.prefixLength) };
}

function overlaps(a: Range, b: Range): boolean {
  return a.start < b.start + b.size && b.start < a.start + a.size;
}

async function readClaim(file: string): Promise<Claim | undefined> {
  try {
    const raw = JSON.parse(await readFile(file, "utf8")) as Partial<Claim>;
    if (typeof raw.pid !== "number" || typeof raw.start_time !== "number") return undefined;
    if (typeof raw.cidr !== "string") return undefined;
    toRange(raw.cidr);
    return raw as Claim;
  } catch {
    return undefined;
  }
}

/** `ip -4 route` of the main table: destination and device of each route. */
async function ipv4Routes(): Promise<
  { start: number; prefixLength: number; dev: string; text: string }[]
> {
  const { stdout } = await runCommand("ip", ["-4", "-o", "route", "show"]);
  const routes = [];
  for (const line of stdout.split("\n")) {
    const words = line.trim().split(/\s+/);
    const dest = words[0];
    if (!dest || dest === "default") continue;
    const [address = "", prefix = "32"] = dest.split("/");
    const prefixLength = Number(prefix);
    const octets = address.split(".").map(Number);
    if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o))) continue;
    const size = 2 ** (32 - prefixLength);
    const value = octets.reduce((acc, o) => acc * 256 + o, 0);
    const devAt = words.indexOf("dev");
    routes.push({
      start: value - (value % size),
      prefixLength,
      dev: devAt >= 0 ? (words[devAt + 1] ?? "") : "",
      text: line.trim(),
    });
  }
  return routes;
}
