export { agentRequest, responseOf, webStreamOf } from "./agent-http.js";
export { Fleet, servesTeam } from "./fleet.js";
export type { Leadership } from "./leadership.js";
export { AdvisoryLockLeadership, fleetLeadership, soleLeader } from "./leadership.js";
export { HostRegistry, remoteHost } from "./registry.js";
export type { HostLoad, Placement, Scheduler, SchedulerName } from "./scheduler.js";
export {
  createScheduler,
  fits,
  LeastLoadedScheduler,
  RoundRobinScheduler,
} from "./scheduler.js";
export { copySnapshot } from "./snapshot-transfer.js";
