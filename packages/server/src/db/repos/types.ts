import type { Kysely } from "kysely";
import type { DatabaseSchema } from "../schema.js";

/** A Kysely instance or a transaction: repositories work the same on both. */
export type Executor = Kysely<DatabaseSchema>;
