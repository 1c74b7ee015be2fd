// Who is asking: a bearer token, or the session cookie the login link sets (plus a CSRF header for
// anything that changes something). Everything is derived from the configured tokens, so sessions
// survive a gateway restart and end when a token is removed.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { getCookie } from 'hono/cookie';
import type { GatewayUser } from './config.js';
import { GatewayErrorCode, HttpError } from './errors.js';

export const SESSION_COOKIE = 'errand_session';
export const CSRF_HEADER = 'X-Errand-CSRF';

/** How the person proved who they are: the CSRF check applies to cookies only. */
export interface Identity {
  user: string;
  via: 'bearer' | 'cookie';
  /** The session cookie's value (cookie only): the CSRF token is bound to it. */
  session?: string;
}

export type AuthVariables = { identity: Identity };

const digest = (s: string) => createHash('sha256').update(s).digest();
/** Equal strings, in time that depends on neither (both are hashed to 32 bytes first). */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}
const mac = (key: string, text: string) => createHmac('sha256', key).update(text).digest('base64url');

export interface Authenticator {
  /** The person a bearer token names. Every token is compared, each in constant time. */
  bearer(token: string): string | undefined;
  /** A session cookie value for the person of `token`. */
  sessionFor(token: string): string | undefined;
  /** The person a session cookie names. */
  session(value: string): string | undefined;
  /** The CSRF token of a session. */
  csrf(session: string): string;
}

export function createAuthenticator(users: readonly GatewayUser[]): Authenticator {
  const find = (token: string) => {
    let found: GatewayUser | undefined;
    for (const u of users) if (safeEqual(u.token, token) && !found) found = u;
    return found;
  };
  const sessionOf = (u: GatewayUser) => `${u.name}.${mac(u.token, `errand-session\n${u.name}`)}`;
  return {
    bearer: (token) => find(token)?.name,
    sessionFor: (token) => {
      const u = find(token);
      return u ? sessionOf(u) : undefined;
    },
    session(value) {
      const dot = value.lastIndexOf('.');
      if (dot <= 0) return undefined;
      const name = value.slice(0, dot);
      let found: string | undefined;
      for (const u of users) if (u.name === name && safeEqual(sessionOf(u), value) && !found) found = u.name;
      return found;
    },
    csrf(session) {
      const name = session.slice(0, session.lastIndexOf('.'));
      const u = users.find((x) => x.name === name);
      return mac(u?.token ?? '', `errand-csrf\n${session}`);
    },
  };
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Sets `identity` or refuses: 401 without valid credentials, 403 for a cookie-only unsafe request
 * without the session's CSRF header. A bearer token wins over a cookie.
 */
export function requireAuth(auth: Authenticator): MiddlewareHandler<{ Variables: AuthVariables }> {
  return async (c, next) => {
    const header = c.req.header('Authorization');
    if (header !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
      const user = m ? auth.bearer(m[1]!) : undefined;
      if (!user) throw new HttpError(401, GatewayErrorCode.Unauthenticated, 'the bearer token is not one this gateway knows: use a token from ERRAND_GATEWAY_TOKENS (or the login link `errand up` prints)');
      c.set('identity', { user, via: 'bearer' });
      return next();
    }
    const cookie = getCookie(c, SESSION_COOKIE);
    const user = cookie ? auth.session(cookie) : undefined;
    if (!cookie || !user) {
      throw new HttpError(401, GatewayErrorCode.Unauthenticated, 'not signed in: send Authorization: Bearer <token>, or open the login link (`/login?token=…`) that `errand up` prints');
    }
    if (UNSAFE.has(c.req.method)) {
      const sent = c.req.header(CSRF_HEADER);
      if (!sent || !safeEqual(sent, auth.csrf(cookie))) {
        throw new HttpError(403, GatewayErrorCode.Csrf, `a request signed in by cookie that changes something needs the ${CSRF_HEADER} header with the csrf value of GET /api/session`);
      }
    }
    c.set('identity', { user, via: 'cookie', session: cookie });
    return next();
  };
}
