export type { Agent, CreateAgentOptions } from "./agent.js";
export { createAgent } from "./agent.js";
export type { HostAgentServiceOptions } from "./service.js";
export { createHostAgentService } from "./service.js";
