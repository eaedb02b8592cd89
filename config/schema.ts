import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';
import { Secret } from '../core/secret.js';
import { auditForwardConfigSchema } from '../core/audit-forward.js';

/**
 * The one schema for jitgate's configuration file and environment
 * overrides. Unknown keys are rejected everywhere (strictObject). Secret
 * fields accept a literal, `env:NAME` or `file:/path`; `loadConfig` resolves
 * them into `Secret` objects before validation of the rest.
 */

type Env = Record<string, string | undefined>;

/** A secret given as a literal, `env:NAME` or `file:/path`, resolved into a `Secret`. */
function secretRef(env: Env) {
  return z
    .string()
    .min(1, 'must not be empty')
    .transform((raw, ctx): Secret => {
      if (raw.startsWith('env:')) {
        const name = raw.slice(4);
        const v = env[name];
        if (v === undefined || v === '') {
          ctx.addIssue({ code: 'custom', message: `environment variable ${name} is not set` });
          return z.NEVER;
        }
        return new Secret(v);
      }
      if (raw.startsWith('file:')) {
        const path = raw.slice(5);
        try {
          return new Secret(readFileSync(path, 'utf8').replace(/\r?\n$/, ''));
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code ?? 'error';
          ctx.addIssue({ code: 'custom', message: `cannot read secret file ${path} (${code})` });
          return z.NEVER;
        }
      }
      return new Secret(raw);
    });
}

/**
 * Why `entry` is not an IPv4/IPv6 address or CIDR block of reverse proxies
 * to trust, or null when it is one. Everything-blocks are refused: they are
 * `trustProxy: true` under another name.
 */
export function trustProxyEntryProblem(entry: string): string | null {
  const [addr = '', prefix, extra] = entry.trim().split('/');
  const family = isIP(addr);
  if (family === 0 || extra !== undefined) return `${entry}: not an IPv4/IPv6 address or CIDR block`;
  if (prefix === undefined) return null;
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) return `${entry}: the prefix length must be 0..${max}`;
  if (Number(prefix) === 0) return `${entry}: trusts every address; list your reverse proxies`;
  return null;
}

/**
 * `server.trustProxy`: false (default: no proxy; X-Forwarded-* are ignored)
 * or the addresses/CIDRs of the reverse proxies in front of jitgate. Only a
 * request whose direct peer is one of them has its X-Forwarded-For/-Proto/
 * -Host read (docs/reverse-proxy.md). `true` (trust anyone) is refused: any
 * client could then choose the address that is audited and rate-limited.
 */
function trustProxySchema() {
  return z.unknown().transform((raw, ctx): false | string[] => {
    if (raw === false) return false;
    if (raw === true) {
      ctx.addIssue({
        code: 'custom',
        message:
          'true would trust X-Forwarded-For from any client: list the addresses or CIDRs of your reverse proxies instead ' +
          '(e.g. [127.0.0.1] or [10.0.0.5, "fd00::/8"]), see docs/reverse-proxy.md',
      });
      return z.NEVER;
    }
    // From the environment: `JITGATE_SERVER__TRUST_PROXY=10.0.0.5,10.0.0.6` (a YAML flow list works too).
    const list = typeof raw === 'string' ? raw.split(',') : raw;
    if (!Array.isArray(list) || list.length === 0 || !list.every((e) => typeof e === 'string')) {
      ctx.addIssue({ code: 'custom', message: 'false, or a non-empty list of reverse proxy addresses/CIDRs' });
      return z.NEVER;
    }
    let ok = true;
    for (const [i, e] of (list as string[]).entries()) {
      const problem = trustProxyEntryProblem(e);
      if (problem) {
        ok = false;
        ctx.addIssue({ code: 'custom', path: [i], message: problem });
      }
    }
    return ok ? (list as string[]).map((e) => e.trim()) : z.NEVER;
  });
}

