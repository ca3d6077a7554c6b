// For the server's own proxying (E2B's envd routes): the same end of an early answer.
export { endAfterBody } from "@wrenn/envd";
export type { EnvdProxyOptions, ProxyRequest, ProxyResponse } from "./envd-proxy.js";
export {
  EnvdProxy,
  FORWARDED_AUTHORIZATION_HEADER,
  parseProxyPath,
  sendError,
} from "./envd-proxy.js";
export { refuseUpgrade, tunnelUpgrade } from "./upgrade-tunnel.js";
