export type { ReaperOptions } from "./reaper.js";
export { Reaper } from "./reaper.js";
