import type { Compilable, CompiledQuery, InferResult } from "kysely";
import { ServerError } from "../../errors.js";
import { directReadsOf } from "../sqlite-statements.js";
import type { Executor } from "./types.js";

/** Stand-ins no caller can send: control characters never reach a query from the API. */
const marker = (index: number) => `\u0000wrenn-param-${index}\u0000`;

/**
 * A query built and compiled once, run with fresh parameters. Kysely otherwise rebuilds, runs its
 * plugins over and recompiles the whole query tree on every call, which costs more than the point
 * lookups on the hot path themselves. `build` receives stand-ins for the parameters (use each
 * only as a value: the SQL text must not depend on it). On SQLite a read runs directly when it
 * can (see DirectReads).
 */
export function prepared<A extends string[], Q extends Compilable<unknown>>(
  db: Executor,
  arity: A["length"],
  build: (...params: A) => Q,
): (...params: A) => Promise<InferResult<Q>> {
  let compiled: CompiledQuery | undefined;
  /** For each compiled parameter: which argument goes there, or -1 for a constant. */
  let slots: number[] = [];
  const direct = directReadsOf(db);
  return async (...params) => {
    if (!compiled) {
      const markers = Array.from({ length: arity }, (_, i) => marker(i)) as A;
      compiled = build(...markers).compile();
      slots = compiled.parameters.map((value) => markers.indexOf(value as string));
      for (let i = 0; i < arity; i++) {
        if (!slots.includes(i)) {
          throw new ServerError("internal", `prepared query never uses parameter ${i}`);
        }
      }
    }
    const base = compiled;
    const parameters = slots.map((slot, i) => (slot < 0 ? base.parameters[i] : params[slot]));
    const rows = direct?.all(base.sql, parameters);
    if (rows) return rows as InferResult<Q>;
    const result = await db.executeQuery({ ...base, parameters });
    return result.rows as InferResult<Q>;
  };
}
