import { readFileSync } from 'node:fs';
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

/** Build the schema; `env` resolves `env:NAME` secret references. */
export function buildConfigSchema(env: Env) {
  const duration = z.number().int().positive();

  const ldapStore = z.strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, - and _'),
    type: z.literal('ldap'),
    url: z.string().regex(/^ldaps?:\/\/.+/, 'must be an ldap:// or ldaps:// URL'),
    startTls: z.boolean().default(false),
    caCert: secretRef(env).describe('PEM of the CA that signed the directory certificate, or file:/path to it'),
    bindDn: z.string().min(1),
    bindPassword: secretRef(env),
    baseDn: z.string().min(1),
    accountsContainer: z.string().min(1).describe('DN of the OU where JIT accounts are created'),
    groups: z.record(z.string(), z.string().min(1)).default({}).describe('group name → group DN'),
    upnSuffix: z.string().optional(),
    domain: z.string().optional().describe('NetBIOS domain name, for RDP'),
    timeoutMs: duration.default(10_000),
  });

  const sshStore = z.strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, - and _'),
    type: z.literal('ssh'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(22),
    username: z.string().min(1).default('root'),
    privateKey: secretRef(env).describe('OpenSSH private key, or file:/path'),
    hostKeySha256: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, 'must be an OpenSSH SHA256 fingerprint (SHA256:...)'),
    markerGroup: z.string().default('jitgate-managed'),
    groups: z.record(z.string(), z.string().min(1)).default({}),
    timeoutMs: duration.default(15_000),
    passwordHash: z
      .enum(['sha512', 'system'])
      .default('sha512')
      .describe("how the target hashes JIT passwords: sha512 (SHA-512 crypt, fast logins; the passwords are random) or system (the target's default, e.g. yescrypt)"),
  });

  const winrmStore = z.strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, - and _'),
    type: z.literal('winrm'),
    endpoint: z.string().regex(/^https?:\/\/.+\/wsman$/, 'must be http(s)://host:port/wsman'),
    auth: z.enum(['ntlm', 'basic']).default('ntlm'),
    username: z.string().min(1),
    password: secretRef(env),
    domain: z.string().optional(),
    caCert: secretRef(env).optional(),
    groups: z.record(z.string(), z.string().min(1)).default({}),
    timeoutMs: duration.default(30_000),
  });

  const accountStoreSchema = z.discriminatedUnion('type', [ldapStore, sshStore, winrmStore]);

  const configSchema = z.strictObject({
    dataDir: z.string().min(1).default('./data'),
    role: z.enum(['all', 'gateway', 'worker']).default('all'),
    server: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        publicUrl: z.string().url().optional(),
        trustProxy: z.boolean().default(false),
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
      })
      .prefault({}),
    accountStores: z.array(accountStoreSchema).default([]),
  });
  return { configSchema, accountStoreSchema };
}

type Schemas = ReturnType<typeof buildConfigSchema>;
export type ConfigInput = z.input<Schemas['configSchema']>;
export type Config = Readonly<z.output<Schemas['configSchema']>>;
export type AccountStoreConfig = z.output<Schemas['accountStoreSchema']>;
