import type { Insertable } from "kysely";
import type { TeamRow, TeamsTable, UserRow, UsersTable } from "../schema.js";
import type { Executor } from "./types.js";

export type TeamRole = "owner" | "member";

/** A member of a team, as the team sees them. */
export interface TeamMember {
  userId: string;
  email: string;
  role: TeamRole;
  joinedAt: string;
}

export interface Membership {
  teamId: string;
  role: TeamRole;
  isDefault: boolean;
}

/** Users, teams and who belongs where: one aggregate, because signup writes all three. */
export class UsersRepo {
  constructor(private readonly db: Executor) {}

  async insertUser(user: Insertable<UsersTable>): Promise<void> {
    await this.db.insertInto("users").values(user).execute();
  }

  /** A new password hash; every login token issued before `at` is refused. */
  async setPassword(userId: string, passwordHash: string, at: string): Promise<void> {
    await this.db
      .updateTable("users")
      .set({ passwordHash, tokensValidAfter: at })
      .where("id", "=", userId)
      .execute();
  }

  /** Refuses every login token of the user issued before `at` (logout, password change). */
  async revokeTokens(userId: string, at: string): Promise<void> {
    await this.db
      .updateTable("users")
      .set({ tokensValidAfter: at })
      .where("id", "=", userId)
      .execute();
  }

  findUserByEmail(email: string): Promise<UserRow | undefined> {
    return this.db.selectFrom("users").selectAll().where("email", "=", email).executeTakeFirst();
  }

  getUser(id: string): Promise<UserRow | undefined> {
    return this.db.selectFrom("users").selectAll().where("id", "=", id).executeTakeFirst();
  }

  async insertTeam(team: Insertable<TeamsTable>): Promise<void> {
    await this.db.insertInto("teams").values(team).execute();
  }

  getTeam(id: string): Promise<TeamRow | undefined> {
    return this.db.selectFrom("teams").selectAll().where("id", "=", id).executeTakeFirst();
  }

  /** Makes the team the operator's (bootstrap): it may register and see shared hosts. */
  async makeAdminTeam(id: string): Promise<void> {
    await this.db.updateTable("teams").set({ isAdmin: 1 }).where("id", "=", id).execute();
  }

  async addMember(
    userId: string,
    teamId: string,
    role: TeamRole,
    isDefault: boolean,
    createdAt: string,
  ): Promise<void> {
    await this.db
      .insertInto("usersTeams")
      .values({ userId, teamId, role, isDefault: isDefault ? 1 : 0, createdAt })
      .execute();
  }

  async membership(userId: string, teamId: string): Promise<Membership | undefined> {
    const row = await this.db
      .selectFrom("usersTeams")
      .select(["teamId", "role", "isDefault"])
      .where("userId", "=", userId)
      .where("teamId", "=", teamId)
      .executeTakeFirst();
    return row && toMembership(row);
  }

  /** The team's members, oldest first. */
  async members(teamId: string): Promise<TeamMember[]> {
    const rows = await this.db
      .selectFrom("usersTeams")
      .innerJoin("users", "users.id", "usersTeams.userId")
      .select(["usersTeams.userId", "users.email", "usersTeams.role", "usersTeams.createdAt"])
      .where("usersTeams.teamId", "=", teamId)
      .orderBy("usersTeams.createdAt", "asc")
      .orderBy("usersTeams.userId", "asc")
      .execute();
    return rows.map((r) => ({
      userId: r.userId,
      email: r.email,
      role: r.role as TeamRole,
      joinedAt: r.createdAt,
    }));
  }

  /** Ends a membership; false when there was none. */
  async removeMember(teamId: string, userId: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom("usersTeams")
      .where("teamId", "=", teamId)
      .where("userId", "=", userId)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /** The team a login lands in: the default one, else the oldest membership. */
  async defaultTeam(userId: string): Promise<Membership | undefined> {
    const row = await this.db
      .selectFrom("usersTeams")
      .select(["teamId", "role", "isDefault"])
      .where("userId", "=", userId)
      .orderBy("isDefault", "desc")
      .orderBy("createdAt", "asc")
      .orderBy("teamId", "asc")
      .executeTakeFirst();
    return row && toMembership(row);
  }
}

function toMembership(row: { teamId: string; role: string; isDefault: number }): Membership {
  return { teamId: row.teamId, role: row.role as TeamRole, isDefault: row.isDefault === 1 };
}