/**
 * Why an account store's transport would expose the service credentials, or
 * null when it does not: an LDAP simple bind over `ldap://` without StartTLS
 * sends the bind password in clear; WinRM over `http://` (NTLM-sealed or
 * Basic) authenticates no server and NTLM over it can be relayed. Refused
 * unless the store says `allowInsecureTransport: true` (then a warning).
 */
export function insecureTransportProblem(
  s: { type: 'ldap'; url: string; startTls: boolean; allowInsecureTransport: boolean } | { type: 'winrm'; endpoint: string; allowInsecureTransport: boolean },
): string | null {
  if (s.allowInsecureTransport) return null;
  if (s.type === 'ldap' && /^ldap:\/\//i.test(s.url) && !s.startTls) {
    return 'ldap:// without startTls would send the bind password in clear: use ldaps://, or set startTls: true (or allowInsecureTransport: true, not recommended)';
  }
  if (s.type === 'winrm' && /^http:\/\//i.test(s.endpoint)) {
    return 'http:// would authenticate no server and expose the service credentials (NTLM can be relayed): use https://host:5986/wsman with caCert (or allowInsecureTransport: true, not recommended)';
  }
  return null;
}

/** Stores whose configuration accepts credentials over a weak transport: one warning line each, for `jitgate check`. */
export function insecureTransportWarnings(stores: readonly ({ name: string } & ({ type: 'ldap'; url: string; startTls: boolean; allowInsecureTransport: boolean } | { type: 'winrm'; endpoint: string; allowInsecureTransport: boolean } | { type: 'ssh' }))[]): string[] {
  const out: string[] = [];
  for (const s of stores) {
    if (s.type === 'ssh' || !s.allowInsecureTransport) continue;
    const where = s.type === 'ldap' ? s.url : s.endpoint;
    const weak = insecureTransportProblem({ ...s, allowInsecureTransport: false }) !== null;
    out.push(
      weak
        ? `account store ${s.name}: allowInsecureTransport is true and ${where} is not encrypted: the service credentials can be read or relayed on the network`
        : `account store ${s.name}: allowInsecureTransport is true (not needed for ${where}; remove it)`,
    );
  }
  return out;
}

