import { generateKeyPairSync, randomBytes, randomUUID, sign } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import Provider from 'oidc-provider';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import { createLogger } from '../core/logging.js';
import { Secret } from '../core/secret.js';
import { SecretBox } from '../core/secret-box.js';
import type { LiveSessionMatch } from '../gateway/sessions/end-live-sessions.js';
import type { IdentityProvidersConfig } from '../config/schema.js';
import { createMetrics } from '../gateway/metrics.js';
import { buildServer } from '../gateway/server.js';
import { createAuth, createPerson } from '../gateway/auth/index.js';
import { openPending, sealPending } from '../gateway/auth/oidc.service.js';
import { databaseFactories } from './harness/databases.js';

/**
 * OIDC sign-in against a real OpenID provider (oidc-provider 9) on
 * loopback: the browser is a cookie jar following redirects; the provider's
 * login is completed programmatically (interactionFinished) for the test
 * account of the moment. The gateway listens for real so the provider can
 * post back-channel logout tokens to it.
 */

type Account = { groups: string[]; org?: string; email?: string; preferred_username: string; name: string; amr?: string[] };
const CLIENT_SECRET = `cs-${randomBytes(12).toString('hex')}`;

class Jar {
  readonly #c = new Map<string, Map<string, string>>();
  header(url: string): string {
    const m = this.#c.get(new URL(url).host);
    return m ? [...m].map(([k, v]) => `${k}=${v}`).join('; ') : '';
  }
  store(url: string, res: Response): void {
    const host = new URL(url).host;
    const m = this.#c.get(host) ?? new Map<string, string>();
    for (const sc of res.headers.getSetCookie()) {
      const [kv] = sc.split(';');
      const i = kv!.indexOf('=');
      const k = kv!.slice(0, i);
      const v = kv!.slice(i + 1);
      if (v === '' || /max-age=0|expires=thu, 01 jan 1970/i.test(sc)) m.delete(k);
      else m.set(k, v);
    }
    this.#c.set(host, m);
  }
  get(url: string, name: string): string | undefined {
    return this.#c.get(new URL(url).host)?.get(name);
  }
  set(url: string, name: string, value: string): void {
    this.#c.get(new URL(url).host)!.set(name, value);
  }
}

async function go(jar: Jar, url: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const c = jar.header(url);
  if (c) headers.set('cookie', c);
  const res = await fetch(url, { ...init, headers, redirect: 'manual' });
  jar.store(url, res);
  return res;
}

/** Follow redirects from `start` until the browser would go to a URL starting with `stopAt`; return that URL. */
async function browse(jar: Jar, start: string, stopAt: string): Promise<string> {
  let url = start;
  for (let i = 0; i < 20; i++) {
    const res = await go(jar, url);
    const loc = res.headers.get('location');
    if (!loc || res.status < 300 || res.status >= 400) throw new Error(`stuck at ${url}: ${res.status} ${await res.text()}`);
    url = new URL(loc, url).href;
    if (url.startsWith(stopAt)) return url;
  }
  throw new Error('too many redirects');
}

interface Idp {
  provider: Provider;
  issuer: string;
  server: Server;
  accounts: Map<string, Account>;
  /** Which account the next login interaction signs in as. */
  next: { id: string };
}

async function startIdp(clients: object[], ttlIdToken = 600): Promise<Idp> {
  const accounts = new Map<string, Account>();
  const next = { id: '' };
  let handler: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void = () => undefined;
  const server = createServer((req, res) => handler(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients,
    features: { devInteractions: { enabled: false }, backchannelLogout: { enabled: true } },
    scopes: ['openid', 'email', 'profile', 'groups', 'org'],
    claims: { openid: ['sub', 'amr'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'], groups: ['groups'], org: ['org'] },
    findAccount: async (_ctx, id) => {
      const a = accounts.get(id);
      if (!a) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, ...a, email_verified: Boolean(a.email) }) };
    },
    loadExistingGrant: async (ctx) => {
      const accountId = ctx.oidc.session?.accountId;
      if (!accountId || !ctx.oidc.client) return undefined;
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId });
      grant.addOIDCScope('openid email profile groups org');
      await grant.save();
      return grant;
    },
    interactions: { url: (_ctx, i) => `/interaction/${i.uid}` },
    ttl: { IdToken: ttlIdToken },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    // The provider refuses loopback addresses for its own requests (SSRF guard); the gateway here is on loopback.
    fetch: (url: URL | string, options: RequestInit & { dispatcher?: unknown }) => {
      delete options.dispatcher;
      return fetch(url, options);
    },
  });
  const cb = provider.callback();
  handler = (req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      void (async () => {
        await provider.interactionDetails(req, res);
        const a = accounts.get(next.id)!;
        await provider.interactionFinished(req, res, { login: { accountId: next.id, ...(a.amr ? { amr: a.amr } : {}) } }, { mergeWithLastSubmission: false });
      })().catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
      return;
    }
    cb(req, res);
  };
  return { provider, issuer, server, accounts, next };
}

