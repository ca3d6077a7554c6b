export * as agent from "./agent.js";
export * as filesystem from "./filesystem.js";
export * as process from "./process.js";
