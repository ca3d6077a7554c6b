export { CRASH_AT_ENV, crashPoint } from "./crash-point.js";
