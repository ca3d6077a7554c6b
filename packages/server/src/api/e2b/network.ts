import { z } from "@hono/zod-openapi";
import type { SandboxNetwork } from "../../db/index.js";
import { ServerError } from "../../errors.js";
import { EgressList } from "../egress-rules.js";

/** E2B's `ALL_TRAFFIC`: in E2B, denying it and allowing a few makes an allowlist. */
const ALL_TRAFFIC = "0.0.0.0/0";

/** `network` of E2B's create body and the body of its `PUT /sandboxes/{id}/network`. */
export const E2bNetworkRules = z.object({
  allowOut: EgressList.optional(),
  denyOut: EgressList.optional(),
});

export const E2bNetworkUpdateBody = E2bNetworkRules.extend({
  allow_internet_access: z.boolean().optional(),
  rules: z.unknown().optional(),
  egressProxy: z.unknown().optional(),
});

/**
 * E2B's network options as Wrenn's policy. In E2B allowOut wins over denyOut and
 * `allow_internet_access: false` with an allowOut lets out only that list; in Wrenn a non-empty
 * allowOut is an allowlist, deny wins, and no internet access means nothing at all. So: an
 * allowOut turns internet access on as an allowlist, `ALL_TRAFFIC` in denyOut (E2B's way to
 * write an allowlist) is dropped, and what both lists name exactly stays allowed.
 */
export function e2bNetwork(
  allowInternetAccess: boolean | undefined,
  rules: z.infer<typeof E2bNetworkRules> | undefined,
): SandboxNetwork {
  const allowOut = rules?.allowOut ?? [];
  const denyAll = rules?.denyOut?.includes(ALL_TRAFFIC) ?? false;
  const denyOut = (rules?.denyOut ?? []).filter((d) => d !== ALL_TRAFFIC && !allowOut.includes(d));
  return {
    allowInternetAccess: allowOut.length > 0 || (allowInternetAccess !== false && !denyAll),
    allowOut,
    denyOut,
  };
}

/** What E2B's network update asks for that Wrenn cannot do: refused, never silently ignored. */
export function refuseUnsupportedNetwork(body: z.infer<typeof E2bNetworkUpdateBody>): void {
  const unsupported = (["rules", "egressProxy"] as const).filter((k) => body[k] !== undefined);
  if (unsupported.length > 0) {
    throw new ServerError(
      "invalid_argument",
      `not supported by this Wrenn server yet: ${unsupported.map((k) => `network.${k}`).join(", ")}`,
    );
  }
}
