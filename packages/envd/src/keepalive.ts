import type { HandlerContext } from "@connectrpc/connect";

/** Keepalive interval when the client sends no `Keepalive-Ping-Interval`, and its bounds (seconds). */
const keepalive = { defaultSec: 50, minSec: 1, maxSec: 3600 };

/** How long a server stream may stay silent before it sends a keepalive event, in ms. */
export function keepaliveMs(ctx: HandlerContext): number {
  const raw = Number(ctx.requestHeader.get("keepalive-ping-interval"));
  const sec = Number.isFinite(raw) && raw > 0 ? raw : keepalive.defaultSec;
  return Math.min(Math.max(sec, keepalive.minSec), keepalive.maxSec) * 1000;
}
