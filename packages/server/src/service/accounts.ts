import { createHash, randomBytes } from "node:crypto";
import type { Logger } from "pino";
import {
  decoyPasswordHash,
  hashPassword,
  type TokenIssuer,
  verifyPassword,
} from "../auth/index.js";
import type { SignupMode } from "../config/index.js";
import {
  isId,
  isUniqueViolation,
  newId,
  nowIso,
  type Store,
  type TeamMember,
} from "../db/index.js";
import { ServerError } from "../errors.js";
import { elapsed } from "./elapsed.js";
import type { TeamPrincipal, UserPrincipal } from "./principals.js";

export interface SignupResult {
  id: string;
  email: string;
  teamId: string;
  createdAt: string;
}

export interface LoginResult {
  token: string;
  expiresAt: string;
  userId: string;
  teamId: string;
}

/** Who a request speaks for: the team, and the user or the API key behind it. */
export interface WhoAmI {
  teamId: string;
  teamName: string;
  /** Set for a bearer token. */
  user?: { id: string; email: string };
  /** Set for an API key. */
  apiKey?: { id: string; name: string };
}

/** A pending invitation as its team sees it: never the token, which is shown once at creation. */
export interface PendingInvite {
  id: string;
  createdAt: string;
  expiresAt: string;
  /** The user who made it; null once that user is deleted. */
  createdBy: string | null;
}

/** An invitation is good for a week, once. */
const INVITE_TTL_MS = 7 * 24 * 3600 * 1000;

function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** Emails compare case-insensitively: stored and looked up in one normal form. */
function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** Signup, login and user tokens. */
export class AccountService {
  constructor(
    private readonly store: Store,
    private readonly tokens: TokenIssuer,
    private readonly logger: Logger,
    private readonly signupMode: SignupMode = "open",
  ) {}

  /**
   * Self-service sign-up as `WRENN_SIGNUP` allows: open (an invite, if given, joins its team),
   * invite (an invite is required) or closed (refused; the admin is made at first start).
   */
  async register(email: string, password: string, invite?: string): Promise<SignupResult> {
    if (this.signupMode === "closed")
      throw new ServerError("permission_denied", "sign-up is closed on this server (WRENN_SIGNUP)");
    if (invite === undefined) {
      if (this.signupMode === "invite")
        throw new ServerError("permission_denied", "sign-up needs an invitation on this server");
      return this.signup(email, password);
    }
    // The password is hashed before the invite is spent: a failure after it wastes no invite.
    const passwordHash = await hashPassword(password);
    return this.store.transaction(async (tx) => {
      const found = await tx.invites.redeem(hashToken(invite), nowIso());
      if (!found) throw new ServerError("permission_denied", "invitation is not valid or was used");
      return this.signup(email, password, { teamId: found.teamId, passwordHash }, tx);
    });
  }

  /** An invitation into the owner's team: the token is shown once, only its hash is kept. */
  async invite(
    principal: UserPrincipal,
  ): Promise<{ id: string; token: string; expiresAt: string }> {
    if (principal.role !== "owner")
      throw new ServerError("permission_denied", "only a team owner can invite");
    const token = `wrninv_${randomBytes(24).toString("base64url")}`;
    const now = Date.now();
    const expiresAt = nowIso(new Date(now + INVITE_TTL_MS));
    const id = newId();
    await this.store.invites.insert({
      id,
      teamId: principal.teamId,
      tokenHash: hashToken(token),
      createdBy: principal.userId,
      createdAt: nowIso(new Date(now)),
      expiresAt,
      usedAt: null,
    });
    return { id, token, expiresAt };
  }

  /** The team's pending invitations (any member sees them; only their ids and dates). */
  async pendingInvites(principal: UserPrincipal): Promise<PendingInvite[]> {
    const rows = await this.store.invites.pending(principal.teamId, nowIso());
    return rows.map((r) => ({
      id: r.id,
      createdAt: r.createdAt,
      expiresAt: r.expiresAt,
      createdBy: r.createdBy,
    }));
  }

  /** Revokes a pending invitation of the owner's team; another team's id is as missing as none. */
  async revokeInvite(principal: UserPrincipal, id: string): Promise<void> {
    if (principal.role !== "owner")
      throw new ServerError("permission_denied", "only a team owner can revoke invitations");
    // Not an id: as missing as another team's (and never sent to the database, which refuses NUL).
    if (!isId(id) || !(await this.store.invites.revoke(principal.teamId, id)))
      throw new ServerError("not_found", `invitation ${JSON.stringify(id)} not found`);
    this.logger.info(
      { op: "team.revoke_invite", teamId: principal.teamId, inviteId: id, by: principal.userId },
      "invitation revoked",
    );
  }

  /** The members of the caller's team (any member, or one of the team's API keys). */
  members(principal: UserPrincipal | TeamPrincipal): Promise<TeamMember[]> {
    return this.store.users.members(principal.teamId);
  }