/** Build the schema; `env` resolves `env:NAME` secret references. */
export function buildConfigSchema(env: Env) {
  const duration = z.number().int().positive();
  // Which organizations' computers may use a store (names as in the organizations table). Absent: only
  // global admins may assign the store to computers (gateway/api, provisioner/store-scope.ts).
  const storeOwners = z
    .array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$/, 'an organization name'))
    .min(1, 'name at least one organization, or leave the key out (global admins only)')
    .refine((a) => new Set(a).size === a.length, 'each organization once')
    .optional()
    .describe('organizations whose admins may assign this store to their computers; absent → global admins only');

  /** Elevation of existing accounts (computers with jit.mode elevate; docs/jit-engine.md "Create or elevate"). */
  const elevation = (what: string) =>
    z
      .strictObject({
        accountName: z
          .string()
          .min(1)
          .max(256)
          .regex(/^[^\u0000-\u001f\u007f]*\{login\}[^\u0000-\u001f\u007f]*$/, 'a name pattern containing {login}, e.g. "{login}" or "{login}@corp.example"')
          .default('{login}')
          .describe("a person's existing account when no admin mapped one: {login} is replaced by the person's login"),
        protectedGroups: z.array(z.string().min(1).max(1024)).max(64).default([]).describe(`${what} whose members are never elevated`),
      })
      .default({ accountName: '{login}', protectedGroups: [] });

  const ldapStore = z.strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, - and _'),
    type: z.literal('ldap'),
    organizations: storeOwners,
    url: z.string().regex(/^ldaps?:\/\/.+/, 'must be an ldap:// or ldaps:// URL'),
    startTls: z.boolean().default(false),
    caCert: secretRef(env).describe('PEM of the CA that signed the directory certificate, or file:/path to it'),
    bindDn: z.string().min(1),
    bindPassword: secretRef(env),
    baseDn: z.string().min(1),
    accountsContainer: z.string().min(1).describe('DN of the OU where JIT accounts are created'),
    allowedContainers: z
      // At least two RDNs: an unquoted YAML flow list splits "OU=JIT,DC=corp" into "OU=JIT" and "DC=corp",
      // and a lone "DC=corp" would allow the whole domain.
      .array(z.string().regex(/^\s*[A-Za-z][A-Za-z0-9-]*\s*=(?:[^,\\]|\\.)+,\s*[A-Za-z][A-Za-z0-9-]*\s*=/, 'a DN of at least two components, e.g. "OU=JIT,DC=corp,DC=example" (quote DNs in YAML flow lists: they contain commas)'))
      .min(1)
      .optional()
      .describe("DNs a computer's jit.container may equal or lie inside; absent → [accountsContainer]"),
    groups: z.record(z.string(), z.string().min(1)).default({}).describe('group name → group DN'),
    elevation: elevation('group DNs (nested membership counts; adminCount=1 and RID 500 are refused anyway)'),
    upnSuffix: z.string().optional(),
    domain: z.string().optional().describe('NetBIOS domain name, for RDP'),
    timeoutMs: duration.default(10_000),
    allowInsecureTransport: z
      .boolean()
      .default(false)
      .describe('accept a plain ldap:// bind without StartTLS (the bind password travels in clear); `jitgate check` warns on every run'),
  }).superRefine((s, ctx) => {
    const problem = insecureTransportProblem(s);
    if (problem) ctx.addIssue({ code: 'custom', path: ['url'], message: problem });
  });

  const sshStore = z.strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, - and _'),
    type: z.literal('ssh'),
    organizations: storeOwners,
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(22),
    username: z.string().min(1).default('root'),
    privateKey: secretRef(env).describe('OpenSSH private key, or file:/path'),
    hostKeySha256: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, 'must be an OpenSSH SHA256 fingerprint (SHA256:...)'),
    markerGroup: z.string().default('jitgate-managed'),
    groups: z.record(z.string(), z.string().min(1)).default({}),
    elevation: elevation('Linux groups (root, uid 0 and system accounts are refused anyway)'),
    timeoutMs: duration.default(15_000),
    passwordHash: z
      .enum(['sha512', 'system'])
      .default('sha512')
      .describe("how the target hashes JIT passwords: sha512 (SHA-512 crypt, fast logins; the passwords are random) or system (the target's default, e.g. yescrypt)"),
    winbindDomain: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,14}$/, 'a NetBIOS domain name (letters, digits, - and _; at most 15)')
      .optional()
      .describe('NetBIOS domain whose accounts this host sees through winbind/SSSD as DOMAIN\\name; logOff then also ends that form'),
  });

  const winrmStore = z.strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, - and _'),
    type: z.literal('winrm'),
    organizations: storeOwners,
    endpoint: z.string().regex(/^https?:\/\/.+\/wsman$/, 'must be http(s)://host:port/wsman'),
    auth: z.enum(['ntlm', 'basic']).default('ntlm'),
    username: z.string().min(1),
    password: secretRef(env),
    domain: z.string().optional(),
    caCert: secretRef(env).optional(),
    groups: z.record(z.string(), z.string().min(1)).default({}),
    elevation: elevation('Windows group names or SIDs (built-in accounts, RID below 1000, are refused anyway)'),
    timeoutMs: duration.default(30_000),
    allowInsecureTransport: z
      .boolean()
      .default(false)
      .describe('accept an http:// endpoint (NTLM-sealed messages, no TLS: no server authentication, NTLM relayable); `jitgate check` warns on every run'),
  }).superRefine((s, ctx) => {
    const problem = insecureTransportProblem(s);
    if (problem) ctx.addIssue({ code: 'custom', path: ['endpoint'], message: problem });
  });

  const accountStoreSchema = z.discriminatedUnion('type', [ldapStore, sshStore, winrmStore]);

  // Sign-in through identity providers (gateway/auth, docs/auth.md). Provider names appear in URLs
  // (/api/v1/auth/oidc/<name>/...) and in the audit trail.
  const providerName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lower-case letters, digits and -');
  const roleName = z.enum(['global_admin', 'org_admin', 'technician', 'auditor']);
  const orgName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$/, 'an organization name');
  /** Ordered: the first rule whose group the person has gives the role. No rule → no sign-in (deprovisioned). */
  const roleRules = z
    .array(z.strictObject({ group: z.string().min(1).max(512), role: roleName }))
    .min(1, 'map at least one group to a role')
    .describe('group (claim value, or group DN for LDAP) → role; the first matching rule wins');
  const organizationRule = z
    .strictObject({
      claim: z.string().min(1).max(128).optional().describe('claim whose value names the organization (values → names with `values`)'),
      values: z.record(z.string(), orgName).default({}).describe('claim value → organization name; absent → the value is the name'),
      emailDomains: z.record(z.string().regex(/^[a-z0-9.-]+$/, 'a lower-case domain'), orgName).default({}).describe('verified e-mail domain → organization name'),
      default: orgName.optional().describe('organization when nothing else matches'),
    })
    .prefault({});
  const oidcProvider = z.strictObject({
    name: providerName,
    displayName: z.string().min(1).max(64).describe('shown on the sign-in button: "Sign in with <displayName>"'),
    issuer: z.string().url().refine((u) => /^https:\/\//.test(u) || /^http:\/\/(127\.\d+\.\d+\.\d+|\[::1\]|localhost)(:\d+)?(\/|$)/.test(u), 'https:// (http:// only on loopback, for tests)'),
    clientId: z.string().min(1),
    clientSecret: secretRef(env).describe('literal, env:NAME or file:/path'),
    scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/)).default(['openid', 'email', 'profile']).refine((a) => a.includes('openid'), 'must include openid'),
    redirectUri: z.string().url().optional().describe('absent → <server.publicUrl>/api/v1/auth/oidc/<name>/callback'),
    claims: z
      .strictObject({
        login: z.string().min(1).default('preferred_username'),
        displayName: z.string().min(1).default('name'),
        email: z.string().min(1).default('email'),
        groups: z.string().min(1).default('groups'),
      })
      .prefault({}),
    roles: roleRules,
    organization: organizationRule,
    trustProviderMfa: z.boolean().default(true).describe('skip jitgate TOTP when the ID token amr says mfa, otp or hwk'),
  });
  const ldapProvider = z.strictObject({
    name: providerName,
    displayName: z.string().min(1).max(64),
    url: z.string().regex(/^ldaps?:\/\/.+/, 'must be an ldap:// or ldaps:// URL'),
    startTls: z.boolean().default(false),
    caCert: secretRef(env).describe('PEM of the CA that signed the directory certificate, or file:/path to it'),
    bindDn: z.string().min(1).describe('service account that searches for the person'),
    bindPassword: secretRef(env),
    baseDn: z.string().min(1).describe('where people are searched'),
    loginAttribute: z.enum(['sAMAccountName', 'userPrincipalName']).default('sAMAccountName'),
    roles: roleRules,
    organization: organizationRule,
    timeoutMs: duration.default(10_000),
  }).superRefine((s, ctx) => {
    if (/^ldap:\/\//i.test(s.url) && !s.startTls) ctx.addIssue({ code: 'custom', path: ['url'], message: 'ldap:// without startTls would send passwords in clear: use ldaps:// or startTls: true' });
  });
  const identityProviders = z
    .strictObject({
      oidc: z.array(oidcProvider).default([]),
      ldap: z.array(ldapProvider).default([]),
    })
    .prefault({})
    .superRefine((p, ctx) => {
      const names = [...p.oidc, ...p.ldap].map((x) => x.name);
      names.forEach((n, i) => {
        if (names.indexOf(n) !== i) ctx.addIssue({ code: 'custom', message: `provider name ${n} is used twice` });
      });
    });

  const configSchema = z.strictObject({
    dataDir: z.string().min(1).default('./data'),
    role: z.enum(['all', 'gateway', 'worker']).default('all'),
    server: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        publicUrl: z.string().url().optional(),
        trustProxy: trustProxySchema().default(false),
        metricsToken: secretRef(env)
          .optional()
          .describe('bearer token for GET /metrics (Authorization: Bearer <token>); absent → /metrics answers 404'),
      })
      .prefault({}),
    database: z
      .strictObject({
        url: secretRef(env).optional().describe('postgres:// URL; absent → embedded PGlite in <dataDir>/pglite'),
        poolSize: z.number().int().min(1).max(200).default(10),
      })
      .prefault({}),
    redis: z
      .strictObject({
        url: secretRef(env).optional().describe('redis:// URL; absent → a private redis-server child on a unix socket'),
        binary: z.string().default('redis-server'),
        prefix: z.string().regex(/^[A-Za-z0-9:_-]+$/).default('jitgate'),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        pretty: z.boolean().default(false),
      })
      .prefault({}),
    secrets: z
      .strictObject({
        key: secretRef(env).optional().describe('base64 32-byte AES-256-GCM key; absent → generated in <dataDir>/secret.key'),
      })
      .prefault({}),
    jit: z
      .strictObject({
        installationId: z.string().regex(/^[a-z0-9]{4,16}$/, '4-16 lower-case letters or digits').optional(),
        defaultSessionMinutes: z.number().int().min(1).max(24 * 60).default(60),
        leaseGraceSeconds: z.number().int().min(0).max(3600).default(60),
        reconcileIntervalSeconds: z.number().int().min(10).max(86_400).default(300),
        provisioningTimeoutSeconds: z
          .number().int().min(5).max(3600).default(60)
          .describe('a session not active this long after it was requested (a crashed checkout or worker) is rolled back by the reconciler'),
        orphanCheckSeconds: z
          .number().int().min(2).max(3600).default(10)
          .describe('how often workers end sessions whose gateway is gone or whose provisioning timed out (cheap: no store is listed)'),
        provisionConcurrency: z.number().int().min(1).max(256).default(8),
        teardownAttempts: z.number().int().min(1).max(100).default(12),
      })
      .prefault({}),
    auth: z
      .strictObject({
        sessionHours: z.number().int().min(1).max(24 * 30).default(12).describe('web sign-in lifetime'),
        idleMinutes: z.number().int().min(1).max(24 * 60).default(60).describe('web sign-in ends after this much inactivity'),
        maxFailedSignIns: z.number().int().min(1).max(100).default(5).describe('failed passwords or codes before the account locks'),
        lockoutMinutes: z.number().int().min(1).max(24 * 60).default(15),
        totpIssuer: z.string().min(1).max(64).default('jitgate'),
        cookieSecure: z.enum(['auto', 'always', 'never']).default('auto').describe('auto: Secure cookie unless served on loopback over http'),
        webauthn: z
          .strictObject({
            rpId: z.string().regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i, 'a host name (no scheme, no port)').optional()
              .describe('passkeys are bound to this domain; absent → the host name of server.publicUrl, else of each request'),
            origins: z.array(z.string().url()).min(1).optional()
              .describe('origins the browser may use (https://jitgate.example.com); absent → the origin of server.publicUrl, else of each request'),
            rpName: z.string().min(1).max(64).default('jitgate').describe('name the browser shows when creating a passkey'),
          })
          .optional()
          .describe('passkeys (WebAuthn, docs/auth.md)'),
      })
      .prefault({}),
    sshFrontDoor: z
      .strictObject({
        enabled: z.boolean().default(false),
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(2222),
        hostKeyFile: z.string().optional().describe('OpenSSH private host key; absent → generated in <dataDir>/ssh_host_ed25519_key'),
      })
      .prefault({}),
    recordings: z
      .strictObject({
        dir: z.string().optional().describe('where recordings are written; absent → <dataDir>/recordings'),
        signingKey: secretRef(env).optional().describe('base64 32-byte HMAC key for the manifest; absent → generated in <dataDir>/recording-signing.key'),
        evidenceKey: secretRef(env).optional().describe('base64 32-byte Ed25519 seed that signs evidence bundles (docs/evidence.md); absent → generated in <dataDir>/evidence-signing.key'),
      })
      .prefault({}),
    guacd: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(1).max(65535).default(4822),
        recordingDir: z.string().optional().describe("guacd's view of the recordings directory (when guacd runs in a container); absent → recordings.dir"),
      })
      .prefault({}),
    audit: z
      .strictObject({
        forward: auditForwardConfigSchema.prefault({}).describe('also send each audit event as a JSON line to a file and/or syslog (RFC 5424)'),
        signingKey: secretRef(env).optional().describe('base64 32-byte HMAC key of the audit chain and its checkpoints; absent → generated in <dataDir>/audit.key'),
        checkpointFile: z.string().min(1).optional().describe('signed checkpoints of the chain head, one JSON line each; absent → <dataDir>/audit-checkpoints.jsonl'),
        checkpointEvery: z.number().int().min(1).max(1_000_000).default(100).describe('checkpoint after this many events recorded by a process'),
        checkpointIntervalSeconds: z.number().int().min(0).max(86_400).default(60).describe('and at this period when the chain moved (0: only by count and at shutdown)'),
      })
      .prefault({}),
    accountStores: z.array(accountStoreSchema).default([]),
    identityProviders: identityProviders.describe('sign-in through OIDC identity providers and LDAP/AD directories (docs/auth.md)'),
    notifications: z
      .strictObject({
        smtp: z
          .strictObject({
            host: z.string().min(1),
            port: z.number().int().min(1).max(65535).default(587),
            tls: z.enum(['starttls', 'implicit', 'none']).default('starttls').describe('starttls: upgrade required; implicit: TLS from the first byte (465); none: plain text, for a relay on loopback only'),
            user: z.string().min(1).optional(),
            password: secretRef(env).optional(),
            from: z.string().min(3).max(320).describe('sender, e.g. "jitgate <jitgate@example.com>"'),
          })
          .optional()
          .describe('email to approvers of access requests (docs/access-requests.md); absent → no email'),
        webhooks: z
          .array(
            z.strictObject({
              name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and -'),
              url: z.string().url(),
              format: z.enum(['slack', 'teams']),
              secret: secretRef(env).describe('HMAC-SHA256 key of the x-jitgate-signature header'),
              organizations: z.array(z.string().min(1)).optional().describe('organization names whose requests go here; absent → all'),
            }),
          )
          .default([])
          .describe('outgoing webhooks for access requests, Slack- or Teams-compatible, signed'),
      })
      .prefault({}),
    accessRequests: z
      .strictObject({
        pendingMinutes: z.number().int().min(1).max(7 * 24 * 60).default(60).describe('a request not approved within this time expires'),
        sweepSeconds: z.number().int().min(1).max(3600).default(15).describe('how often gateways expire windows and record which sessions used them'),
      })
      .prefault({}),
  });
  return { configSchema, accountStoreSchema };
}

type Schemas = ReturnType<typeof buildConfigSchema>;
export type ConfigInput = z.input<Schemas['configSchema']>;
export type Config = Readonly<z.output<Schemas['configSchema']>>;
export type AccountStoreConfig = z.output<Schemas['accountStoreSchema']>;
export type IdentityProvidersConfig = Config['identityProviders'];
export type OidcProviderConfig = IdentityProvidersConfig['oidc'][number];
export type LdapProviderConfig = IdentityProvidersConfig['ldap'][number];
