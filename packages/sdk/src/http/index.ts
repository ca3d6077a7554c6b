export type { ApiClientOptions, CallOptions, Query } from "./client.js";
export { ApiClient, runCallback } from "./client.js";
export type { RequestOpts } from "./deadline.js";
export { Deadline, limitOf, requestOpts } from "./deadline.js";
export { readLines, readNdjson } from "./lines.js";
export type { RetryPolicy } from "./retry.js";
export type { BodyLike, FetchInit, FetchLike, WireResponse } from "./transport.js";
export { platformFetch } from "./transport.js";
