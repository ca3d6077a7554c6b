import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { AgentError } from "../errors.js";

/**
 * Checks the server URL before any credential is sent to it: https always; plain http only to
 * loopback or private addresses (RFC 1918, IPv6 ULA, link-local), where `warn` is told. Names are
 * resolved and every address must qualify.
 */
export async function checkServerUrl(text: string, warn: (message: string) => void): Promise<URL> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new AgentError("invalid_argument", `--server-url: not a URL: ${text}`);
  }
  if (url.protocol === "https:") return url;
  if (url.protocol !== "http:") {
    throw new AgentError("invalid_argument", `--server-url must be http(s)://, got ${text}`);
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const addresses = isIP(host)
    ? [host]
    : await lookup(host, { all: true }).then(
        (all) => all.map((a) => a.address),
        () => [] as string[],
      );
  if (addresses.length === 0) {
    throw new AgentError("invalid_argument", `--server-url: cannot resolve ${host}`);
  }
  const publicOnes = addresses.filter((a) => !isPrivateAddress(a));
  if (publicOnes.length > 0) {
    throw new AgentError(
      "invalid_argument",
      `--server-url ${text}: plain http is refused for a public address (${publicOnes[0]}); use https://`,
    );
  }
  warn(
    `the server URL ${url.origin} is plain http: host credentials cross the network unencrypted`,
  );
  return url;
}

/** Loopback, RFC 1918, IPv6 ULA (fc00::/7) and link-local (169.254/16, fe80::/10). */
export function isPrivateAddress(address: string): boolean {
  const v4 = address.startsWith("::ffff:") ? address.slice(7) : address;
  if (isIP(v4) === 4) {
    const [a = 0, b = 0] = v4.split(".").map(Number);
    return (
      a === 127 ||
      a === 10 ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 169 && b === 254)
    );
  }
  const v6 = address.toLowerCase();
  return v6 === "::1" || /^f[cd]/.test(v6) || /^fe[89ab]/.test(v6);
}
