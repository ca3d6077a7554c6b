import { readFile, writeFile } from "node:fs/promises";
import { removeHostFirewall, runCommand } from "../../src/network/index.js";

const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";

/**
 * The agent installs its host firewall and turns on ip_forward once per host. A test file that
 * found neither puts the host back as it was; returns the function that does it.
 */
export async function keepHostState(): Promise<() => Promise<void>> {
  // nftables is the backend wherever nft is installed (as on Debian with the nftables package).
  const hadFirewall = await runCommand("nft", ["list", "table", "inet", "wrenn"]).then(
    () => true,
    () => false,
  );
  const ipForward = (await readFile(IP_FORWARD, "utf8")).trim();
  return async () => {
    if (!hadFirewall) await removeHostFirewall();
    if ((await readFile(IP_FORWARD, "utf8")).trim() !== ipForward)
      await writeFile(IP_FORWARD, ipForward);
  };
}
