import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Attribute, Change, Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { openDatabase } from '../core/db/open.js';
import { runCli } from './harness/cli.js';
import { sambaAdAvailable, startSambaAd, type SambaAdHandle } from './harness/samba-ad.js';

/**
 * Issue 14, operator side, end to end on real processes and the real Samba
 * AD DC: `jitgate apply` maps a person to their own account
 * (`accountMappings`), `jitgate checkout --elevate` raises that account into
 * the admin group and says it is the person's own (no password printed),
 * refuses a computer that creates accounts instead, `jitgate checkin` takes
 * back only what it added (a membership the account had before survives),
 * and `jitgate check` reports per store that Samba has no time-bound
 * membership (Privileged Access Management).
 */
const avail = sambaAdAvailable();
const STORE = 'corp-ad';

describe.skipIf(!avail.ok)(`jitgate checkout --elevate (Samba AD)${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let ad: SambaAdHandle;
  let dir: string;
  let cfg: string;
  const env = () => ({ JGT_TEST_LDAP_PASSWORD: ad.bindPassword });
  const account = `el${randomBytes(4).toString('hex')}`;
  const person = `erin${randomBytes(2).toString('hex')}`;
  const userDn = () => `CN=${account},${ad.jitOu}`;

  async function asAdmin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const c = new Client({ url: ad.url, tlsOptions: { ca: [ad.caCert] } });
    try {
      await c.bind(ad.adminDn, ad.adminPassword);
      return await fn(c);
    } finally {
      await c.unbind().catch(() => undefined);
    }
  }
  const isMember = (group: string) =>
    asAdmin(async (c) => {
      const { searchEntries } = await c.search(ad.adminGroupDns[group]!, { scope: 'base', attributes: ['member'] });
      const m = searchEntries[0]?.member;
      return (Array.isArray(m) ? m : m ? [m] : []).map((x) => String(x).toLowerCase()).includes(userDn().toLowerCase());
    });
  const cli = (args: string[]) => runCli([...args, '--config', cfg], env());

  beforeAll(async () => {
    ad = await startSambaAd();
    dir = mkdtempSync(join(tmpdir(), 'jgt-elev-cli-'));
    const caPath = join(dir, 'ca.pem');
    writeFileSync(caPath, ad.caCert);
    cfg = join(dir, 'jitgate.yaml');
    writeFileSync(cfg, stringify({
      dataDir: join(dir, 'data'), log: { level: 'warn' },
      accountStores: [{
        name: STORE, type: 'ldap', url: ad.url, caCert: `file:${caPath}`, bindDn: ad.bindDn, bindPassword: 'env:JGT_TEST_LDAP_PASSWORD',
        baseDn: ad.baseDn, accountsContainer: ad.jitOu, groups: ad.adminGroupDns, upnSuffix: ad.upnSuffix,
      }],
    }));
    // The person's own account, made by the Administrator: enabled, no jitgate marker, already in Helpdesk.
    await asAdmin(async (c) => {
      await c.add(userDn(), [
        new Attribute({ type: 'objectClass', values: ['user'] }),
        new Attribute({ type: 'sAMAccountName', values: [account] }),
        new Attribute({ type: 'unicodePwd', values: [Buffer.from(`"Pw-${randomBytes(9).toString('base64url')}-9a"`, 'utf16le')] }),
        new Attribute({ type: 'userAccountControl', values: ['512'] }),
      ]);
      await c.modify(ad.adminGroupDns.Helpdesk!, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [userDn()] }) }));
    });
  }, 300_000);

  afterAll(async () => {
    await asAdmin((c) => c.del(userDn())).catch(() => undefined);
    await ad?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('apply maps the person, checkout --elevate raises their own account, checkin removes only what it added; check reports no PAM', async () => {
    const jit = (mode: string) => ({ enabled: true, mode, adminGroups: ['JIT Admins', 'Helpdesk'], accountType: 'domain' });
    const inventory = (mappings: unknown[]) => stringify({
      organizations: [{ name: 'acme', sharedCode: '4242' }],
      computers: [
        { organization: 'acme', name: 'win-elev', address: '10.0.0.9', protocols: ['rdp'], domainStore: STORE, jit: jit('elevate') },
        { organization: 'acme', name: 'win-create', address: '10.0.0.10', protocols: ['rdp'], domainStore: STORE, jit: jit('create') },
      ],
      accountMappings: mappings,
    });
    const doc = join(dir, 'inv.yaml');
    writeFileSync(doc, inventory([]));
    const first = await cli(['apply', '-f', doc]);
    expect(first.code, first.stderr).toBe(0);
    // People come from sign-in, not from the inventory: made here as the identity side would.
    const db = await openDatabase({ dataDir: join(dir, 'data') });
    try {
      const org = (await db.query<{ id: string }>("SELECT id FROM organizations WHERE name = 'acme'"))[0]!.id;
      await db.query('INSERT INTO people (id, login, display_name, role, organization_id) VALUES ($1,$2,$3,$4,$5)', [randomUUID(), person, 'Erin', 'technician', org]);
    } finally {
      await db.close();
    }
    writeFileSync(doc, inventory([{ person, store: STORE, account }]));
    const mapped = await cli(['apply', '-f', doc]);
    expect([mapped.code, mapped.stdout], mapped.stderr).toEqual([0, expect.stringContaining('1 account mapping(s)')]);

    // A computer that creates accounts is refused under --elevate, before anything is requested.
    const refused = await cli(['checkout', 'win-create', '--for', person, '--elevate', '--protocol', 'rdp']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('win-create does not elevate existing accounts (JIT mode create)');

    const out = await cli(['checkout', 'win-elev', '--for', person, '--elevate', '--protocol', 'rdp', '--minutes', '10', '--json', '--show-password']);
    expect(out.code, out.stderr).toBe(0);
    const r = JSON.parse(out.stdout) as { sessionId: string; account: string; elevated: boolean; groups: string[]; password?: string };
    expect(r).toMatchObject({ account, elevated: true, store: STORE });
    expect(r.groups.sort()).toEqual(['Helpdesk', 'JIT Admins']);
    expect(r.password).toBeUndefined();
    expect(out.stderr).toContain(`${account} is ${person}'s own account: jitgate holds no password for it`);
    expect([await isMember('JIT Admins'), await isMember('Helpdesk')]).toEqual([true, true]);

    const checkin = await cli(['checkin', r.sessionId]);
    expect(checkin.code, checkin.stderr).toBe(0);
    // Added by jitgate → gone; there before the session → still there.
    expect([await isMember('JIT Admins'), await isMember('Helpdesk')]).toEqual([false, true]);

    const check = await cli(['check']);
    expect(check.stdout).toMatch(new RegExp(`ok {3}account store ${STORE}: ldap reachable; time-bound membership off \\(no Privileged Access Management feature`));
  }, 300_000);
});
