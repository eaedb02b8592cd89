import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../core/db/database.js';
import { Secret } from '../core/secret.js';
import { buildRdpParams } from '../gateway/rdp/rdp-params.js';
import { JitRepository } from '../provisioner/jit-repository.js';
import { ApiFixture } from './fixtures/api-fixture.js';
import { databaseFactories } from './harness/databases.js';

/**
 * Issue 13 item 3: with TLS/any security and refused credentials, guacd still
 * draws the computer's own login screen (the first `sync` is no proof of
 * login). So a Windows/RDP computer is NLA unless an admin says otherwise,
 * however it was created: the stored policy says `nla` and the guacd
 * parameters built from the stored row carry `security=nla`.
 */
const jit = { enabled: true, deleteOnCheckIn: true, adminGroups: ['admins'], accountType: 'domain' };

for (const factory of databaseFactories()) {
  describe.skipIf(factory.skip)(`RDP security defaults to NLA (${factory.label})`, () => {
    let db: Database;
    let f: ApiFixture;
    beforeAll(async () => {
      db = await factory.open();
      f = await ApiFixture.start(db);
    });
    afterAll(async () => {
      await f?.close();
      await db?.close();
    });

    async function storedAndParams(id: string): Promise<{ stored: Record<string, unknown>; security: string | undefined }> {
      const row = await db.query<{ policy: unknown }>('SELECT policy FROM computers WHERE id = $1', [id]);
      const raw = row[0]!.policy;
      const stored = (typeof raw === 'string' ? JSON.parse(raw) : raw) as Record<string, unknown>;
      const computer = (await new JitRepository(db).getComputer(id))!;
      const built = buildRdpParams({
        computer, credentials: { username: 'jit_x', password: new Secret('pw'), domain: 'CORP' }, recording: null, driveRoot: '/drives', sessionId: 's1',
      });
      return { stored, security: built.params.security };
    }

    it('a computer created through the API without rdpSecurity (no policy at all, or a policy without it) is NLA, stored and at guacd', async () => {
      const a = await f.org('a');
      const me = f.as(await f.person('org_admin', a.id));
      const bare = await me.post('/computers', { name: 'win-bare', address: '10.0.0.21', protocols: ['rdp'], domainStore: 'ad', jit });
      expect(bare.statusCode).toBe(201);
      expect(bare.json().policy.rdpSecurity).toBe('nla');
      expect(await storedAndParams(bare.json().id)).toEqual({ stored: expect.objectContaining({ rdpSecurity: 'nla' }), security: 'nla' });

      const partial = await me.post('/computers', { name: 'win-partial', address: '10.0.0.22', protocols: ['rdp'], domainStore: 'ad', jit, policy: { clipboard: true } });
      expect(partial.statusCode).toBe(201);
      expect(await storedAndParams(partial.json().id)).toEqual({ stored: expect.objectContaining({ rdpSecurity: 'nla', clipboard: 'both' }), security: 'nla' });

      // An admin's explicit choice stands.
      const tls = await me.post('/computers', { name: 'win-tls', address: '10.0.0.23', protocols: ['rdp'], domainStore: 'ad', jit, policy: { rdpSecurity: 'tls' } });
      expect(await storedAndParams(tls.json().id)).toEqual({ stored: expect.objectContaining({ rdpSecurity: 'tls' }), security: 'tls' });
    });

    it('a computer imported from an inventory without rdpSecurity is NLA, stored and at guacd', async () => {
      const a = await f.org('inv');
      const ga = f.as(await f.person('global_admin', null));
      const yaml = `computers:\n  - organization: ${a.name}\n    name: win-inv-${f.tag}\n    address: 10.0.0.24\n    protocols: [rdp]\n    domainStore: ad\n    jit: { enabled: true, deleteOnCheckIn: true, adminGroups: [admins], accountType: domain }\n`;
      const imported = await ga.post('/inventory/import', yaml, { 'content-type': 'application/yaml' });
      expect(imported.statusCode).toBe(200);
      const row = await db.query<{ id: string }>('SELECT id FROM computers WHERE name = $1', [`win-inv-${f.tag}`]);
      expect(await storedAndParams(row[0]!.id)).toEqual({ stored: expect.objectContaining({ rdpSecurity: 'nla' }), security: 'nla' });
    });
  });
}
