export { raiseMallocThresholds } from "./malloc-thresholds.js";
