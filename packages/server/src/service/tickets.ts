import { createHash, randomBytes } from "node:crypto";
import { nowIso, type Store } from "../db/index.js";
import { ServerError } from "../errors.js";
import type { SandboxService } from "./sandboxes.js";

/** A ticket opens one stream of one sandbox, within this many seconds, once. */
export const TICKET_TTL_SEC = 30;

function hashOf(ticket: string): string {
  return createHash("sha256").update(ticket).digest("hex");
}

/**
 * Short-lived single-use tickets for browsers, which cannot set X-API-Key on a WebSocket or an
 * EventSource: the API key stays out of URLs (and so out of logs and history). Kept in the
 * database, so any replica can redeem a ticket another issued.
 */
export class TicketService {
  constructor(
    private readonly store: Store,
    private readonly sandboxes: SandboxService,
  ) {}

  async issue(teamId: string, sandboxId: string): Promise<{ ticket: string; expiresAt: string }> {
    await this.sandboxes.get(teamId, sandboxId);
    const ticket = `wrntk_${randomBytes(24).toString("base64url")}`;
    const expiresAt = nowIso(new Date(Date.now() + TICKET_TTL_SEC * 1000));
    await this.store.tickets.insert(hashOf(ticket), teamId, sandboxId, expiresAt);
    return { ticket, expiresAt };
  }

  /** The team a ticket speaks for, spending it; unauthenticated if it is not good for `sandboxId`. */
  async redeem(ticket: string, sandboxId: string): Promise<string> {
    const teamId = await this.store.tickets.redeem(hashOf(ticket), sandboxId, nowIso());
    if (!teamId)
      throw new ServerError(
        "unauthenticated",
        "ticket is not valid (expired, used, or another sandbox's)",
      );
    return teamId;
  }
}
