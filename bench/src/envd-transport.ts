import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";

/** envd runs a process as the user its call names (`Authorization: Basic <user>:`). */
export function asUser(name = "user"): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${name}:`).toString("base64")}` };
}

/** A Connect transport to envd, directly or through a proxy, with `headers` on every call. */
export function envdTransport(baseUrl: string, headers: Record<string, string>): Transport {
  return createConnectTransport({
    baseUrl,
    httpVersion: "1.1",
    interceptors: [
      (next) => (req) => {
        for (const [name, value] of Object.entries(headers)) req.header.set(name, value);
        return next(req);
      },
    ],
  });
}

/** Straight to a sandbox's envd (its access token, if it has one), as the default user. */
export function envdDirect(sandbox: { envdAddress: string; envdAccessToken?: string }): Transport {
  const token: Record<string, string> = sandbox.envdAccessToken
    ? { "x-access-token": sandbox.envdAccessToken }
    : {};
  return envdTransport(`http://${sandbox.envdAddress}`, { ...token, ...asUser() });
}
