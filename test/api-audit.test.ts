import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../core/db/database.js';
import { ApiFixture } from './fixtures/api-fixture.js';
import { databaseFactories } from './harness/databases.js';

/**
 * Live sessions, recordings and the audit trail through the API, scoped by
 * organization; the AccessChecker used by the session openers; CSV and
 * JSON-lines export; cursor pagination.
 */
for (const factory of databaseFactories()) {
  describe.skipIf(factory.skip)(`sessions, recordings, audit (${factory.label})`, () => {
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

    async function world() {
      const a = await f.org('a');
      const b = await f.org('b');
      const ca = await f.computer(a.id);
      const cb = await f.computer(b.id);
      const techA = await f.person('technician', a.id);
      const techA2 = await f.person('technician', a.id);
      const techB = await f.person('technician', b.id);
      const adminA = await f.person('org_admin', a.id);
      const auditorA = await f.person('auditor', a.id);
      const globalAuditor = await f.person('auditor', null);
      return { a, b, ca, cb, techA, techA2, techB, adminA, auditorA, globalAuditor };
    }

    it('live sessions: listed per organization, terminated by admins and their owner, never by auditors', async () => {
      const w = await world();
      const s1 = await f.session(w.ca, w.techA);
      const s2 = await f.session(w.cb, w.techB);
      for (const [id, p, c] of [[s1, w.techA, w.ca], [s2, w.techB, w.cb]] as const) {
        f.live.live.set(id, { sessionId: id, personLogin: p.login, computerName: c.name, protocol: 'ssh', account: 'x_abc123', startedAt: new Date().toISOString(), gateway: 'gw-1' });
      }
      const ids = async (p: typeof w.techA) => ((await f.as(p).get('/sessions')).json() as { sessionId: string }[]).map((s) => s.sessionId);
      expect(await ids(w.auditorA)).toEqual([s1]);
      expect(await ids(w.adminA)).toEqual([s1]);
      expect(await ids(w.techA)).toEqual([s1]);
      expect(await ids(w.techA2)).toEqual([]);
      expect((await ids(w.globalAuditor)).sort()).toEqual([s1, s2].sort());
      const one = (await f.as(w.adminA).get('/sessions')).json()[0];
      expect(one).toMatchObject({ sessionId: s1, personLogin: w.techA.login, computerName: w.ca.name, live: true, gateway: 'gw-1', canTerminate: true });

      expect((await f.as(w.auditorA).post(`/sessions/${s1}/terminate`)).statusCode).toBe(403);
      expect((await f.as(w.techA2).post(`/sessions/${s1}/terminate`)).statusCode).toBe(404);
      expect((await f.as(w.adminA).post(`/sessions/${s2}/terminate`)).statusCode).toBe(404);
      expect(f.live.live.size).toBe(2);
      const t = await f.as(w.adminA).post(`/sessions/${s1}/terminate`);
      expect(t.json()).toEqual({ terminated: true });
      expect(f.live.terminated).toEqual([{ sessionId: s1, by: w.adminA.login }]);
      const own = await f.as(w.techB).post(`/sessions/${s2}/terminate`);
      expect(own.json()).toEqual({ terminated: true });
      // The gateway holding the connection audits and tears down; the API adds nothing twice.
      const ev = await db.query<{ actor: string; outcome: string }>("SELECT actor, outcome FROM audit_events WHERE type = 'session.terminated' AND session_id = $1", [s1]);
      expect(ev).toEqual([]);
      expect(f.ended).toEqual([]);
      // A live session no gateway holds (its gateway died): the API ends it and audits.
      const orphan = await f.session(w.ca, w.techA);
      const o = await f.as(w.adminA).post(`/sessions/${orphan}/terminate`);
      expect(o.json()).toEqual({ terminated: false });
      expect(f.ended).toEqual([{ sessionId: orphan, reason: `terminated by ${w.adminA.login}` }]);
      const ev2 = await db.query<{ actor: string; outcome: string }>("SELECT actor, outcome FROM audit_events WHERE type = 'session.terminated' AND session_id = $1", [orphan]);
      expect(ev2).toEqual([{ actor: w.adminA.login, outcome: 'success' }]);
      // History (state=all) stays scoped too.
      const hist = (await f.as(w.auditorA).get('/sessions?state=all')).json() as { sessionId: string; live: boolean }[];
      expect(hist.map((s) => s.sessionId)).toContain(s1);
      expect(hist.map((s) => s.sessionId)).not.toContain(s2);
      expect((await f.as(w.adminA).get('/sessions?state=bogus')).json().details.fields).toEqual({ state: expect.any(String) });
    });

    it('extending a session: its person and admins of its organization; not auditors, other technicians or other organizations', async () => {
      const w = await world();
      const sA = await f.session(w.ca, w.techA);
      f.live.live.set(sA, { sessionId: sA, personLogin: w.techA.login, computerName: w.ca.name, protocol: 'ssh', account: 'x_abc123', startedAt: new Date().toISOString(), gateway: 'gw-1' });
      const listed = async (p: typeof w.techA) => ((await f.as(p).get('/sessions')).json() as { sessionId: string; canExtend: boolean; leaseExpiresAt: string }[]).find((x) => x.sessionId === sA);
      const lease = (await db.query<{ lease_expires_at: Date }>('SELECT lease_expires_at FROM sessions WHERE id = $1', [sA]))[0]!.lease_expires_at;
      expect(await listed(w.adminA)).toMatchObject({ canExtend: true, leaseExpiresAt: new Date(lease).toISOString() });
      expect(await listed(w.techA)).toMatchObject({ canExtend: true });
      expect(await listed(w.auditorA)).toMatchObject({ canExtend: false });
      f.live.live.delete(sA);
      f.extended.length = 0;
      expect((await f.as(w.auditorA).post(`/sessions/${sA}/extend`, { minutes: 30 })).statusCode).toBe(403);
      expect((await f.as(w.techA2).post(`/sessions/${sA}/extend`, { minutes: 30 })).statusCode).toBe(404);
      expect((await f.as(w.techB).post(`/sessions/${sA}/extend`, { minutes: 30 })).statusCode).toBe(404);
      expect((await f.as(w.techA).post(`/sessions/${sA}/extend`, { minutes: 0 })).statusCode).toBe(400);
      expect((await f.as(w.techA).post(`/sessions/${sA}/extend`, { minutes: 30, extra: 1 })).statusCode).toBe(400);
      expect(f.extended).toEqual([]);
      const own = await f.as(w.techA).post(`/sessions/${sA}/extend`, { minutes: 30 });
      expect(own.statusCode).toBe(200);
      expect(own.json()).toEqual({ sessionId: sA, leaseExpiresAt: '2030-01-01T00:00:00.000Z' });
      expect((await f.as(w.adminA).post(`/sessions/${sA}/extend`, { minutes: 15 })).statusCode).toBe(200);
      expect(f.extended).toEqual([{ sessionId: sA, minutes: 30, actor: w.techA.login }, { sessionId: sA, minutes: 15, actor: w.adminA.login }]);
    });

    it('disabling a person, changing their role or removing their grant ends their live sessions on every gateway; others keep theirs', async () => {
      const w = await world();
      const restricted = await f.computer(w.a.id, { restricted: true });
      await f.grant(restricted.id, w.techA2.personId);
      const live = (id: string, p: typeof w.techA, c: typeof w.ca) =>
        f.live.live.set(id, { sessionId: id, personLogin: p.login, computerName: c.name, protocol: 'ssh', account: 'x_abc123', startedAt: new Date().toISOString(), gateway: 'gw-2' });
      const sA = await f.session(w.ca, w.techA);
      const sA2open = await f.session(w.ca, w.techA2);
      const sA2restricted = await f.session(restricted, w.techA2);
      const sB = await f.session(w.cb, w.techB);
      live(sA, w.techA, w.ca);
      live(sA2open, w.techA2, w.ca);
      live(sA2restricted, w.techA2, restricted);
      live(sB, w.techB, w.cb);
      f.live.terminated.length = 0;

      // Unsharing the restricted computer ends that session only.
      expect((await f.as(w.adminA).delete(`/computers/${restricted.id}/grants/${w.techA2.personId}`)).statusCode).toBe(204);
      expect(f.live.terminated).toEqual([{ sessionId: sA2restricted, by: w.adminA.login }]);
      // A display-name change ends nothing; disabling ends every live session of that person.
      expect((await f.as(w.adminA).patch(`/people/${w.techA.personId}`, { displayName: 'Still here' })).statusCode).toBe(200);
      expect(f.live.terminated).toHaveLength(1);
      expect((await f.as(w.adminA).patch(`/people/${w.techA.personId}`, { disabled: true })).statusCode).toBe(200);
      expect(f.live.terminated.at(-1)).toEqual({ sessionId: sA, by: w.adminA.login });
      // A role change (technician → auditor) too.
      expect((await f.as(w.adminA).patch(`/people/${w.techA2.personId}`, { role: 'auditor' })).statusCode).toBe(200);
      expect(f.live.terminated.at(-1)).toEqual({ sessionId: sA2open, by: w.adminA.login });
      // The other organization's session was never touched.
      expect([...f.live.live.keys()]).toContain(sB);
      expect(f.live.terminated.map((t) => t.sessionId)).not.toContain(sB);
    });

    it('recordings: admins and auditors of the organization; technicians only their own; file download audited', async () => {
      const w = await world();
      const rA = await f.recording(await f.session(w.ca, w.techA, 'ended'));
      const rA2 = await f.recording(await f.session(w.ca, w.techA2, 'ended'));
      const rB = await f.recording(await f.session(w.cb, w.techB, 'ended'));
      const list = async (p: typeof w.techA, q = '') => ((await f.as(p).get(`/recordings?limit=500${q}`)).json().recordings as { id: string }[]).map((r) => r.id);
      expect((await list(w.auditorA)).filter((id) => [rA, rA2, rB].includes(id)).sort()).toEqual([rA, rA2].sort());
      expect((await list(w.adminA)).filter((id) => [rA, rA2, rB].includes(id)).sort()).toEqual([rA, rA2].sort());
      expect(await list(w.techA)).toEqual([rA]);
      expect((await list(w.globalAuditor)).filter((id) => [rA, rA2, rB].includes(id)).sort()).toEqual([rA, rA2, rB].sort());
      expect(await list(w.auditorA, `&person=${w.techA2.login}`)).toEqual([rA2]);

      expect((await f.as(w.techA).get(`/recordings/${rA2}`)).statusCode).toBe(404);
      expect((await f.as(w.techA).get(`/recordings/${rA2}/file`)).statusCode).toBe(404);
      expect((await f.as(w.auditorA).get(`/recordings/${rB}`)).statusCode).toBe(404);
      const got = (await f.as(w.techA).get(`/recordings/${rA}`)).json();
      expect(got).toMatchObject({ id: rA, personLogin: w.techA.login, computerName: w.ca.name, kind: 'asciicast', integrity: 'ok', sha256: 'ab'.repeat(32) });

      f.files.integrityById.set(rA2, 'mismatch');
      const file = await f.as(w.auditorA).get(`/recordings/${rA2}/file`);
      expect(file.statusCode).toBe(200);
      expect(file.body).toContain('"hello"');
      expect(file.headers['x-jitgate-integrity']).toBe('mismatch');
      expect(file.headers['content-disposition']).toBe(`attachment; filename="${rA2}.cast"`);
      const viewed = await db.query<{ actor: string; data: unknown }>("SELECT actor, data FROM audit_events WHERE type = 'recording.viewed' AND actor = $1", [w.auditorA.login]);
      expect(viewed).toHaveLength(1);
      expect(JSON.stringify(viewed[0]!.data)).toContain(rA2);

      // Deleting the computer keeps the recordings in their organization's scope.
      await db.query('DELETE FROM computers WHERE id = $1', [w.ca.id]);
      expect((await f.as(w.auditorA).get(`/recordings/${rA}`)).statusCode).toBe(200);
      expect((await f.as(await f.person('auditor', w.b.id)).get(`/recordings/${rA}`)).statusCode).toBe(404);
    });

    it('recordings: cursor pagination with `before`', async () => {
      const w = await world();
      const sid = await f.session(w.ca, w.techA, 'ended');
      const base = Date.now() - 3_600_000;
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await f.recording(sid, 'x', new Date(base + i * 1000)));
      const p1 = (await f.as(w.techA).get('/recordings?limit=2')).json();
      expect(p1.recordings.map((r: { id: string }) => r.id)).toEqual([ids[4], ids[3]]);
      const p2 = (await f.as(w.techA).get(`/recordings?limit=2&before=${p1.next}`)).json();
      expect(p2.recordings.map((r: { id: string }) => r.id)).toEqual([ids[2], ids[1]]);
      const p3 = (await f.as(w.techA).get(`/recordings?limit=2&before=${p2.next}`)).json();
      expect(p3).toEqual({ recordings: [expect.objectContaining({ id: ids[0] })] });
    });

    it('audit: admins and auditors only, organization-scoped, filters and cursor pagination', async () => {
      const w = await world();
      const sA = await f.session(w.ca, w.techA, 'ended');
      const sB = await f.session(w.cb, w.techB, 'ended');
      for (let i = 0; i < 5; i++) await f.audit.record({ type: 'session.started', actor: w.techA.login, outcome: 'success', sessionId: sA, computer: w.ca.name, data: { i } });
      await f.audit.record({ type: 'session.started', actor: w.techB.login, outcome: 'success', sessionId: sB, computer: w.cb.name });
      await f.audit.record({ type: 'auth.signed_in', actor: w.techB.login, outcome: 'success' });

      expect((await f.as(w.techA).get('/audit')).statusCode).toBe(403);
      const mine = (await f.as(w.auditorA).get('/audit?limit=1000')).json().events as { actor: string; sessionId: string | null }[];
      expect(mine.filter((e) => e.sessionId === sA)).toHaveLength(5);
      expect(mine.some((e) => e.actor === w.techB.login || e.sessionId === sB)).toBe(false);
      const all = (await f.as(w.globalAuditor).get(`/audit?person=${w.techB.login}`)).json().events as { type: string }[];
      expect(all.map((e) => e.type).sort()).toEqual(['auth.signed_in', 'session.started']);
      expect((await f.as(w.adminA).get(`/audit?person=${w.techB.login}`)).json()).toEqual({ events: [] });

      const p1 = (await f.as(w.adminA).get(`/audit?computer=${w.ca.name}&limit=2`)).json();
      expect(p1.events.map((e: { data: { i: number } }) => e.data.i)).toEqual([4, 3]);
      expect(p1.next).toBe(p1.events[1].seq);
      const p2 = (await f.as(w.adminA).get(`/audit?computer=${w.ca.name}&limit=2&before=${p1.next}`)).json();
      expect(p2.events.map((e: { data: { i: number } }) => e.data.i)).toEqual([2, 1]);
      const p3 = (await f.as(w.adminA).get(`/audit?computer=${w.ca.name}&limit=2&before=${p2.next}`)).json();
      expect(p3.events.map((e: { data: { i: number } }) => e.data.i)).toEqual([0]);
      expect(p3.next).toBeUndefined();
      const future = new Date(Date.now() + 60_000).toISOString();
      expect((await f.as(w.adminA).get(`/audit?computer=${w.ca.name}&from=${encodeURIComponent(future)}`)).json()).toEqual({ events: [] });
      expect((await f.as(w.adminA).get('/audit?from=yesterday&limit=0')).json().details.fields).toEqual({ from: expect.any(String), limit: expect.any(String) });
    });

    it('audit export: CSV (RFC 4180, formula injection defused) and JSON lines, scoped like the list', async () => {
      const w = await world();
      const sA = await f.session(w.ca, w.techA, 'ended');
      const evil = ['=HYPERLINK("http://x")', '+1', '-2', '@SUM(A1)', 'a,b', 'line\nbreak', 'say "hi"'];
      for (const account of evil) await f.audit.record({ type: 'account.created', actor: w.techA.login, outcome: 'success', sessionId: sA, computer: w.ca.name, account });
      await f.audit.record({ type: 'account.created', actor: w.techB.login, outcome: 'success', computer: w.cb.name, account: 'other-org' });

      expect((await f.as(w.techA).get('/audit/export?format=csv')).statusCode).toBe(403);
      const csv = await f.as(w.auditorA).get(`/audit/export?format=csv&type=account.created`);
      expect(csv.statusCode).toBe(200);
      expect(csv.headers['content-type']).toContain('text/csv');
      expect(csv.headers['content-disposition']).toMatch(/^attachment; filename="jitgate-audit-.*\.csv"$/);
      expect(csv.body.startsWith('seq,at,type,actor,outcome,sessionId,computer,account,data,prevHash,hash\r\n')).toBe(true);
      expect(csv.body).not.toContain('other-org');
      expect(csv.body).toContain(`,"'=HYPERLINK(""http://x"")",`);
      expect(csv.body).toContain(`,'+1,`);
      expect(csv.body).toContain(`,'-2,`);
      expect(csv.body).toContain(`,'@SUM(A1),`);
      expect(csv.body).toContain(`,"a,b",`);
      expect(csv.body).toContain(`,"line\nbreak",`);
      expect(csv.body).toContain(`,"say ""hi""",`);
      // Every record is on its own CRLF-terminated row (embedded LF only inside quotes): 1 header + 7 rows.
      expect(csv.body.split('\r\n').filter(Boolean)).toHaveLength(8);

      const jl = await f.as(w.auditorA).get(`/audit/export?format=jsonl&type=account.created`);
      const lines = jl.body.trim().split('\n').map((l) => JSON.parse(l) as { account: string; hash: string });
      expect(lines.map((l) => l.account)).toEqual([...evil].reverse());
      expect(lines.every((l) => /^[0-9a-f]{64}$/.test(l.hash))).toBe(true);
    });

    it('AccessService.computerForConnect: grants, restricted, auditors, cross-organization denied and audited', async () => {
      const w = await world();
      const restricted = await f.computer(w.a.id, { restricted: true });
      const sshOnly = await f.computer(w.a.id, { protocols: ['ssh'] });
      const ga = await f.person('global_admin', null);
      expect((await f.access.computerForConnect(w.techA, w.ca.id, 'ssh')).id).toBe(w.ca.id);
      expect((await f.access.computerForConnect(w.techA, w.ca.name, 'rdp')).id).toBe(w.ca.id);
      expect((await f.access.computerForConnect(w.adminA, `${w.a.name}/${restricted.name}`, 'ssh')).id).toBe(restricted.id);
      expect((await f.access.computerForConnect(ga, w.cb.id, 'ssh')).id).toBe(w.cb.id);

      const denied = async (p: typeof w.techA, ref: string) => {
        const err = await f.access.computerForConnect(p, ref, 'ssh').then(() => null, (e: unknown) => e as { code: string; status: number; message: string });
        expect(err).toMatchObject({ code: 'JIT_ERR_ACCESS_DENIED', status: 403 });
        return err!.message;
      };
      expect(await denied(w.techA, restricted.id)).toBe(`you do not have access to ${restricted.id}`);
      expect(await denied(w.techA, restricted.name)).toBe(`you do not have access to ${restricted.name}`);
      expect(await denied(w.auditorA, w.ca.id)).toBe(`you do not have access to ${w.ca.name}`);
      expect(await denied(w.techA, w.cb.id)).toBe(`you do not have access to ${w.cb.id}`);
      expect(await denied(w.adminA, w.cb.name)).toBe(`you do not have access to ${w.cb.name}`);
      expect(await denied(w.techA, 'no-such-computer')).toBe('you do not have access to no-such-computer');
      await f.grant(restricted.id, w.techA.personId);
      expect((await f.access.computerForConnect(w.techA, restricted.id, 'ssh')).id).toBe(restricted.id);
      expect(await denied(w.techA2, restricted.id)).toContain('you do not have access');

      const ev = await db.query<{ actor: string; outcome: string; computer: string }>("SELECT actor, outcome, computer FROM audit_events WHERE type = 'access.denied' AND actor = $1 ORDER BY seq", [w.techA.login]);
      expect(ev.map((e) => e.computer)).toEqual([restricted.id, restricted.name, w.cb.id, 'no-such-computer']);
      expect(ev.every((e) => e.outcome === 'denied')).toBe(true);
      await expect(f.access.computerForConnect(ga, '00000000-0000-4000-8000-000000000000', 'ssh')).rejects.toMatchObject({ code: 'JIT_ERR_NOT_FOUND' });
      await expect(f.access.computerForConnect(w.techA, sshOnly.id, 'rdp')).rejects.toMatchObject({ code: 'JIT_ERR_VALIDATION' });
    });
  });
}
