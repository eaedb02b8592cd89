import { verify } from '@node-rs/argon2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../core/db/database.js';
import { GuacdCapabilities } from '../gateway/rdp/guacd-capabilities.js';
import { ApiFixture } from './fixtures/api-fixture.js';
import { GUACD_1_5_RDP_ARGS, startGuacdPeer } from './harness/guacd-peer.js';
import { databaseFactories } from './harness/databases.js';

/**
 * The administration API on a real database (PGlite and PostgreSQL):
 * every authorization rule of docs/api.md "Authorization" through HTTP,
 * including cross-organization reads and writes and role escalation.
 */
const validJit = { enabled: true, deleteOnCheckIn: true, adminGroups: ['admins'], accountType: 'domain' };

for (const factory of databaseFactories()) {
  describe.skipIf(factory.skip)(`administration API (${factory.label})`, () => {
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

    it('answers 401 without a principal on every administration route', async () => {
      const anon = f.as(null);
      for (const r of [
        await anon.get('/organizations'), await anon.get('/people'), await anon.get('/computers'), await anon.get('/jit-presets'),
        await anon.get('/account-stores'), await anon.get('/sessions'), await anon.get('/recordings'), await anon.get('/audit'),
        await anon.post('/organizations', { name: 'x' }), await anon.get('/inventory/export'),
      ]) {
        expect(r.statusCode).toBe(401);
        expect(r.json().code).toBe('JIT_ERR_AUTH_REQUIRED');
      }
    });

    it('organizations: global admins write; others read only their own; cross-organization is 404', async () => {
      const ga = await f.person('global_admin', null);
      const a = await f.org('a');
      const b = await f.org('b');
      const adminA = await f.person('org_admin', a.id);
      const created = await f.as(ga).post('/organizations', { name: `new-${f.tag}`, sharedCode: '4242' + f.tag.slice(0, 4).replace(/\D/g, '1') });
      expect(created.statusCode).toBe(201);
      expect(created.json()).toMatchObject({ name: `new-${f.tag}` });
      const list = (await f.as(adminA).get('/organizations')).json() as { id: string }[];
      expect(list.map((o) => o.id)).toEqual([a.id]);
      const all = (await f.as(ga).get('/organizations')).json() as { id: string }[];
      expect(all.map((o) => o.id)).toEqual(expect.arrayContaining([a.id, b.id, created.json().id]));

      const own = await f.as(adminA).patch(`/organizations/${a.id}`, { name: 'renamed' });
      expect(own.statusCode).toBe(403);
      expect(own.json()).toMatchObject({ code: 'JIT_ERR_FORBIDDEN', details: { action: 'change organizations' } });
      expect((await f.as(adminA).patch(`/organizations/${b.id}`, { name: 'renamed' })).statusCode).toBe(404);
      expect((await f.as(adminA).delete(`/organizations/${b.id}`)).statusCode).toBe(404);
      expect((await f.as(adminA).post('/organizations', { name: `x-${f.tag}` })).statusCode).toBe(403);

      const dup = await f.as(ga).post('/organizations', { name: a.name });
      expect(dup.statusCode).toBe(409);
      const bad = await f.as(ga).post('/organizations', { name: '', sharedCode: '12', extra: 1 });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().details.fields).toEqual({ name: expect.any(String), sharedCode: '4-8 digits', extra: 'unknown field' });
      // An organization with people cannot be deleted; an empty one can.
      expect((await f.as(ga).delete(`/organizations/${a.id}`)).statusCode).toBe(409);
      expect((await f.as(ga).delete(`/organizations/${created.json().id}`)).statusCode).toBe(204);
    });

    it('people: org admins manage their organization only, never global admins, never above their own role', async () => {
      const a = await f.org('a');
      const b = await f.org('b');
      const ga = await f.person('global_admin', a.id);
      const adminA = await f.person('org_admin', a.id);
      const techA = await f.person('technician', a.id);
      const techB = await f.person('technician', b.id);
      const me = f.as(adminA);

      const list = (await me.get('/people')).json() as { id: string; login: string }[];
      expect(list.map((p) => p.id).sort()).toEqual([adminA.personId, techA.personId].sort());
      expect(JSON.stringify(list)).not.toContain('password');

      const body = { login: `newtech-${f.tag}`, displayName: 'New Tech', role: 'technician', organizationId: a.id, password: 'correct horse battery' };
      const created = await me.post('/people', body);
      expect(created.statusCode).toBe(201);
      expect(created.json()).toEqual({
        id: expect.any(String), login: body.login, displayName: 'New Tech', email: null, role: 'technician', organizationId: a.id,
        totpEnabled: false, disabled: false, locked: false, lockedUntil: null,
        // An admin typed the password: the person must change it at first sign-in.
        mustChangePassword: true,
      });
      const hashRow = await db.query<{ password_hash: string }>('SELECT password_hash FROM people WHERE id = $1', [created.json().id]);
      expect(hashRow[0]!.password_hash).toBe('test-hash:21');

      // Escalation and cross-organization attempts.
      const asGlobal = await me.post('/people', { ...body, login: `x1-${f.tag}`, role: 'global_admin', organizationId: null });
      expect(asGlobal.statusCode).toBe(403);
      const inB = await me.post('/people', { ...body, login: `x2-${f.tag}`, organizationId: b.id });
      expect(inB.statusCode).toBe(403);
      expect((await me.patch(`/people/${techA.personId}`, { role: 'global_admin' })).statusCode).toBe(403);
      expect((await me.patch(`/people/${techA.personId}`, { organizationId: b.id })).statusCode).toBe(403);
      expect((await me.patch(`/people/${adminA.personId}`, { role: 'global_admin' })).statusCode).toBe(403);
      expect((await me.patch(`/people/${techB.personId}`, { disabled: true })).statusCode).toBe(404);
      expect((await me.delete(`/people/${techB.personId}`)).statusCode).toBe(404);
      // A global admin in the same organization is invisible and untouchable to the org admin.
      expect((await me.patch(`/people/${ga.personId}`, { disabled: true })).statusCode).toBe(404);
      expect((await me.post(`/people/${ga.personId}/reset-mfa`)).statusCode).toBe(404);
      expect((await me.delete(`/people/${adminA.personId}`)).statusCode).toBe(403);
      // Technicians administer nobody; they may edit their own display name.
      expect((await f.as(techA).post('/people', { ...body, login: `x3-${f.tag}` })).statusCode).toBe(403);
      expect((await f.as(techA).patch(`/people/${techA.personId}`, { role: 'org_admin' })).statusCode).toBe(403);
      expect((await f.as(techA).patch(`/people/${techA.personId}`, { displayName: 'Me' })).json().displayName).toBe('Me');
      expect((await f.as(techA).get('/people')).json().map((p: { id: string }) => p.id)).toEqual([techA.personId]);

      // Allowed administration within the organization.
      expect((await me.patch(`/people/${techA.personId}`, { role: 'auditor' })).json().role).toBe('auditor');
      await db.query("UPDATE people SET totp_enabled = true, totp_secret_enc = 'x', locked_until = now() + interval '1 hour' WHERE id = $1", [techA.personId]);
      expect((await me.get('/people')).json().find((p: { id: string }) => p.id === techA.personId).locked).toBe(true);
      expect((await me.patch(`/people/${techA.personId}`, { locked: false })).json().locked).toBe(false);
      expect((await me.post(`/people/${techA.personId}/reset-mfa`)).statusCode).toBe(204);
      const after = await db.query<{ totp_enabled: boolean; totp_secret_enc: string | null }>('SELECT totp_enabled, totp_secret_enc FROM people WHERE id = $1', [techA.personId]);
      expect(after[0]).toEqual({ totp_enabled: false, totp_secret_enc: null });
      expect((await me.delete(`/people/${created.json().id}`)).statusCode).toBe(204);
      // A global admin may create a global auditor; a technician needs an organization.
      expect((await f.as(ga).post('/people', { ...body, login: `gaud-${f.tag}`, role: 'auditor', organizationId: null })).statusCode).toBe(201);
      const orphan = await f.as(ga).post('/people', { ...body, login: `orph-${f.tag}`, organizationId: null });
      expect(orphan.statusCode).toBe(400);
      expect(orphan.json().details.fields).toEqual({ organizationId: 'a technician belongs to an organization' });
    });

    it('people: validation errors per field, duplicate login 409', async () => {
      const ga = await f.person('global_admin', null);
      const bad = await f.as(ga).post('/people', { login: 'Bad Login', displayName: '', role: 'root', organizationId: 'nope', password: 'short', email: 'x' });
      expect(bad.statusCode).toBe(400);
      expect(bad.json()).toMatchObject({ code: 'JIT_ERR_VALIDATION' });
      expect(Object.keys(bad.json().details.fields).sort()).toEqual(['displayName', 'email', 'login', 'organizationId', 'password', 'role']);
      expect(bad.json().details.fields.password).toBe('at least 12 characters');
      expect(bad.body).not.toContain('short');
      const withLogin = await f.as(ga).post('/people', { login: `pwl-${f.tag}`, displayName: 'x', role: 'auditor', organizationId: null, password: `my-pwl-${f.tag}-password` });
      expect(withLogin.json().details.fields).toEqual({ password: 'must not contain the login' });
      const existing = await f.person('technician', (await f.org()).id);
      const dup = await f.as(ga).post('/people', { login: existing.login, displayName: 'x', role: 'auditor', organizationId: null, password: 'long enough password' });
      expect(dup.statusCode).toBe(409);
    });

    it('computers: technicians see unrestricted ones and restricted ones only with a grant; canConnect and accountTypes', async () => {
      const a = await f.org('a');
      const b = await f.org('b');
      const open = await f.computer(a.id);
      const restricted = await f.computer(a.id, { restricted: true });
      const granted = await f.computer(a.id, { restricted: true });
      const other = await f.computer(b.id);
      const tech = await f.person('technician', a.id);
      const auditor = await f.person('auditor', a.id);
      const adminA = await f.person('org_admin', a.id);
      await f.grant(granted.id, tech.personId);

      const techList = (await f.as(tech).get('/computers')).json() as { id: string; canConnect: boolean; accountTypes: string[] }[];
      expect(techList.map((c) => c.id).sort()).toEqual([open.id, granted.id].sort());
      expect(techList.every((c) => c.canConnect)).toBe(true);
      expect(techList[0]!.accountTypes).toEqual(['domain', 'local']);
      expect((await f.as(tech).get(`/computers/${restricted.id}`)).statusCode).toBe(404);
      expect((await f.as(tech).get(`/computers/${other.id}`)).statusCode).toBe(404);

      const audList = (await f.as(auditor).get('/computers')).json() as { id: string; canConnect: boolean }[];
      expect(audList.map((c) => c.id).sort()).toEqual([open.id, restricted.id, granted.id].sort());
      expect(audList.some((c) => c.canConnect)).toBe(false);
      const adminList = (await f.as(adminA).get('/computers')).json() as { id: string; canConnect: boolean }[];
      expect(adminList.every((c) => c.canConnect)).toBe(true);
      expect(adminList.map((c) => c.id)).not.toContain(other.id);

      // Writes: technicians and auditors 403 on what they see, 404 across organizations.
      expect((await f.as(tech).patch(`/computers/${open.id}`, { address: '10.9.9.9' })).statusCode).toBe(403);
      expect((await f.as(auditor).delete(`/computers/${open.id}`)).statusCode).toBe(403);
      expect((await f.as(adminA).patch(`/computers/${other.id}`, { address: '10.9.9.9' })).statusCode).toBe(404);
      expect((await f.as(adminA).delete(`/computers/${other.id}`)).statusCode).toBe(404);
      const moved = await f.as(adminA).patch(`/computers/${open.id}`, { organizationId: b.id });
      expect(moved.statusCode).toBe(403);
      const stolen = await f.as(adminA).post('/computers', { organizationId: b.id, name: 'steal', address: 'h', protocols: ['ssh'], domainStore: 'ad', jit: validJit });
      expect(stolen.statusCode).toBe(403);
      expect((await db.query('SELECT 1 FROM computers WHERE id = $1 AND organization_id = $2', [open.id, a.id])).length).toBe(1);
    });

    it('computers: create, patch (merging jit and policy), field validation, duplicate name, delete', async () => {
      const a = await f.org('a');
      const adminA = await f.person('org_admin', a.id);
      const me = f.as(adminA);
      const created = await me.post('/computers', { name: 'web01', address: '10.0.0.5', protocols: ['ssh', 'rdp'], domainStore: 'ad', jit: validJit, policy: { sftp: true } });
      expect(created.statusCode).toBe(201);
      const c = created.json();
      expect(c).toMatchObject({ organizationId: a.id, name: 'web01', sshPort: 22, rdpPort: 3389, restricted: false, localStore: null });
      expect(c.jit).toMatchObject({ enabled: true, maxSessionMinutes: 480, accountMode: 'named' });
      expect(c.policy).toEqual({
        recordInput: false, sftp: true, portForwarding: false, clipboard: 'off', clipboardMaxBytes: 262144, drive: 'off', fileMaxBytes: 104857600, printing: false,
        rdpSecurity: 'nla', rdpIgnoreCert: false, rdpResizeMethod: 'display-update',
      });

      const patched = await me.patch(`/computers/${c.id}`, { jit: { maxSessionMinutes: 30 }, policy: { rdpSecurity: 'tls', clipboard: 'remote-to-local', rdpTimezone: 'Europe/Berlin' }, restricted: true });
      expect(patched.statusCode).toBe(200);
      expect(patched.json().jit).toMatchObject({ maxSessionMinutes: 30, adminGroups: ['admins'] });
      expect(patched.json().policy).toMatchObject({ sftp: true, rdpSecurity: 'tls', clipboard: 'remote-to-local', rdpTimezone: 'Europe/Berlin' });
      expect(patched.json().restricted).toBe(true);
      // The audit says which policy settings changed, from what to what.
      const changedEv = await db.query<{ data: { action: string; policy: string[] } }>(
        "SELECT data FROM audit_events WHERE type = 'admin.changed' AND computer = 'web01' AND data->>'action' = 'computer.changed' ORDER BY seq DESC LIMIT 1",
      );
      expect(changedEv[0]?.data.policy).toEqual(['clipboard: off → remote-to-local', 'rdpSecurity: nla → tls', 'rdpTimezone: (none) → Europe/Berlin']);
      const badRdp = await me.patch(`/computers/${c.id}`, { policy: { clipboard: 'sideways', rdpColorDepth: 12, rdpTimezone: 'Mars/Base' } });
      expect(badRdp.json().details.fields).toEqual({
        'policy.clipboard': 'off, remote-to-local, local-to-remote or both', 'policy.rdpColorDepth': '8, 16, 24 or 32', 'policy.rdpTimezone': 'an IANA time zone name such as Europe/Berlin or UTC',
      });

      const bad = await me.post('/computers', {
        name: '-bad', address: 'a b', protocols: ['telnet'], sshPort: 0, domainStore: 'nosuch',
        jit: { enabled: true, adminGroups: [], deleteOnCheckIn: true, reuseExistingAccount: true }, policy: { rdpSecurity: 'none', rdpCertFingerprint: 'zz' },
      });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().details.fields).toMatchObject({
        name: expect.any(String), address: 'a host name or IP address', 'protocols.0': expect.any(String), sshPort: expect.any(String),
        domainStore: 'no account store named nosuch in the configuration', 'policy.rdpSecurity': expect.any(String), 'policy.rdpCertFingerprint': expect.any(String),
      });
      // JIT cross-field rules surface once the fields themselves are valid.
      const jitBad = await me.post('/computers', { name: 'web02', address: 'h', protocols: ['ssh'], domainStore: 'ad', jit: { enabled: true, adminGroups: [], deleteOnCheckIn: true, reuseExistingAccount: true } });
      expect(jitBad.json().details.fields).toEqual({
        'jit.adminGroups': 'at least one JIT admin group is needed when JIT is enabled',
        'jit.reuseExistingAccount': 'cannot reuse an account that is deleted on check-in',
      });
      const noStore = await me.post('/computers', { name: 'web03', address: 'h', protocols: ['ssh'], jit: { ...validJit, accountType: 'local' } });
      expect(noStore.json().details.fields).toEqual({ localStore: 'a local account needs a local store' });
      expect((await me.patch(`/computers/${c.id}`, { id: 'x', bogus: 1 })).json().details.fields).toEqual({ id: 'unknown field', bogus: 'unknown field' });

      const dup = await me.post('/computers', { name: 'web01', address: 'h', protocols: ['ssh'], domainStore: 'ad', jit: validJit });
      expect(dup.statusCode).toBe(409);

      // Deleting refuses while a session is live, then works.
      const sid = await f.session({ ...c, protocols: c.protocols, jit: c.jit, policy: c.policy }, adminA);
      expect((await me.delete(`/computers/${c.id}`)).statusCode).toBe(409);
      await db.query("UPDATE sessions SET state = 'ended' WHERE id = $1", [sid]);
      expect((await me.delete(`/computers/${c.id}`)).statusCode).toBe(204);
      expect((await me.get(`/computers/${c.id}`)).statusCode).toBe(404);
    });

    it('a pinned RDP certificate is refused when the configured guacd lacks cert-fingerprints (1.5.x), accepted by 1.6, accepted with a warning when guacd is unreachable', async () => {
      const old = await startGuacdPeer({ rdpArgs: GUACD_1_5_RDP_ARGS });
      const current = await startGuacdPeer();
      const dead = net.createServer();
      await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
      const deadPort = (dead.address() as net.AddressInfo).port;
      await new Promise((r) => dead.close(r));
      // The source the API asks; switched between the three guacds (no cache: ttl 0).
      let target = new GuacdCapabilities({ host: old.host, port: old.port }, { ttlMs: 0 });
      const guacd = { get address() { return target.address; }, rdpArgs: () => target.rdpArgs() };
      const g = await ApiFixture.start(db, { guacd });
      try {
        const a = await g.org('a');
        const me = g.as(await g.person('org_admin', a.id));
        const FP = 'AB:'.repeat(31) + 'AB';
        const pinned = { address: '10.0.0.9', protocols: ['rdp'], domainStore: 'ad', jit: validJit, policy: { rdpSecurity: 'tls', rdpCertFingerprint: FP } };

        const refused = await me.post('/computers', { ...pinned, name: 'win-old' });
        expect(refused.statusCode).toBe(400);
        expect(refused.json().details.fields).toEqual({
          'policy.rdpCertFingerprint': `guacd at ${old.host}:${old.port} does not support certificate pinning (cert-fingerprints needs guacd 1.6.0 or later): upgrade guacd, or leave the fingerprint empty`,
        });
        expect(await db.query("SELECT 1 FROM computers WHERE organization_id = $1 AND name = 'win-old'", [a.id])).toEqual([]);
        // Without a pin the same guacd is fine; pinning it later by PATCH is refused too.
        const plain = await me.post('/computers', { ...pinned, name: 'win-plain', policy: { rdpSecurity: 'nla' } });
        expect(plain.statusCode).toBe(201);
        expect(plain.json().warnings).toBeUndefined();
        expect((await me.patch(`/computers/${plain.json().id}`, { policy: { rdpCertFingerprint: FP } })).statusCode).toBe(400);
        // An SSH-only computer is not RDP's business.
        expect((await me.post('/computers', { ...pinned, name: 'ssh-only', protocols: ['ssh'] })).statusCode).toBe(201);

        target = new GuacdCapabilities({ host: current.host, port: current.port }, { ttlMs: 0 });
        const ok = await me.post('/computers', { ...pinned, name: 'win-new' });
        expect(ok.statusCode).toBe(201);
        expect(ok.json().warnings).toBeUndefined();
        expect(ok.json().policy.rdpCertFingerprint).toBe(FP);

        target = new GuacdCapabilities({ host: '127.0.0.1', port: deadPort }, { ttlMs: 0 });
        const unsure = await me.post('/computers', { ...pinned, name: 'win-unsure' });
        expect(unsure.statusCode).toBe(201);
        expect(unsure.json().warnings).toEqual([
          `guacd at 127.0.0.1:${deadPort} could not be asked whether it supports certificate pinning (cert-fingerprints, guacd 1.6.0 or later); sessions to win-unsure will be refused if it does not`,
        ]);
        // Saving other fields of an already pinned computer does not ask again.
        target = new GuacdCapabilities({ host: old.host, port: old.port }, { ttlMs: 0 });
        expect((await me.patch(`/computers/${ok.json().id}`, { address: '10.0.0.10' })).statusCode).toBe(200);
      } finally {
        await g.close();
        await old.close();
        await current.close();
      }
    });

    it('grants share a restricted computer with named technicians of its organization only', async () => {
      const a = await f.org('a');
      const b = await f.org('b');
      const c = await f.computer(a.id, { restricted: true });
      const adminA = await f.person('org_admin', a.id);
      const adminB = await f.person('org_admin', b.id);
      const tech = await f.person('technician', a.id);
      const techB = await f.person('technician', b.id);
      const auditor = await f.person('auditor', a.id);

      expect((await f.as(tech).get(`/computers/${c.id}`)).statusCode).toBe(404);
      expect((await f.as(adminB).put(`/computers/${c.id}/grants/${techB.personId}`)).statusCode).toBe(404);
      expect((await f.as(tech).put(`/computers/${c.id}/grants/${tech.personId}`)).statusCode).toBe(404);
      const fromB = await f.as(adminA).put(`/computers/${c.id}/grants/${techB.personId}`);
      expect(fromB.statusCode).toBe(404);
      const toAuditor = await f.as(adminA).put(`/computers/${c.id}/grants/${auditor.personId}`);
      expect(toAuditor.statusCode).toBe(400);

      expect((await f.as(adminA).put(`/computers/${c.id}/grants/${tech.personId}`)).statusCode).toBe(200);
      expect((await f.as(adminA).get(`/computers/${c.id}/grants`)).json()).toEqual([
        { personId: tech.personId, login: tech.login, displayName: tech.displayName, createdAt: expect.any(String) },
      ]);
      const seen = await f.as(tech).get(`/computers/${c.id}`);
      expect(seen.statusCode).toBe(200);
      expect(seen.json().canConnect).toBe(true);
      expect((await f.as(tech).get(`/computers/${c.id}/grants`)).statusCode).toBe(403);

      expect((await f.as(adminA).delete(`/computers/${c.id}/grants/${tech.personId}`)).statusCode).toBe(204);
      expect((await f.as(tech).get(`/computers/${c.id}`)).statusCode).toBe(404);
      expect((await f.as(adminA).delete(`/computers/${c.id}/grants/${tech.personId}`)).statusCode).toBe(404);
    });

    it('initial passwords are stored as argon2 hashes by default, never echoed', async () => {
      const real = await ApiFixture.start(db, { hashPassword: undefined });
      try {
        const a = await f.org('a');
        const admin = await real.person('org_admin', a.id);
        const r = await real.as(admin).post('/people', { login: `pw-${f.tag}`, displayName: 'P', role: 'technician', organizationId: a.id, password: 'a long initial password' });
        expect(r.statusCode).toBe(201);
        expect(r.body).not.toContain('initial password');
        const row = await db.query<{ password_hash: string }>('SELECT password_hash FROM people WHERE id = $1', [r.json().id]);
        expect(row[0]!.password_hash).toMatch(/^\$argon2id\$/);
        expect(await verify(row[0]!.password_hash, 'a long initial password')).toBe(true);
        const changed = await real.as(admin).patch(`/people/${r.json().id}`, { password: 'another long password' });
        expect(changed.statusCode).toBe(200);
        const row2 = await db.query<{ password_hash: string }>('SELECT password_hash FROM people WHERE id = $1', [r.json().id]);
        expect(await verify(row2[0]!.password_hash, 'another long password')).toBe(true);
      } finally {
        await real.close();
      }
    });

    it('grants end when the computer moves to another organization or the technician changes role', async () => {
      const a = await f.org('a');
      const b = await f.org('b');
      const ga = await f.person('global_admin', null);
      const adminA = await f.person('org_admin', a.id);
      const c1 = await f.computer(a.id, { restricted: true });
      const c2 = await f.computer(a.id, { restricted: true });
      const tech = await f.person('technician', a.id);
      await f.grant(c1.id, tech.personId);
      await f.grant(c2.id, tech.personId);
      expect((await f.as(ga).patch(`/computers/${c1.id}`, { organizationId: b.id })).statusCode).toBe(200);
      expect((await db.query('SELECT 1 FROM grants WHERE computer_id = $1', [c1.id])).length).toBe(0);
      expect((await db.query('SELECT 1 FROM grants WHERE computer_id = $1', [c2.id])).length).toBe(1);
      expect((await f.as(adminA).patch(`/people/${tech.personId}`, { role: 'auditor' })).statusCode).toBe(200);
      expect((await db.query('SELECT 1 FROM grants WHERE person_id = $1', [tech.personId])).length).toBe(0);
    });

    it('administration changes are audited and visible to the organization\'s auditors only', async () => {
      const a = await f.org('a');
      const b = await f.org('b');
      const adminA = await f.person('org_admin', a.id);
      const audA = await f.person('auditor', a.id);
      const audB = await f.person('auditor', b.id);
      const r = await f.as(adminA).post('/computers', { name: `aud-${f.tag}`, address: 'h', protocols: ['ssh'], domainStore: 'ad', jit: validJit });
      expect(r.statusCode).toBe(201);
      const seen = (await f.as(audA).get('/audit?type=admin.changed&limit=1000')).json().events as { actor: string; computer: string; data: { action: string } }[];
      expect(seen).toContainEqual(expect.objectContaining({ actor: adminA.login, computer: `aud-${f.tag}`, data: expect.objectContaining({ action: 'computer.created' }) }));
      const other = (await f.as(audB).get('/audit?type=admin.changed&limit=1000')).json().events as { computer: string }[];
      expect(other.some((e) => e.computer === `aud-${f.tag}`)).toBe(false);
    });

    it('JIT presets, account stores (no secrets), store test for global admins only', async () => {
      const a = await f.org('a');
      const tech = await f.person('technician', a.id);
      const adminA = await f.person('org_admin', a.id);
      const ga = await f.person('global_admin', null);
      const presets = (await f.as(tech).get('/jit-presets')).json();
      expect(presets.maximumSecurity).toMatchObject({ deleteOnCheckIn: true, description: expect.any(String) });
      expect(presets.balanced).toMatchObject({ deleteOnCheckIn: false, reuseExistingAccount: true });

      expect((await f.as(tech).get('/account-stores')).statusCode).toBe(403);
      // An organization admin sees the stores of their organization, with only their organization as owner.
      expect((await f.as(adminA).get('/account-stores')).json()).toEqual([
        { name: 'ad', type: 'ldap', url: 'ldaps://dc1.example.test', organizations: [a.name], groups: ['admins'], allowedContainers: ['OU=JIT,DC=example,DC=test'] },
        { name: 'linux', type: 'ssh', url: 'ssh://10.0.0.9:22', organizations: [a.name], groups: ['admins'], allowedContainers: null },
      ]);
      expect(((await f.as(ga).get('/account-stores')).json() as { organizations: string[] }[])[0]!.organizations).toContain(a.name);
      expect((await f.as(adminA).post('/account-stores/ad/test')).statusCode).toBe(403);
      expect((await f.as(ga).post('/account-stores/ad/test')).json()).toEqual({ ok: true });
      expect((await f.as(ga).post('/account-stores/linux/test')).json()).toEqual({ ok: false, error: 'JIT_ERR_STORE_UNREACHABLE: connect ECONNREFUSED' });
      expect((await f.as(ga).post('/account-stores/nosuch/test')).statusCode).toBe(404);
      expect(f.storeChecks).toEqual(['ad', 'linux']);
    });

    it('inventory: export and import YAML (global admins only); bad documents change nothing', async () => {
      const ga = await f.person('global_admin', null);
      const adminA = await f.person('org_admin', (await f.org()).id);
      expect((await f.as(adminA).get('/inventory/export')).statusCode).toBe(403);
      const name = `inv-${f.tag}`;
      for (const s of f.stores) s.organizations.push(name);
      const yaml = `organizations:\n  - { name: ${name}, sharedCode: "77${f.tag.replace(/\D/g, '').padEnd(4, '1').slice(0, 4)}" }\ncomputers:\n  - organization: ${name}\n    name: inv01\n    address: 10.1.1.1\n    domainStore: ad\n    jit: { enabled: true, adminGroups: [admins] }\n    policy: { sftp: true }\n`;
      expect((await f.as(adminA).post('/inventory/import', yaml, { 'content-type': 'application/yaml' })).statusCode).toBe(403);
      const imported = await f.as(ga).post('/inventory/import', yaml, { 'content-type': 'application/yaml' });
      expect(imported.statusCode).toBe(200);
      expect(imported.json()).toEqual({ organizations: 1, computers: 1, accountMappings: 0, teams: 0, unpinned: [], pinned: [] });
      const out = await f.as(ga).get('/inventory/export');
      expect(out.headers['content-type']).toContain('yaml');
      expect(out.body).toContain(`name: ${name}`);
      expect(out.body).toContain('name: inv01');
      const badPolicy = yaml.replace('sftp: true', 'sftp: sure').replace('inv01', 'inv02');
      const rejected = await f.as(ga).post('/inventory/import', badPolicy, { 'content-type': 'text/yaml' });
      expect(rejected.statusCode).toBe(400);
      expect(rejected.json().details.fields).toEqual({ 'computers.0.policy.sftp': expect.any(String) });
      expect((await db.query("SELECT 1 FROM computers WHERE name = 'inv02'")).length).toBe(0);
      expect((await f.as(ga).post('/inventory/import', 'a: [', { 'content-type': 'text/yaml' })).statusCode).toBe(400);
      // computer names are unique without case: INV01 updates inv01, it does not fail or make a twin
      const upper = yaml.replace('name: inv01', 'name: INV01').replace('10.1.1.1', '10.1.1.2');
      expect((await f.as(ga).post('/inventory/import', upper, { 'content-type': 'application/yaml' })).statusCode).toBe(200);
      const rows = await db.query<{ name: string; address: string }>("SELECT name, address FROM computers WHERE lower(name) = 'inv01'");
      expect(rows).toEqual([{ name: 'inv01', address: '10.1.1.2' }]);
      // a pin stated in the document (not scanned) is a trust decision: it is on the audit record
      const fp = `SHA256:${'Q'.repeat(43)}`;
      const withPin = yaml.replace('name: inv01', 'name: inv03').replace('policy: { sftp: true }', `policy: { sftp: true, sshHostKeySha256: "${fp}" }`);
      const pinnedImport = await f.as(ga).post('/inventory/import', withPin, { 'content-type': 'application/yaml' });
      expect(pinnedImport.json()).toMatchObject({ pinned: ['inv03'], unpinned: [] });
      const ev = await db.query<{ actor: string; data: { fingerprint: string; via: string } }>("SELECT actor, data FROM audit_events WHERE type = 'computer.host_key_pinned' AND computer = 'inv03'");
      expect(ev).toEqual([{ actor: ga.login, data: expect.objectContaining({ fingerprint: fp, via: 'stated in an import (not scanned)' }) }]);
      // importing the same document again pins nothing new
      expect((await f.as(ga).post('/inventory/import', withPin, { 'content-type': 'application/yaml' })).json()).toMatchObject({ pinned: [] });
    });
  });
}
