export type { Page } from "./paginator.js";
export { Paginator } from "./paginator.js";
