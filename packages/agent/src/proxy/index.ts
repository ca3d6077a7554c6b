export type { EnvdProxyOptions, ProxyRequest, ProxyResponse } from "./envd-proxy.js";
export { EnvdProxy, parseProxyPath, sendError } from "./envd-proxy.js";
