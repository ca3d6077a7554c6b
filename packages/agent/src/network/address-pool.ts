import { AgentError } from "../errors.js";

export const DEFAULT_SANDBOX_CIDR = "10.213.0.0/16";

/** The /30 of one sandbox: the host side of its veth is .1, the sandbox side .2. */
export interface SandboxAddresses {
  slot: number;
  hostAddress: string;
  sandboxAddress: string;
  prefixLength: 30;
}

export interface Ipv4Cidr {
  network: number;
  prefixLength: number;
}

export function parseIpv4(text: string): number {
  const parts = text.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new AgentError("invalid_argument", `invalid IPv4 address: ${text}`);
  }
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

export function parseCidr(text: string): Ipv4Cidr {
  const [address, prefix, ...rest] = text.split("/");
  const prefixLength = Number(prefix);
  if (!address || rest.length > 0 || !Number.isInteger(prefixLength)) {
    throw new AgentError("invalid_argument", `invalid CIDR: ${text}`);
  }
  if (prefixLength < 8 || prefixLength > 30) {
    throw new AgentError("invalid_argument", `sandbox CIDR must be /8 to /30: ${text}`);
  }
  const size = 2 ** (32 - prefixLength);
  const value = parseIpv4(address);
  if (value % size !== 0) {
    throw new AgentError("invalid_argument", `CIDR has host bits set: ${text}`);
  }
  return { network: value, prefixLength };
}

/** The pool's CIDR: WRENN_SANDBOX_CIDR, else 10.213.0.0/16. */
export function sandboxCidrFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.WRENN_SANDBOX_CIDR?.trim() || DEFAULT_SANDBOX_CIDR;
}

/**
 * Hands out one /30 per sandbox from a CIDR. Allocation is in memory; after an agent restart the
 * runtime rebuilds it by `reserve`-ing the slots of the sandboxes it re-adopts.
 */
export class AddressPool {
  readonly cidr: string;
  readonly slots: number;
  readonly #network: number;
  readonly #bySandbox = new Map<string, number>();
  readonly #bySlot = new Map<number, string>();
  #next = 0;

  constructor(cidr: string = sandboxCidrFromEnv()) {
    const parsed = parseCidr(cidr);
    this.cidr = cidr;
    this.#network = parsed.network;
    this.slots = 2 ** (30 - parsed.prefixLength);
  }

  /** The addresses of a slot, whether or not it is allocated. */
  addressesOf(slot: number): SandboxAddresses {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots) {
      throw new AgentError("invalid_argument", `slot ${slot} is outside ${this.cidr}`);
    }
    const base = this.#network + slot * 4;
    return {
      slot,
      hostAddress: formatIpv4(base + 1),
      sandboxAddress: formatIpv4(base + 2),
      prefixLength: 30,
    };
  }

  /** The slot an address (host or sandbox side) belongs to, or undefined if outside the pool. */
  slotOf(address: string): number | undefined {
    const offset = parseIpv4(address) - this.#network;
    if (offset < 0 || offset >= this.slots * 4) return undefined;
    return Math.floor(offset / 4);
  }

  /** Allocates a free /30 for a sandbox; a sandbox that already has one gets the same one back. */
  allocate(sandboxId: string): SandboxAddresses {
    const existing = this.#bySandbox.get(sandboxId);
    if (existing !== undefined) return this.addressesOf(existing);
    for (let i = 0; i < this.slots; i++) {
      // Round-robin so a just-released address is not handed out again at once.
      const slot = (this.#next + i) % this.slots;
      if (!this.#bySlot.has(slot)) {
        this.#take(sandboxId, slot);
        this.#next = (slot + 1) % this.slots;
        return this.addressesOf(slot);
      }
    }
    throw new AgentError("resource_exhausted", `address pool ${this.cidr} is full`);
  }

  /** Marks a known slot as used (re-adoption). Fails if another sandbox holds it. */
  reserve(sandboxId: string, slot: number): SandboxAddresses {
    const addresses = this.addressesOf(slot);
    const holder = this.#bySlot.get(slot);
    if (holder !== undefined && holder !== sandboxId) {
      throw new AgentError("already_exists", `slot ${slot} is held by sandbox ${holder}`);
    }
    const previous = this.#bySandbox.get(sandboxId);
    if (previous !== undefined && previous !== slot) this.#bySlot.delete(previous);
    this.#take(sandboxId, slot);
    return addresses;
  }

  release(sandboxId: string): void {
    const slot = this.#bySandbox.get(sandboxId);
    if (slot === undefined) return;
    this.#bySandbox.delete(sandboxId);
    this.#bySlot.delete(slot);
  }

  /** Sandbox id → slot of everything allocated. */
  inUse(): Map<string, number> {
    return new Map(this.#bySandbox);
  }

  #take(sandboxId: string, slot: number): void {
    this.#bySandbox.set(sandboxId, slot);
    this.#bySlot.set(slot, sandboxId);
  }
}
