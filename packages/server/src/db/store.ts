import type { DialectName } from "./connect.js";
import { ApiKeysRepo } from "./repos/api-keys.js";
import { HostsRepo } from "./repos/hosts.js";
import { InvitesRepo } from "./repos/invites.js";
import { QuotasRepo } from "./repos/quotas.js";
import { SandboxesRepo } from "./repos/sandboxes.js";
import { TemplatesRepo } from "./repos/templates.js";
import { TicketsRepo } from "./repos/tickets.js";
import type { Executor } from "./repos/types.js";
import { UsersRepo } from "./repos/users.js";

/** Every repository over one executor (the database, or one transaction on it). */
export class Store {
  readonly users: UsersRepo;
  readonly apiKeys: ApiKeysRepo;
  readonly sandboxes: SandboxesRepo;
  readonly templates: TemplatesRepo;
  readonly hosts: HostsRepo;
  readonly invites: InvitesRepo;
  readonly tickets: TicketsRepo;
  readonly quotas: QuotasRepo;

  constructor(
    readonly db: Executor,
    readonly dialect: DialectName,
  ) {
    this.users = new UsersRepo(db);
    this.apiKeys = new ApiKeysRepo(db);
    this.sandboxes = new SandboxesRepo(db, dialect);
    this.templates = new TemplatesRepo(db);
    this.hosts = new HostsRepo(db);
    this.invites = new InvitesRepo(db);
    this.tickets = new TicketsRepo(db);
    this.quotas = new QuotasRepo(db);
  }

  /** Runs `work` in one transaction; nested calls join the outer one. */
  async transaction<T>(work: (store: Store) => Promise<T>): Promise<T> {
    if (this.db.isTransaction) return work(this);
    // Committed here, not by Kysely's transaction(): when SQLite has already rolled back by
    // itself (SQLITE_FULL at commit), Kysely's own rollback fails and would hide the error that
    // matters; here the commit's error is the one thrown.
    const trx = await this.db.startTransaction().execute();
    let result: T;
    try {
      result = await work(new Store(trx, this.dialect));
      await trx.commit().execute();
    } catch (err) {
      await trx
        .rollback()
        .execute()
        .catch(() => {});
      throw err;
    }
    return result;
  }
}
