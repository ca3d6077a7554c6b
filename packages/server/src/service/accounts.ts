import type { Logger } from "pino";
import {
  decoyPasswordHash,
  hashPassword,
  type TokenIssuer,
  verifyPassword,
} from "../auth/index.js";
import { isUniqueViolation, newId, nowIso, type Store } from "../db/index.js";
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
  ) {}

  /** Creates the user, their default team and the membership, all or nothing. */
  async signup(email: string, password: string): Promise<SignupResult> {
    const started = performance.now();
    const normalized = normalizeEmail(email);
    const passwordHash = await hashPassword(password);
    const createdAt = nowIso();
    const userId = newId();
    const teamId = newId();
    try {
      await this.store.transaction(async (tx) => {
        await tx.users.insertUser({ id: userId, email: normalized, passwordHash, createdAt });
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
    const membership = await this.store.users.membership(claims.userId, claims.teamId);
    if (!membership) {
      throw new ServerError("unauthenticated", "token no longer grants access to its team");
    }
    return { kind: "user", userId: claims.userId, teamId: claims.teamId, role: membership.role };
  }
}
