import { runCommands } from "../host/index.js";
import { addInternetMemberCommand, removeInternetMember } from "./firewall.js";
import type { SandboxNetwork } from "./network.js";

/** Live change of the sandbox's membership in the firewall's internet set. */
export async function setInternetAccess(network: SandboxNetwork, allow: boolean): Promise<void> {
  if (allow) {
    await runCommands([await addInternetMemberCommand(network.hostIf, network.sandboxAddress)]);
  } else {
    await removeInternetMember(network.hostIf);
  }
}
