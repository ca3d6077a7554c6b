import { createSocket, type Socket } from "node:dgram";
import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import { AgentError } from "../../errors.js";
import { type DnsQuestion, errorReply, parseAnswersA, parseQuestion } from "./dns-packet.js";
import type { ResolvedAddress, ResolvedSet } from "./nft-egress.js";
import { type EgressPolicy, nameMatches } from "./rules.js";

export interface Upstream {
  address: string;
  port: number;
}

/** Programs cache answers past their TTL: an allowed address stays in the set at least this. */
const MIN_TTL_SEC = 120;
const MAX_TTL_SEC = 86_400;
const UPSTREAM_TIMEOUT_MS = 4000;

/** "a.b.c.d" or "a.b.c.d:port". */
export function parseUpstream(text: string): Upstream {
  const m = /^(\d+\.\d+\.\d+\.\d+)(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m)
    throw new AgentError("invalid_argument", `WRENN_DNS_UPSTREAM must be ipv4[:port]: ${text}`);
  return { address: m[1]!, port: m[2] ? Number(m[2]) : 53 };
}

/** WRENN_DNS_UPSTREAM, else the first IPv4 nameserver of /etc/resolv.conf. */
export async function upstreamFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<Upstream> {
  if (env.WRENN_DNS_UPSTREAM?.trim()) return parseUpstream(env.WRENN_DNS_UPSTREAM);
  const conf = await readFile("/etc/resolv.conf", "utf8").catch(() => "");
  const m = /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/m.exec(conf);
  if (!m) {
    throw new AgentError(
      "failed_precondition",
      "no IPv4 nameserver in /etc/resolv.conf for sandbox DNS: set WRENN_DNS_UPSTREAM",
    );
  }
  return { address: m[1]!, port: 53 };
}

export interface SandboxDnsOptions {
  /** The sandbox's gateway (host side of its veth): the forwarder listens there. */
  listenAddress: string;
  /** Only queries from here are answered. */
  sandboxAddress: string;
  upstream: Upstream;
  policy: EgressPolicy;
  /** Puts resolved addresses in the sandbox's sets; the answer waits for it. */
  onResolved: (entries: ResolvedAddress[]) => Promise<void>;
  log?: Logger;
}

/**
 * The DNS of one sandbox with egress rules: a UDP socket on its gateway, forwarding to the
 * upstream resolver. Names it denies get NXDOMAIN (their addresses go to the deny set); the
 * addresses of allowed names go to the allow set before the answer is sent, so a connection
 * right after the lookup passes, and nothing else does in allowlist mode.
 */
export class SandboxDns {
  policy: EgressPolicy;
  readonly #socket: Socket;
  readonly #opts: SandboxDnsOptions;
  /** name → address → expiry (ms): to refill the sets when the rules change. */
  readonly #resolved = new Map<string, Map<string, number>>();

  private constructor(socket: Socket, opts: SandboxDnsOptions) {
    this.#socket = socket;
    this.#opts = opts;
    this.policy = opts.policy;
    socket.on("message", (msg, rinfo) => {
      if (rinfo.address !== opts.sandboxAddress) return;
      void this.#answer(msg, rinfo.port).catch((err: unknown) =>
        opts.log?.warn({ err, listen: opts.listenAddress }, "sandbox dns: query failed"),
      );
    });
    socket.on("error", (err) => opts.log?.warn({ err }, "sandbox dns: socket error"));
  }

  static async start(opts: SandboxDnsOptions): Promise<SandboxDns> {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      // Port 0: a port of its own, so no DNS server of the host is in the way.
      socket.bind(0, opts.listenAddress, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    return new SandboxDns(socket, opts);
  }

  get port(): number {
    return this.#socket.address().port;
  }

  /** The gateway address it listens on. */
  get address(): string {
    return this.#opts.listenAddress;
  }

  close(): void {
    this.#socket.close();
  }

  /** Which set addresses of `name` belong in under the current rules (deny wins). */
  setFor(name: string): ResolvedSet | undefined {
    if (nameMatches(this.policy.denyNames, name)) return "deny_dns";
    if (nameMatches(this.policy.allowNames, name)) return "allow_dns";
    return undefined;
  }

  /** What the sets should hold under the current rules, from answers still within their TTL. */
  seeds(): ResolvedAddress[] {
    const now = Date.now();
    const out: ResolvedAddress[] = [];
    for (const [name, addresses] of this.#resolved) {
      const set = this.setFor(name);
      for (const [address, expires] of addresses) {
        if (expires <= now) addresses.delete(address);
        else if (set) out.push({ set, address, ttlSec: Math.ceil((expires - now) / 1000) });
      }
      if (addresses.size === 0) this.#resolved.delete(name);
    }
    return out;
  }

  async #answer(query: Buffer, port: number): Promise<void> {
    const question = parseQuestion(query);
    if (!question) return;
    const reply = await this.#forward(query, question);
    const set = this.setFor(question.name);
    const answers = parseAnswersA(reply);
    if (set && answers.length > 0) {
      const now = Date.now();
      const known = this.#resolved.get(question.name) ?? new Map<string, number>();
      this.#resolved.set(question.name, known);
      const entries = answers.map(({ address, ttl }) => {
        const ttlSec = Math.min(MAX_TTL_SEC, Math.max(MIN_TTL_SEC, ttl));
        known.set(address, now + ttlSec * 1000);
        return { set, address, ttlSec };
      });
      await this.#opts.onResolved(entries);
    }
    const out = set === "deny_dns" ? errorReply(query, question, 3) : reply;
    this.#socket.send(out, port, this.#opts.sandboxAddress);
  }

  /** The upstream's reply, or SERVFAIL when it does not answer in time. */
  #forward(query: Buffer, question: DnsQuestion): Promise<Buffer> {
    const { upstream } = this.#opts;
    return new Promise((resolve) => {
      const socket = createSocket("udp4");
      let settled = false;
      const done = (reply: Buffer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.close();
        resolve(reply);
      };
      const timer = setTimeout(() => done(errorReply(query, question, 2)), UPSTREAM_TIMEOUT_MS);
      socket.on("message", (msg, rinfo) => {
        if (
          rinfo.address === upstream.address &&
          msg.length >= 2 &&
          msg.readUInt16BE(0) === question.id
        ) {
          done(msg);
        }
      });
      socket.on("error", () => done(errorReply(query, question, 2)));
      socket.send(query, upstream.port, upstream.address);
    });
  }
}
