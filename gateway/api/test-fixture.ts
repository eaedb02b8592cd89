import { randomBytes, randomUUID } from 'node:crypto';
import { createReadStream, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import fp from 'fastify-plugin';
import { AuditLog } from '../../core/audit.js';
import type { Database } from '../../core/db/database.js';
import type { Computer } from '../../core/domain.js';
import { silentLogger } from '../../core/logging.js';
import { toComputer } from '../../provisioner/jit-repository.js';
import { AccessService } from '../access-policy.js';
import type { Principal, Role } from '../auth/principal.js';
import type { LiveSessionInfo, LiveSessions } from '../contracts.js';
import { createMetrics } from '../metrics.js';
import { buildServer } from '../server.js';
import type { ApiDeps, RecordingFiles } from './deps.js';
import { apiRoutes } from './index.js';

/**
 * Test-only wiring of the administration API (imported by tests, never by
 * main.ts): a real fastify server on a real database, with `req.principal`
 * loaded from the `people` table by a test header instead of the auth
 * plugin, so these tests do not depend on gateway/auth.
 */

/** Live sessions held in memory (the real one spans gateways over Redis). */
export class MemoryLiveSessions implements LiveSessions {
  readonly live = new Map<string, LiveSessionInfo>();
  readonly terminated: { sessionId: string; by: string }[] = [];
  async list(): Promise<LiveSessionInfo[]> {
    return [...this.live.values()];
  }
  async terminate(sessionId: string, by: string): Promise<boolean> {
    const held = this.live.delete(sessionId);
    if (held) this.terminated.push({ sessionId, by });
    return held;
  }
  async watch(): Promise<() => void> {
    return () => undefined;
  }
}

/** Recording files in a temporary directory, keyed by recording id. */
export class DirRecordingFiles implements RecordingFiles {
  readonly dir = mkdtempSync(join(tmpdir(), 'jgt-api-rec-'));
  readonly integrityById = new Map<string, 'ok' | 'mismatch' | 'unsigned' | 'missing'>();
  put(recordingId: string, content: string | Buffer): void {
    writeFileSync(join(this.dir, recordingId), content);
  }
  async open(recordingId: string) {
    const path = join(this.dir, recordingId);
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      return null;
    }
    return { stream: createReadStream(path), contentType: 'application/x-asciicast', size, integrity: this.integrityById.get(recordingId) ?? 'ok' };
  }
  async integrity(recordingId: string) {
    return this.integrityById.get(recordingId) ?? 'ok';
  }
}

export const TEST_PERSON_HEADER = 'x-test-person';

export class ApiFixture {
  readonly audit: AuditLog;
  readonly access: AccessService;
  readonly live = new MemoryLiveSessions();
  readonly files = new DirRecordingFiles();
  readonly storeChecks: string[] = [];
  readonly ended: { sessionId: string; reason: string }[] = [];
  readonly extended: { sessionId: string; minutes: number; actor: string }[] = [];
  readonly tag = randomBytes(4).toString('hex');
  app!: FastifyInstance;

  private constructor(readonly db: Database) {
    this.audit = new AuditLog(db);
    this.access = new AccessService(db, this.audit);
  }

  static async start(db: Database, extra: Partial<ApiDeps> = {}): Promise<ApiFixture> {
    const f = new ApiFixture(db);
    const deps: ApiDeps = {
      db, audit: f.audit, access: f.access, liveSessions: f.live, recordingFiles: f.files,
      stores: [
        { name: 'ad', type: 'ldap', url: 'ldaps://dc1.example.test' },
        { name: 'linux', type: 'ssh', url: 'ssh://10.0.0.9:22' },
      ],
      checkStore: async (name) => {
        f.storeChecks.push(name);
        return name === 'ad' ? { ok: true } : { ok: false, error: 'JIT_ERR_STORE_UNREACHABLE: connect ECONNREFUSED' };
      },
      // argon2 at full cost is slow on a shared 2-core machine; tests check the hash is stored, not its strength.
      hashPassword: async (pw) => `test-hash:${pw.length}`,
      endSession: async (sessionId, reason) => void f.ended.push({ sessionId, reason }),
      extendSession: async (sessionId, minutes, actor) => {
        f.extended.push({ sessionId, minutes, actor });
        return { leaseExpiresAt: new Date(Date.UTC(2030, 0, 1)) };
      },
      ...extra,
    };
    const principalFromHeader = fp(async (app: FastifyInstance) => {
      app.addHook('onRequest', async (req) => {
        const id = req.headers[TEST_PERSON_HEADER];
        req.principal = typeof id === 'string' ? await f.principal(id) : null;
      });
    });
    f.app = await buildServer({
      log: silentLogger(), metrics: createMetrics(), version: 'test', readiness: [],
      rootPlugins: [async (app) => app.register(principalFromHeader)],
      apiPlugins: [apiRoutes(deps)],
    });
    await f.app.ready();
    return f;
  }

