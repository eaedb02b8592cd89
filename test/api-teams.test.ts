import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import type { Database } from '../core/db/database.js';
import { startSignedInApi, type SignedInApi, type SignedInClient } from './fixtures/signed-in-api.js';
import { databaseFactories } from './harness/databases.js';

/**
 * Teams, labels and grants by team × label selector (issue 15) through the
 * real sign-in (password + TOTP, cookie + CSRF) and the real API, across two
 * organizations: an org admin manages their own organization's teams only;
 * a team grant lets the team's technicians see and connect to the labelled
 * restricted computers of that organization and nothing in another; leaving
 * the team or removing the grant ends it, live sessions included; the
 * person's recent connections come back newest first.
 */

const factories = databaseFactories();
const factory = factories.find((f) => f.label === 'postgres' && f.skip === '') ?? factories.find((f) => f.label === 'pglite')!;
const noJit = { enabled: false };

describe(`teams and labels through the real sign-in (${factory.label})`, () => {
  let db: Database;
  let api: SignedInApi;

  beforeAll(async () => {
    db = await factory.open();
    api = await startSignedInApi(db);
  }, 120_000);
  afterAll(async () => {
    await api?.close();
    await db?.close();
  });

  async function computer(admin: SignedInClient, organizationId: string, name: string, labels: Record<string, string>, restricted = true) {
    const r = await admin.req('POST', '/computers', { organizationId, name, address: '192.0.2.10', protocols: ['ssh'], jit: noJit, restricted, labels });
    expect(r.statusCode, r.body).toBe(201);
    return r.json() as { id: string; name: string; labels: Record<string, string> };
  }

  const names = async (c: SignedInClient) => ((await c.req('GET', '/computers')).json() as { name: string }[]).map((x) => x.name).sort();

  it('an org admin creates a team, adds a technician, grants by label; the technician sees exactly the matching computers of their organization', async () => {
    const a = await api.org('a');
    const b = await api.org('b');
    const adminA = await api.person('adma', 'org_admin', a.id);
    const adminB = await api.person('admb', 'org_admin', b.id);
    const techA = await api.person('techa', 'technician', a.id);
    const otherA = await api.person('othera', 'technician', a.id);
    const techB = await api.person('techb', 'technician', b.id);
    const audA = await api.person('auda', 'auditor', a.id);
    const t = api.tag;

    const web = await computer(adminA, a.id, `web-${t}`, { env: 'prod', customer: 'acme' });
    await computer(adminA, a.id, `dev-${t}`, { env: 'dev', customer: 'acme' });
    const bWeb = await computer(adminB, b.id, `bweb-${t}`, { env: 'prod', customer: 'acme' });
    expect(web.labels).toEqual({ env: 'prod', customer: 'acme' });

    // Bad labels are refused field by field.
    const bad = await adminA.req('PATCH', `/computers/${web.id}`, { labels: { Env: 'prod' } });
    expect(bad.statusCode).toBe(400);
    expect(JSON.stringify(bad.json())).toContain('labels');

    // CSRF: the cookie alone creates nothing.
    expect((await adminA.req('POST', '/teams', { name: 'ops' }, { csrf: false })).json().code).toBe('JIT_ERR_AUTH_CSRF');
    // Not in another organization, not as a technician or an auditor.
    expect((await adminA.req('POST', '/teams', { name: 'ops', organizationId: b.id })).statusCode).toBe(403);
    expect((await techA.req('POST', '/teams', { name: 'ops' })).statusCode).toBe(403);
    expect((await audA.req('POST', '/teams', { name: 'ops' })).statusCode).toBe(403);

    const created = await adminA.req('POST', '/teams', { name: 'Ops', description: 'on call', syncGroups: ['ops'] });
    expect(created.statusCode, created.body).toBe(201);
    const team = created.json() as { id: string; organizationId: string; members: unknown[]; grants: unknown[] };
    expect(team).toMatchObject({ organizationId: a.id, members: [], grants: [] });
    expect((await adminA.req('POST', '/teams', { name: 'ops' })).statusCode).toBe(409); // names compare without case

    // Members: people of the team's organization only; another organization's admin sees no such team.
    expect((await adminA.req('PUT', `/teams/${team.id}/members/${techB.id}`)).statusCode).toBe(404);
    expect((await adminB.req('PUT', `/teams/${team.id}/members/${techB.id}`)).statusCode).toBe(404);
    expect((await adminB.req('GET', `/teams/${team.id}`)).statusCode).toBe(404);
    expect((await adminA.req('PUT', `/teams/${team.id}/members/${techA.id}`)).json()).toMatchObject({ login: techA.login, source: 'manual' });

    // Before the grant: restricted computers are hidden from both technicians.
    expect(await names(techA)).toEqual([]);
    expect((await techA.req('GET', `/computers/${web.id}`)).statusCode).toBe(404);

    expect((await adminA.req('POST', `/teams/${team.id}/grants`, { selector: {} })).statusCode).toBe(400);
    expect((await adminB.req('POST', `/teams/${team.id}/grants`, { selector: { env: 'prod' } })).statusCode).toBe(404);
    const g = await adminA.req('POST', `/teams/${team.id}/grants`, { selector: { env: 'prod', customer: 'acme' } });
    expect(g.statusCode, g.body).toBe(201);
    const grant = g.json() as { id: string; text: string };
    expect(grant.text).toBe('customer=acme, env=prod');
    expect((await adminA.req('POST', `/teams/${team.id}/grants`, { selector: { customer: 'acme', env: 'prod' } })).statusCode).toBe(409);

    // The team's technician sees and may connect to web (labels match), not dev; B's identically labelled computer never.
    const list = (await techA.req('GET', '/computers')).json() as { id: string; name: string; labels: Record<string, string>; canConnect: boolean }[];
    expect(list.map((c) => c.name)).toEqual([`web-${t}`]);
    expect(list[0]).toMatchObject({ canConnect: true, labels: { env: 'prod', customer: 'acme' } });
    expect((await techA.req('GET', `/computers/${web.id}`)).statusCode).toBe(200);
    expect((await techA.req('GET', `/computers/${bWeb.id}`)).statusCode).toBe(404);
    expect(await names(otherA)).toEqual([]);
    expect(await names(techB)).toEqual([]);
    // The access overview says why: through a team.
    const overview = (await adminA.req('GET', `/people/${techA.id}/access`)).json() as { computers: { name: string; via: string }[] };
    expect(overview.computers.map((c) => [c.name, c.via])).toEqual([[web.name, 'team']]);
    // Admins and auditors of A read the team; B's do not list it.
    expect(((await audA.req('GET', '/teams')).json() as { id: string }[]).map((x) => x.id)).toEqual([team.id]);
    expect(((await adminB.req('GET', '/teams')).json() as { id: string }[]).map((x) => x.id)).not.toContain(team.id);
    expect((await audA.req('DELETE', `/teams/${team.id}/grants/${grant.id}`)).statusCode).toBe(403);
    expect((await techA.req('GET', '/teams')).json()).toEqual([]);

    // Relabel: the grant follows the labels, not the computer.
    expect((await adminA.req('PATCH', `/computers/${web.id}`, { labels: { env: 'staging', customer: 'acme' } })).statusCode).toBe(200);
    expect(await names(techA)).toEqual([]);
    expect((await adminA.req('PATCH', `/computers/${web.id}`, { labels: { env: 'prod', customer: 'acme' } })).statusCode).toBe(200);
    expect(await names(techA)).toEqual([`web-${t}`]);

    // Leaving the team ends the access and the live session it allowed.
    const sessionId = crypto.randomUUID();
    await db.query(
      "INSERT INTO sessions (id, person_id, person_login, computer_id, computer_name, protocol, account_type, state, lease_expires_at) VALUES ($1,$2,$3,$4,$5,'ssh','existing','active', now() + interval '1 hour')",
      [sessionId, techA.id, techA.login, web.id, web.name],
    );
    api.live.live.set(sessionId, { sessionId, personLogin: techA.login, personId: techA.id, computerName: web.name, protocol: 'ssh', account: null, startedAt: new Date().toISOString(), gateway: 'g1' });
    expect((await techA.req('GET', '/computers/recent')).json()).toMatchObject([{ computerId: web.id, name: web.name, protocol: 'ssh', sessions: 1 }]);
    expect((await adminA.req('DELETE', `/teams/${team.id}/members/${techA.id}`)).statusCode).toBe(204);
    expect(api.live.terminated).toContainEqual({ sessionId, by: adminA.login });
    expect(await names(techA)).toEqual([]);
    // The recent list shows only what they may still see.
    expect((await techA.req('GET', '/computers/recent')).json()).toEqual([]);

    const audit = await db.query<{ data: { action: string } }>("SELECT data FROM audit_events WHERE type = 'admin.changed' AND actor = $1 ORDER BY seq", [adminA.login]);
    const actions = audit.map((r) => (typeof r.data === 'string' ? (JSON.parse(r.data) as { action: string }) : r.data).action);
    expect(actions).toEqual(expect.arrayContaining(['team.created', 'team.member_added', 'team.grant_added', 'team.member_removed']));
  });

  it('removing a grant or deleting the team ends what it allowed; a person who moves organization leaves its teams', async () => {
    const a = await api.org('c');
    const b = await api.org('d');
    const admin = await api.person('admc', 'org_admin', a.id);
    const ga = await api.person('glob', 'global_admin', null);
    const tech = await api.person('techc', 'technician', a.id);
    const db1 = await computer(admin, a.id, `db-${api.tag}`, { role: 'db' });
    const team = (await admin.req('POST', '/teams', { name: 'dba' })).json() as { id: string };
    await admin.req('PUT', `/teams/${team.id}/members/${tech.id}`);
    const grant = (await admin.req('POST', `/teams/${team.id}/grants`, { selector: { role: 'db' } })).json() as { id: string };
    expect(await names(tech)).toEqual([db1.name]);

    expect((await admin.req('DELETE', `/teams/${team.id}/grants/${grant.id}`)).statusCode).toBe(204);
    expect(await names(tech)).toEqual([]);
    await admin.req('POST', `/teams/${team.id}/grants`, { selector: { role: 'db' } });
    expect(await names(tech)).toEqual([db1.name]);

    // A global admin moves the technician to B: the team of A no longer counts them.
    expect((await ga.req('PATCH', `/people/${tech.id}`, { organizationId: b.id })).statusCode).toBe(200);
    expect((await db.query('SELECT 1 FROM team_members WHERE person_id = $1', [tech.id])).length).toBe(0);
    const detail = (await admin.req('GET', `/teams/${team.id}`)).json() as { members: unknown[] };
    expect(detail.members).toEqual([]);

    expect((await admin.req('DELETE', `/teams/${team.id}`)).statusCode).toBe(204);
    expect((await admin.req('GET', `/teams/${team.id}`)).statusCode).toBe(404);
  });

  it('the inventory document carries labels and teams (members, grants by label) both ways; a member of another organization changes nothing', async () => {
    const ga = await api.person('ginv', 'global_admin', null);
    const a = await api.org('inv');
    const b = await api.org('invb');
    const tech = await api.person('techinv', 'technician', a.id);
    const techB = await api.person('techinvb', 'technician', b.id);
    const pc = `inv-${api.tag}`;
    const doc = {
      computers: [{ organization: a.name, name: pc, address: '192.0.2.40', jit: noJit, restricted: true, labels: { env: 'prod', os: 'linux' } }],
      teams: [{ organization: a.name, name: 'Linux ops', syncGroups: ['linux-ops'], members: [tech.login], grants: [{ os: 'linux' }] }],
    };
    // A member of another organization: refused as a whole (one transaction).
    const bad = await ga.req('POST', '/inventory/import', { ...doc, teams: [{ ...doc.teams[0], members: [tech.login, techB.login] }] });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toContain(`${techB.login} is not a person of ${a.name}`);
    expect((await db.query('SELECT 1 FROM computers WHERE name = $1', [pc])).length).toBe(0);
    // Only global admins import.
    expect((await tech.req('POST', '/inventory/import', doc)).statusCode).toBe(403);

    const ok = await ga.req('POST', '/inventory/import', doc);
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json()).toMatchObject({ computers: 1, teams: 1 });
    expect(await names(tech)).toEqual([pc]);
    expect(await names(techB)).toEqual([]);

    const exported = YAML.parse((await ga.req('GET', '/inventory/export')).body) as { computers: { name: string; labels: unknown }[]; teams: unknown[] };
    expect(exported.computers.find((c) => c.name === pc)?.labels).toEqual({ env: 'prod', os: 'linux' });
    expect(exported.teams).toContainEqual({ organization: a.name, name: 'Linux ops', description: '', syncGroups: ['linux-ops'], members: [tech.login], grants: [{ os: 'linux' }] });

    // A document without labels keeps the computer's labels; one with grants: [] takes the team's grants away.
    expect((await ga.req('POST', '/inventory/import', { computers: [{ ...doc.computers[0], labels: undefined }], teams: [{ ...doc.teams[0], grants: [] }] })).statusCode).toBe(200);
    expect((await db.query<{ labels: unknown }>('SELECT labels FROM computers WHERE name = $1', [pc]))[0]?.labels).toEqual({ env: 'prod', os: 'linux' });
    expect(await names(tech)).toEqual([]);
  });
});