const factory = databaseFactories()[0]!;

describe('OIDC sign-in against oidc-provider', () => {
  let db: Database;
  let app: FastifyInstance;
  let appUrl: string;
  let idp: Idp;
  let idp2: Idp;
  let orgId: string;
  const orgName = `acme-${randomBytes(3).toString('hex')}`;
  const logs: string[] = [];
  const ended: { match: LiveSessionMatch; by: string }[] = [];
  let clock = Date.now();
  /** When set, the token endpoint's id_token is replaced (a tampered or substituted token response). */
  let substituteIdToken: string | null = null;
  const box = new SecretBox(randomBytes(32));

  const callbackPrefix = () => `${appUrl}/api/v1/auth/oidc/corp/callback`;

  beforeAll(async () => {
    db = await factory.open();
    orgId = randomUUID();
    await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1, $2, $3)', [orgId, orgName, orgId.slice(0, 6)]);
    // Listen first: the provider needs the gateway's address for its client registration.
    const appServer = createServer();
    await new Promise<void>((r) => appServer.listen(0, '127.0.0.1', r));
    const appPort = (appServer.address() as AddressInfo).port;
    appServer.close();
    appUrl = `http://127.0.0.1:${appPort}`;
    const client = (id: string, secret: string, redirect: string) => ({
      client_id: id, client_secret: secret, redirect_uris: [redirect], grant_types: ['authorization_code'], response_types: ['code'],
      backchannel_logout_uri: `${appUrl}/api/v1/auth/oidc/corp/backchannel-logout`, backchannel_logout_session_required: true,
    });
    idp = await startIdp([client('jitgate', CLIENT_SECRET, `${appUrl}/api/v1/auth/oidc/corp/callback`), client('other', 'other-secret-1234', `${appUrl}/other/cb`)], 60);
    idp2 = await startIdp([client('jitgate', CLIENT_SECRET, `${appUrl}/api/v1/auth/oidc/corp/callback`)]);

    const log = createLogger({ level: 'trace', destination: new Writable({ write(chunk: Buffer, _e, cb) { logs.push(chunk.toString()); cb(); } }) });
    const providers: IdentityProvidersConfig = {
      oidc: [{
        name: 'corp', displayName: 'Corp SSO', issuer: idp.issuer, clientId: 'jitgate', clientSecret: new Secret(CLIENT_SECRET),
        scopes: ['openid', 'email', 'profile', 'groups', 'org'],
        claims: { login: 'preferred_username', displayName: 'name', email: 'email', groups: 'groups' },
        roles: [{ group: 'jit-admins', role: 'org_admin' }, { group: 'techs', role: 'technician' }],
        organization: { claim: 'org', values: {}, emailDomains: {} },
        trustProviderMfa: true,
      }],
      ldap: [],
    };
    const auth = createAuth({
      db, box, audit: new AuditLog(db), log,
      cfg: { sessionHours: 12, idleMinutes: 60, maxFailedSignIns: 5, lockoutMinutes: 15, totpIssuer: 'jitgate-test', cookieSecure: 'auto' },
      now: () => new Date(clock),
      // This file signs in dozens of times from one address.
      attemptsPerMinute: 1000,
      endLiveSessions: async (match, by) => {
        ended.push({ match, by });
        return [];
      },
      identityProviders: providers,
      publicUrl: appUrl,
      oidcFetch: async (url, options) => {
        const res = await fetch(url, options as RequestInit);
        if (substituteIdToken === null || !String(url).endsWith('/token')) return res;
        const body = (await res.json()) as Record<string, unknown>;
        // The same Response class the fetch answered with (openid-client checks instanceof).
        const R = res.constructor as typeof Response;
        return new R(JSON.stringify({ ...body, id_token: substituteIdToken }), { status: 200, headers: { 'content-type': 'application/json' } });
      },
    });
    app = await buildServer({ log, metrics: createMetrics(), version: 'test', readiness: [], rootPlugins: [auth.plugin], apiPlugins: [] });
    await app.listen({ port: appPort, host: '127.0.0.1' });
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    idp?.server.close();
    idp2?.server.close();
    await db?.close();
  });

  function account(a: Partial<Account> = {}): string {
    const id = `sub-${randomBytes(6).toString('hex')}`;
    idp.accounts.set(id, { groups: ['techs'], org: orgName, preferred_username: `u${id.slice(4, 10)}`, name: 'Test Person', email: `${id}@corp.example`, amr: ['pwd', 'mfa'], ...a });
    idp.next.id = id;
    return id;
  }

  async function startFlow(jar: Jar): Promise<string> {
    return browse(jar, `${appUrl}/api/v1/auth/oidc/corp/start?next=/computers`, callbackPrefix());
  }

  async function me(jar: Jar) {
    const r = await go(jar, `${appUrl}/api/v1/auth/me`);
    return (await r.json()) as { person: { id: string; login: string; role: string; organizationId: string | null } | null; pending: string | null };
  }

  async function auditOf(type: string) {
    return db.query<{ actor: string; data: Record<string, unknown> }>('SELECT actor, data FROM audit_events WHERE type = $1 ORDER BY seq', [type]);
  }

  it('lists providers publicly, names only', async () => {
    const r = await fetch(`${appUrl}/api/v1/auth/providers`);
    expect(await r.json()).toEqual([{ name: 'corp', displayName: 'Corp SSO', type: 'oidc' }]);
  });

  it('first sign-in creates the person with the mapped role and organization and sets the session cookie', async () => {
    const sub = account();
    const jar = new Jar();
    const cb = await startFlow(jar);
    const res = await go(jar, cb);
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toContain("url=/computers");
    expect(jar.get(appUrl, 'jitgate_session')).toBeTruthy();
    const m = await me(jar);
    expect(m.person).toMatchObject({ role: 'technician', organizationId: orgId });
    const link = await db.query<{ person_id: string }>('SELECT person_id FROM person_identities WHERE issuer = $1 AND subject = $2', [idp.issuer, sub]);
    expect(link[0]?.person_id).toBe(m.person!.id);
    expect((await auditOf('auth.person_provisioned')).some((e) => e.data['person'] === m.person!.login && e.data['provider'] === 'corp')).toBe(true);
    expect((await auditOf('auth.signed_in')).some((e) => e.actor === m.person!.login && e.data['provider'] === 'corp' && e.data['factor'] === 'idp-mfa')).toBe(true);

    // Second sign-in: the same person (iss+sub), no new one.
    const jar2 = new Jar();
    await go(jar2, await startFlow(jar2));
    expect((await me(jar2)).person?.id).toBe(m.person!.id);
    expect(logs.join('\n')).not.toContain(CLIENT_SECRET);
  });

  it('team memberships follow the groups claim at every sign-in, in the person\'s organization only; manual ones stay', async () => {
    const team = async (org: string, name: string, groups: string[]) => {
      const id = randomUUID();
      await db.query('INSERT INTO teams (id, organization_id, name, sync_groups) VALUES ($1,$2,$3,$4)', [id, org, name, groups]);
      return id;
    };
    const otherOrg = randomUUID();
    await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1, $2, $3)', [otherOrg, `other-${otherOrg.slice(0, 6)}`, otherOrg.slice(0, 6)]);
    const ops = await team(orgId, `ops-${otherOrg.slice(0, 4)}`, ['OPS']);
    const dba = await team(orgId, `dba-${otherOrg.slice(0, 4)}`, ['dba']);
    const manual = await team(orgId, `manual-${otherOrg.slice(0, 4)}`, []);
    const foreign = await team(otherOrg, 'ops', ['ops']);
    const sub = account({ groups: ['techs', 'ops'] });
    const signIn = async () => {
      const jar = new Jar();
      await go(jar, await startFlow(jar));
      return (await me(jar)).person!;
    };
    const teamsOf = async (personId: string) =>
      (await db.query<{ team_id: string; source: string }>('SELECT team_id, source FROM team_members WHERE person_id = $1 ORDER BY team_id', [personId])).map((r) => `${r.team_id}:${r.source}`).sort();

    const p = await signIn();
    expect(await teamsOf(p.id)).toEqual([`${ops}:sync`]);
    await db.query("INSERT INTO team_members (team_id, person_id, source) VALUES ($1, $2, 'manual')", [manual, p.id]);

    idp.accounts.set(sub, { ...idp.accounts.get(sub)!, groups: ['techs', 'dba'] });
    idp.next.id = sub;
    expect((await signIn()).id).toBe(p.id);
    expect(await teamsOf(p.id)).toEqual([`${dba}:sync`, `${manual}:manual`].sort());
    expect(await teamsOf(p.id)).not.toContain(`${foreign}:sync`);
    const synced = await auditOf('auth.person_updated');
    expect(synced.some((e) => e.data['action'] === 'teams.synced' && String(e.data['left']).includes('ops-') && String(e.data['joined']).includes('dba-'))).toBe(true);
  });

  it('without MFA asserted by the provider, jitgate TOTP follows', async () => {
    account({ amr: ['pwd'] });
    const jar = new Jar();
    await go(jar, await startFlow(jar));
    const m = await me(jar);
    expect(m.person).toBeNull();
    expect(m.pending).toBe('totp-enrollment');
  });

  it('a tampered state is refused', async () => {
    account();
    const jar = new Jar();
    const cb = new URL(await startFlow(jar));
    cb.searchParams.set('state', 'x'.repeat(43));
    const res = await go(jar, cb.href);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/sign-in?error=JIT_ERR_AUTH_SSO_FAILED');
    expect(jar.get(appUrl, 'jitgate_session')).toBeUndefined();
  });

  it('a wrong nonce is refused', async () => {
    account();
    const jar = new Jar();
    const cb = await startFlow(jar);
    const p = openPending(box, decodeURIComponent(jar.get(appUrl, 'jitgate_oidc')!))!;
    jar.set(appUrl, 'jitgate_oidc', encodeURIComponent(sealPending(box, { ...p, nonce: oidc.randomNonce() })));
    const res = await go(jar, cb);
    expect(res.headers.get('location')).toBe('/sign-in?error=JIT_ERR_AUTH_SSO_FAILED');
    expect(jar.get(appUrl, 'jitgate_session')).toBeUndefined();
    expect(logs.some((l) => l.includes('OIDC callback refused') && l.includes('nonce'))).toBe(true);
  });

  /** A real ID token from `from` for `clientId` (full code flow driven by the test). */
  async function realIdToken(from: Idp, clientId: string, secret: string, redirect: string, sub: string): Promise<string> {
    from.accounts.set(sub, idp.accounts.get(sub)!);
    from.next.id = sub;
    const config = await oidc.discovery(new URL(from.issuer), clientId, undefined, oidc.ClientSecretBasic(secret), { execute: [oidc.allowInsecureRequests] });
    const verifier = oidc.randomPKCECodeVerifier();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, { redirect_uri: redirect, scope: 'openid', nonce, code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 's'.repeat(20) });
    const cb = await browse(new Jar(), url.href, redirect);
    const t = await oidc.authorizationCodeGrant(config, new URL(cb), { pkceCodeVerifier: verifier, expectedState: 's'.repeat(20), expectedNonce: nonce });
    return t.id_token!;
  }

  it.each([
    ['audience', 'aud'],
    ['issuer', 'iss'],
  ])('an ID token for another %s is refused', async (_what, claim) => {
    const sub = account();
    substituteIdToken = claim === 'aud'
      ? await realIdToken(idp, 'other', 'other-secret-1234', `${appUrl}/other/cb`, sub)
      : await realIdToken(idp2, 'jitgate', CLIENT_SECRET, callbackPrefix(), sub);
    idp.next.id = sub;
    try {
      const jar = new Jar();
      const res = await go(jar, await startFlow(jar));
      expect(res.headers.get('location')).toBe('/sign-in?error=JIT_ERR_AUTH_SSO_FAILED');
      expect(jar.get(appUrl, 'jitgate_session')).toBeUndefined();
      expect(logs.some((l) => l.includes('OIDC callback refused') && l.includes(`"reason":"OAUTH_JWT_CLAIM_COMPARISON_FAILED ${claim}"`))).toBe(true);
    } finally {
      substituteIdToken = null;
    }
  });

  it('an expired ID token (provider session older than its lifetime) is refused; so is a stale sign-in', async () => {
    const sub = account();
    const jar = new Jar();
    const cb = await startFlow(jar);
    clock += 5 * 60_000; // ID tokens live 60 s at this provider; the pending sign-in 10 min
    try {
      const res = await go(jar, cb);
      expect(res.headers.get('location')).toBe('/sign-in?error=JIT_ERR_AUTH_SSO_FAILED');
      expect(logs.some((l) => l.includes('OIDC callback refused') && l.includes('TIMESTAMP'))).toBe(true);
    } finally {
      clock -= 5 * 60_000;
    }
    idp.next.id = sub;
    const jar2 = new Jar();
    const cb2 = await startFlow(jar2);
    clock += 11 * 60_000;
    try {
      expect((await go(jar2, cb2)).headers.get('location')).toBe('/sign-in?error=JIT_ERR_AUTH_SSO_FAILED');
    } finally {
      clock -= 11 * 60_000;
    }
    expect(jar2.get(appUrl, 'jitgate_session')).toBeUndefined();
  });

  it('back-channel logout from the provider ends the sign-in and its live sessions; forged and replayed tokens are refused', async () => {
    const sub = account();
    const jar = new Jar();
    await go(jar, await startFlow(jar));
    const m = await me(jar);
    expect(m.person).not.toBeNull();
    const [s] = await db.query<{ id: string; idp_sid: string }>('SELECT id, idp_sid FROM auth_sessions WHERE person_id = $1 AND revoked_at IS NULL', [m.person!.id]);
    expect(s?.idp_sid).toBeTruthy();

    // Forged: right claims, signed by a key the provider does not have.
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(clock / 1000);
    const body = `${enc({ alg: 'RS256', typ: 'logout+jwt' })}.${enc({ iss: idp.issuer, aud: 'jitgate', iat: now, jti: randomUUID(), sid: s!.idp_sid, events: { 'http://schemas.openid.net/event/backchannel-logout': {} } })}`;
    const forged = `${body}.${sign('sha256', Buffer.from(body), privateKey).toString('base64url')}`;
    const bad = await fetch(`${appUrl}/api/v1/auth/oidc/corp/backchannel-logout`, { method: 'POST', body: new URLSearchParams({ logout_token: forged }) });
    expect(bad.status).toBe(400);
    expect((await me(jar)).person).not.toBeNull();

    // The provider's own back-channel logout (OIDC Back-Channel Logout 1.0), posted to the gateway.
    const client = await idp.provider.Client.find('jitgate');
    await client!.backchannelLogout(sub, s!.idp_sid);
    expect((await me(jar)).person).toBeNull();
    expect(ended.some((e) => e.match.personId === m.person!.id && e.match.authSessionIds?.includes(s!.id) && e.by === 'system:corp')).toBe(true);
    expect((await auditOf('auth.backchannel_logout')).some((e) => (e.data['people'] as string[]).includes(m.person!.login))).toBe(true);
  });

  it('a person whose claims no longer map is disabled at the next sign-in and loses their sessions', async () => {
    const sub = account();
    const jar = new Jar();
    await go(jar, await startFlow(jar));
    const m = await me(jar);
    expect(m.person).not.toBeNull();
    idp.accounts.get(sub)!.groups = ['staff'];
    idp.next.id = sub;
    const jar2 = new Jar();
    const res = await go(jar2, await startFlow(jar2));
    expect(res.headers.get('location')).toBe('/sign-in?error=JIT_ERR_AUTH_SSO_NOT_MAPPED');
    const [p] = await db.query<{ disabled: boolean }>('SELECT disabled FROM people WHERE id = $1', [m.person!.id]);
    expect(p?.disabled).toBe(true);
    expect((await me(jar)).person).toBeNull();
    expect(ended.some((e) => e.match.personId === m.person!.id && e.match.authSessionIds === undefined && e.by === 'system:auth')).toBe(true);
    expect((await auditOf('auth.deprovisioned')).some((e) => e.data['person'] === m.person!.login && e.data['reason'] === 'no-role')).toBe(true);
  });

  it('an organization can forbid local passwords; break-glass admins keep theirs', async () => {
    const forbidOrg = randomUUID();
    await db.query('INSERT INTO organizations (id, name, shared_code, local_passwords_allowed) VALUES ($1, $2, $3, false)', [forbidOrg, `nopw-${forbidOrg.slice(0, 6)}`, forbidOrg.slice(0, 6)]);
    const pw = `Pw-${randomBytes(9).toString('base64url')}`;
    const tech = await createPerson(db, { login: `t${randomBytes(4).toString('hex')}`, displayName: 'T', role: 'technician', organizationId: forbidOrg, password: pw });
    const admin = await createPerson(db, { login: `a${randomBytes(4).toString('hex')}`, displayName: 'A', role: 'org_admin', organizationId: forbidOrg, password: pw });
    await db.query('UPDATE people SET break_glass = true WHERE id = $1', [admin.id]);
    const post = (login: string) => fetch(`${appUrl}/api/v1/auth/sign-in`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login, password: pw }) });
    const r1 = await post(tech.login);
    expect(r1.status).toBe(403);
    expect(((await r1.json()) as { code: string }).code).toBe('JIT_ERR_AUTH_LOCAL_PASSWORD_FORBIDDEN');
    const r2 = await post(admin.login);
    expect(r2.status).toBe(200);
  });
});