  /**
   * Removes a member from the owner's team. Their login tokens for it stop working at once (every
   * request checks the membership); the team always keeps an owner.
   */
  async removeMember(principal: UserPrincipal, userId: string): Promise<void> {
    if (principal.role !== "owner")
      throw new ServerError("permission_denied", "only a team owner can remove members");
    await this.store.transaction(async (tx) => {
      const members = await tx.users.members(principal.teamId);
      const target = members.find((m) => m.userId === userId);
      if (!target) throw new ServerError("not_found", `no member ${JSON.stringify(userId)}`);
      if (
        target.role === "owner" &&
        !members.some((m) => m.role === "owner" && m.userId !== userId)
      )
        throw new ServerError("failed_precondition", "the team's last owner cannot be removed");
      await tx.users.removeMember(principal.teamId, userId);
    });
    this.logger.info(
      { op: "team.remove_member", teamId: principal.teamId, userId, by: principal.userId },
      "member removed",
    );
  }

  /** Refuses every login token the user holds, this one included. */
  async logout(principal: UserPrincipal): Promise<void> {
    await this.store.users.revokeTokens(principal.userId, nowIso());
  }

  /** Checks the current password, stores the new one and revokes every existing login token. */
  async changePassword(principal: UserPrincipal, current: string, next: string): Promise<void> {
    const user = await this.store.users.getUser(principal.userId);
    if (!user || !(await verifyPassword(current, user.passwordHash)))
      throw new ServerError("unauthenticated", "current password is wrong");
    const passwordHash = await hashPassword(next);
    await this.store.users.setPassword(user.id, passwordHash, nowIso());
  }

  /**
   * Creates the user, their default team and the membership, all or nothing; with `join`, the
   * user becomes a member of that team instead (an invitation).
   */
  async signup(
    email: string,
    password: string,
    join?: { teamId: string; passwordHash: string },
    store: Store = this.store,
  ): Promise<SignupResult> {
    const started = performance.now();
    const normalized = normalizeEmail(email);
    const passwordHash = join?.passwordHash ?? (await hashPassword(password));
    const createdAt = nowIso();
    const userId = newId();
    const teamId = join?.teamId ?? newId();
    try {
      await store.transaction(async (tx) => {
        await tx.users.insertUser({ id: userId, email: normalized, passwordHash, createdAt });
        if (join) {
          await tx.users.addMember(userId, teamId, "member", true, createdAt);
          return;
        }
        await tx.users.insertTeam({ id: teamId, name: `${normalized}'s team`, createdAt });
        await tx.users.addMember(userId, teamId, "owner", true, createdAt);
      });
    } catch (err) {
      if (isUniqueViolation(err)) {
        throw new ServerError("already_exists", "a user with this email already exists", {
          cause: err,
        });
      }
      throw err;
    }
    this.logger.info({ op: "signup", userId, teamId, ms: elapsed(started) }, "signup");
    return { id: userId, email: normalized, teamId, createdAt };
  }

  /**
   * The operator's team: that of the admin user made at first start. It may register shared
   * hosts and see their addresses. Returns the team id, or undefined before the first start.
   */
  async operatorTeam(adminEmail: string): Promise<string | undefined> {
    const user = await this.store.users.findUserByEmail(normalizeEmail(adminEmail));
    const team = user && (await this.store.users.defaultTeam(user.id));
    if (team) await this.store.users.makeAdminTeam(team.teamId);
    return team?.teamId;
  }

  /** A token for the user's default team; the same answer for unknown email and bad password. */
  async login(email: string, password: string): Promise<LoginResult> {
    const started = performance.now();
    const user = await this.store.users.findUserByEmail(normalizeEmail(email));
    const valid = await verifyPassword(password, user?.passwordHash ?? (await decoyPasswordHash()));
    const membership = user && valid ? await this.store.users.defaultTeam(user.id) : undefined;
    if (!user || !membership) {
      throw new ServerError("unauthenticated", "invalid email or password");
    }
    const { token, expiresAt } = await this.tokens.sign({
      userId: user.id,
      teamId: membership.teamId,
    });
    this.logger.info({ op: "login", userId: user.id, ms: elapsed(started) }, "login");
    return { token, expiresAt: nowIso(expiresAt), userId: user.id, teamId: membership.teamId };
  }

  /** The team and user or key behind an authenticated principal (for `wrenn whoami`/login checks). */
  async whoami(principal: UserPrincipal | TeamPrincipal): Promise<WhoAmI> {
    const gone = () => new ServerError("unauthenticated", "the credentials no longer name a team");
    const team = await this.store.users.getTeam(principal.teamId);
    if (!team) throw gone();
    if (principal.kind === "api_key") {
      const key = await this.store.apiKeys.get(principal.teamId, principal.apiKeyId);
      if (!key) throw gone();
      return { teamId: team.id, teamName: team.name, apiKey: { id: key.id, name: key.name } };
    }
    const user = await this.store.users.getUser(principal.userId);
    if (!user) throw gone();
    return { teamId: team.id, teamName: team.name, user: { id: user.id, email: user.email } };
  }

  /** The user behind a bearer token, still a member of the token's team; else unauthenticated. */
  async authenticateToken(token: string): Promise<UserPrincipal> {
    const claims = await this.tokens.verify(token);
    const user = await this.store.users.getUser(claims.userId);
    if (!user) throw new ServerError("unauthenticated", "token's user no longer exists");
    if (user.tokensValidAfter && claims.issuedAtMs <= Date.parse(user.tokensValidAfter))
      throw new ServerError("unauthenticated", "token was revoked; log in again");
    const membership = await this.store.users.membership(claims.userId, claims.teamId);
    if (!membership) {
      throw new ServerError("unauthenticated", "token no longer grants access to its team");
    }
    return { kind: "user", userId: claims.userId, teamId: claims.teamId, role: membership.role };
  }
}
