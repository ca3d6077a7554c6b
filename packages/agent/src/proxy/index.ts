export { unreachableMessage } from "./connect-failure.js";
export { endRelay } from "./end-relay.js";
export type { EnvdProxyOptions, ProxyRequest, ProxyResponse } from "./envd-proxy.js";
export {
  EnvdProxy,
  FORWARDED_AUTHORIZATION_HEADER,
  parseProxyPath,
  sendError,
} from "./envd-proxy.js";
export { refuseUpgrade, tunnelUpgrade } from "./upgrade-tunnel.js";
