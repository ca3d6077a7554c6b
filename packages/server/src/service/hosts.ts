import type { HostRecord, Store } from "../db/index.js";

/** The hosts sandboxes run on (single-host mode: the embedded agent). */
export class HostService {
  constructor(private readonly store: Store) {}

  list(): Promise<HostRecord[]> {
    return this.store.hosts.list();
  }
}