  async close(): Promise<void> {
    await this.app.close();
  }

  /** The principal as the auth plugin would build it from the people table. */
  async principal(personId: string): Promise<Principal | null> {
    const rows = await this.db.query<{ id: string; login: string; display_name: string; role: Role; organization_id: string | null }>(
      'SELECT id, login, display_name, role, organization_id FROM people WHERE id = $1 AND NOT disabled',
      [personId],
    );
    const r = rows[0];
    return r ? { personId: r.id, login: r.login, displayName: r.display_name, role: r.role, organizationId: r.organization_id, authSessionId: `test-${r.id}` } : null;
  }

  async org(label = 'org'): Promise<{ id: string; name: string }> {
    const id = randomUUID();
    const name = `${label}-${this.tag}-${id.slice(0, 6)}`;
    await this.db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1,$2,$3)', [id, name, String(10_000_000 + Math.floor(Math.random() * 89_999_999))]);
    return { id, name };
  }

  async person(role: Role, organizationId: string | null, label: string = role): Promise<Principal> {
    const id = randomUUID();
    const login = `${label.replace(/_/g, '-')}-${this.tag}-${id.slice(0, 6)}`;
    await this.db.query('INSERT INTO people (id, login, display_name, role, organization_id) VALUES ($1,$2,$3,$4,$5)', [id, login, `Test ${label}`, role, organizationId]);
    return (await this.principal(id))!;
  }

  async computer(organizationId: string, opts: { restricted?: boolean; name?: string; protocols?: string[] } = {}): Promise<Computer> {
    const rows = await this.db.query(
      `INSERT INTO computers (id, organization_id, name, address, protocols, domain_store, local_store, jit, restricted)
       VALUES ($1,$2,$3,'10.0.0.5',$4,'ad','linux',$5,$6) RETURNING *`,
      [randomUUID(), organizationId, opts.name ?? `pc-${randomBytes(3).toString('hex')}`, opts.protocols ?? ['ssh', 'rdp'],
        JSON.stringify({ enabled: true, deleteOnCheckIn: true, adminGroups: ['admins'], accountType: 'choose' }), opts.restricted ?? false],
    );
    return toComputer(rows[0]!);
  }

  async grant(computerId: string, personId: string): Promise<void> {
    await this.db.query('INSERT INTO grants (computer_id, person_id) VALUES ($1,$2)', [computerId, personId]);
  }

  /** A session row as the JIT engine writes it (organization filled in by the migration-4 trigger). */
  async session(c: Computer, p: Principal, state = 'active'): Promise<string> {
    const id = randomUUID();
    await this.db.query(
      `INSERT INTO sessions (id, person_id, person_login, computer_id, computer_name, protocol, account_type, account_name, state, lease_expires_at, started_at)
       VALUES ($1,$2,$3,$4,$5,'ssh','domain',$6,$7, now() + interval '1 hour', now())`,
      [id, p.personId, p.login, c.id, c.name, `${p.login.slice(0, 6)}_abc123`, state],
    );
    return id;
  }

  async recording(sessionId: string, content = '{"version":2,"width":80,"height":24}\n[0.1,"o","hello"]\n', startedAt = new Date()): Promise<string> {
    const id = randomUUID();
    await this.db.query('INSERT INTO recordings (id, session_id, kind, path, size_bytes, sha256, started_at) VALUES ($1,$2,$3,$4,$5,$6,$7)', [
      id, sessionId, 'asciicast', `/rec/${id}.cast`, Buffer.byteLength(content), 'ab'.repeat(32), startedAt,
    ]);
    this.files.put(id, content);
    return id;
  }

  /** A request made as `p` (null: not signed in). */
  as(p: Principal | null) {
    const req = (method: InjectOptions['method'], url: string, body?: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> =>
      this.app.inject({
        method, url: `/api/v1${url}`,
        headers: { ...(p ? { [TEST_PERSON_HEADER]: p.personId } : {}), ...headers },
        ...(body === undefined ? {} : typeof body === 'string' ? { payload: body } : { payload: body as object }),
      });
    return {
      get: (url: string) => req('GET', url),
      post: (url: string, body?: unknown, headers?: Record<string, string>) => req('POST', url, body ?? {}, headers),
      patch: (url: string, body: unknown) => req('PATCH', url, body),
      put: (url: string, body?: unknown) => req('PUT', url, body ?? {}),
      delete: (url: string) => req('DELETE', url),
    };
  }
}
