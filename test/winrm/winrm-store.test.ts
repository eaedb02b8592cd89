/**
 * jitgate's WinRM client and store against the WS-Man test server (the same
 * server pywinrm.test.ts checks against the real pywinrm): NTLM-sealed HTTP,
 * Basic over HTTPS, store operations end to end, and fault handling.
 */
import { X509Certificate } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isJitgateError } from '../../core/errors.js';
import { describeAccountStoreContract } from '../../provisioner/account-store.contract.js';
import { generatePassword } from '../../provisioner/account-names.js';
import { WinRmStore, type WinRmStoreOptions } from '../../provisioner/stores/winrm.store.js';
import { channelBindingsHash } from '../../provisioner/winrm/ntlm.js';
import { BasicAuth, NtlmAuth, WsmanTransport, certificateBindingHash } from '../../provisioner/winrm/transport.js';
import { WsmanClient } from '../../provisioner/winrm/wsman-client.js';
import { selfSignedCert } from './tls.js';
import { WsmanTestServer } from './wsman-test-server.js';

const logger = pino({ level: 'silent' });
const USERS = { jitsvc: 'Svc!Passw0rd-1' };
const GROUPS = { admins: 'S-1-5-32-544', rdp: 'Remote Desktop Users' };

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return isJitgateError(err) ? err.code : `untyped: ${String(err)}`;
  }
}

let uniq = 0;
const fresh = (): string => `t${process.pid.toString(36)}${(uniq++).toString(36)}`.slice(0, 18);

describe('WS-Man client', () => {
  let ntlmServer: WsmanTestServer;
  let tlsServer: WsmanTestServer;
  let tls: { key: string; cert: string };
  beforeAll(async () => {
    tls = selfSignedCert();
    ntlmServer = await new WsmanTestServer({ users: USERS, ntlm: true }).start();
    // Extended Protection: the server insists on the channel binding of its own certificate.
    const binding = channelBindingsHash(certificateBindingHash(new X509Certificate(tls.cert).raw));
    tlsServer = await new WsmanTestServer({ users: USERS, basic: true, ntlm: true, tls, requireChannelBinding: binding }).start();
  });
  afterAll(async () => {
    await ntlmServer?.stop();
    await tlsServer?.stop();
  });

  const ntlmClient = (url: string, password = USERS.jitsvc, caCert?: string): WsmanClient =>
    new WsmanClient({
      transport: new WsmanTransport({ endpoint: url, auth: new NtlmAuth({ username: 'jitsvc', password, logger }), caCert, timeoutMs: 5000, logger }),
      logger,
    });

  it('runs a command over NTLM-sealed HTTP on one authenticated connection', async () => {
    const c = ntlmClient(ntlmServer.url);
    const before = ntlmServer.seen.length;
    try {
      for (let i = 0; i < 2; i++) {
        const r = await c.run('ipconfig', []);
        expect(r.exitCode).toBe(0);
        expect(r.stdout.toString()).toContain('Windows IP Configuration');
      }
      const seen = ntlmServer.seen.slice(before);
      expect(seen.map((s) => s.action)).toEqual(['Create', 'Command', 'Receive', 'Signal', 'Delete', 'Create', 'Command', 'Receive', 'Signal', 'Delete']);
      expect(seen.every((s) => s.sealed && s.auth === 'ntlm' && s.user === 'jitsvc')).toBe(true);
      expect(ntlmServer.shells.size).toBe(0);
    } finally {
      c.close();
    }
  });

  it('decodes CLIXML stderr', async () => {
    const c = ntlmClient(ntlmServer.url);
    try {
      const r = await c.run('powershell.exe', ['-EncodedCommand', Buffer.from("Write-Error 'boom'", 'utf16le').toString('base64')]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain("Write-Error 'boom' : boom");
      expect(r.stderr).not.toContain('CLIXML');
    } finally {
      c.close();
    }
  });

  it('runs over Basic on HTTPS with the CA pinned, and over NTLM on HTTPS with channel binding', async () => {
    const basic = new WsmanClient({
      transport: new WsmanTransport({ endpoint: tlsServer.url, auth: new BasicAuth('jitsvc', USERS.jitsvc), caCert: tls.cert, timeoutMs: 5000, logger }),
      logger,
    });
    const before = tlsServer.seen.length;
    try {
      expect((await basic.run('ipconfig', [])).exitCode).toBe(0);
      expect(tlsServer.seen.slice(before).every((s) => s.auth === 'basic')).toBe(true);
    } finally {
      basic.close();
    }
    const c = ntlmClient(tlsServer.url, USERS.jitsvc, tls.cert);
    try {
      expect((await c.run('ipconfig', [])).exitCode).toBe(0);
    } finally {
      c.close();
    }
  });

  it('rejects an untrusted certificate and a bad password with typed errors', async () => {
    const untrusted = new WsmanClient({
      transport: new WsmanTransport({ endpoint: tlsServer.url, auth: new BasicAuth('jitsvc', USERS.jitsvc), timeoutMs: 5000, logger }),
      logger,
    });
    expect(await codeOf(untrusted.run('ipconfig', []))).toBe('JIT_ERR_WINRM_AUTH');
    untrusted.close();
    const bad = ntlmClient(ntlmServer.url, 'wrong-password');
    expect(await codeOf(bad.run('ipconfig', []))).toBe('JIT_ERR_WINRM_AUTH');
    bad.close();
  });

  it('refuses Basic over plain HTTP before connecting', () => {
    expect(() => new WsmanTransport({ endpoint: ntlmServer.url, auth: new BasicAuth('u', 'p'), timeoutMs: 1000, logger })).toThrow(
      expect.objectContaining({ code: 'JIT_ERR_WINRM_INSECURE' }),
    );
  });

  it('keeps receiving through w:TimedOut and maps other faults to JIT_ERR_WINRM_FAULT', async () => {
    const c = ntlmClient(ntlmServer.url);
    try {
      ntlmServer.inject.timedOutReceives = 3;
      expect((await c.run('ipconfig', [])).exitCode).toBe(0);
      ntlmServer.inject.timedOutReceives = 0;
      ntlmServer.inject.faultOn = 'Command';
      const err = await c.run('ipconfig', []).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'JIT_ERR_WINRM_FAULT', details: { wsmanCode: '2147943418', operation: 'Command' } });
      // The shell was still deleted after the fault.
      expect(ntlmServer.shells.size).toBe(0);
    } finally {
      ntlmServer.inject.timedOutReceives = 0;
      c.close();
    }
  });
});

describe('WinRM store end to end (NTLM sealed)', () => {
  let server: WsmanTestServer;
  let store: WinRmStore;
  const options = (over: Partial<WinRmStoreOptions> = {}): WinRmStoreOptions => ({
    endpoint: server.url,
    auth: 'ntlm',
    username: 'jitsvc',
    password: USERS.jitsvc,
    groups: GROUPS,
    logger,
    timeoutMs: 3000,
    // The test server speaks NTLM-sealed HTTP; production stores must say so explicitly.
    allowInsecureTransport: true,
    ...over,
  });
  beforeAll(async () => {
    server = await new WsmanTestServer({ users: USERS, ntlm: true }).start();
    store = new WinRmStore(options());
  });
  afterAll(async () => {
    await store?.close();
    await server?.stop();
  });

  it('create → marker, expiry, Administrators by SID; disable; enable; delete', async () => {
    const name = fresh();
    const password = generatePassword(name);
    const expiresAt = new Date(Date.now() + 3600_000);
    await store.create({ name, password, marker: `jitgate:test:${name}`, expiresAt });
    const u = server.model.userBy(name);
    expect(u).toMatchObject({ description: `jitgate:test:${name}`, enabled: true, passwordNeverExpires: true, password });
    expect(u?.accountExpires?.getTime()).toBe(expiresAt.getTime());
    await store.addToGroup(name, 'admins');
    expect(server.model.groupBy('S-1-5-32-544')?.members.has(u?.sid ?? '')).toBe(true);
    expect((await store.get(name))?.groups).toEqual(['admins']);
    await store.disable(name);
    expect(server.model.userBy(name)?.enabled).toBe(false);
    const later = new Date(Date.now() + 7200_000);
    await store.enable(name, later);
    expect(server.model.userBy(name)).toMatchObject({ enabled: true, accountExpires: later });
    expect((await store.listManaged()).map((a) => a.name)).toContain(name);
    await store.delete(name);
    expect(server.model.userBy(name)).toBeUndefined();
    expect(server.model.groupBy('S-1-5-32-544')?.members.has(u?.sid ?? '')).toBe(false);
    // Parameters never travelled on the command line.
    expect(server.seen.filter((s) => s.commandLine).every((s) => !s.commandLine?.includes(name) && !s.commandLine?.includes(password))).toBe(true);
    await store.check();
  });

  it('rejects hostile names before sending anything', async () => {
    const before = server.seen.length;
    for (const name of ['a"b', 'x'.repeat(21), 'a/b', 'a[b]', 'a:b', 'a;b', 'a|b', 'a=b', 'a,b', 'a+b', 'a*b', 'a?b', 'a<b>', 'a@b', 'a\\b', 'a\u0001b', 'ends.', '$(calc)', "a'b"]) {
      expect(await codeOf(store.create({ name, password: 'Xx1!xxxxxxxxxxxxxxxxxxxxxxx', marker: 'jitgate:test:h', expiresAt: new Date() }))).toBe(
        'JIT_ERR_STORE_INVALID_NAME',
      );
      expect(await codeOf(store.delete(name))).toBe('JIT_ERR_STORE_INVALID_NAME');
    }
    expect(server.seen.length).toBe(before);
  });

  it('refuses accounts without the jitgate marker (the built-in Administrator)', async () => {
    for (const p of [store.delete('Administrator'), store.disable('Administrator'), store.setPassword('Administrator', 'Xx1!xxxxxxxxxxxxxxxxxxxxxxx'), store.removeFromGroup('Administrator', 'admins')]) {
      expect(await codeOf(p)).toBe('JIT_ERR_STORE_NOT_MANAGED');
    }
    expect(server.model.userBy('Administrator')?.enabled).toBe(true);
  });

  it('maps script errors: exists, password policy, unknown group', async () => {
    const name = fresh();
    await store.create({ name, password: generatePassword(name), marker: `jitgate:test:${name}`, expiresAt: new Date(Date.now() + 60_000) });
    expect(await codeOf(store.create({ name, password: generatePassword(name), marker: `jitgate:test:${name}`, expiresAt: new Date() }))).toBe('JIT_ERR_STORE_ACCOUNT_EXISTS');
    expect(await codeOf(store.setPassword(name, 'short'))).toBe('JIT_ERR_STORE_PASSWORD_POLICY');
    expect(await codeOf(store.addToGroup(name, 'nope'))).toBe('JIT_ERR_STORE_NO_SUCH_GROUP');
    const bad = new WinRmStore(options({ groups: { ghost: 'No Such Local Group' } }));
    expect(await codeOf(bad.addToGroup(name, 'ghost'))).toBe('JIT_ERR_STORE_NO_SUCH_GROUP');
    await bad.close();
    await store.delete(name);
  });

  it('refuses Basic over HTTP', () => {
    expect(() => new WinRmStore(options({ auth: 'basic' }))).toThrow(expect.objectContaining({ code: 'JIT_ERR_STORE_INSECURE' }));
  });

  it('refuses an http:// endpoint (NTLM too) unless allowInsecureTransport, before sending anything', () => {
    const before = server.seen.length;
    for (const over of [{ allowInsecureTransport: false }, { allowInsecureTransport: undefined }]) {
      expect(() => new WinRmStore(options(over))).toThrow(expect.objectContaining({ code: 'JIT_ERR_STORE_INSECURE' }));
    }
    expect(server.seen.length).toBe(before);
  });

  it('looks groups up by own key only: `constructor` and `__proto__` are no groups', async () => {
    const name = fresh();
    await store.create({ name, password: generatePassword(name), marker: `jitgate:test:${name}`, expiresAt: new Date(Date.now() + 60_000) });
    try {
      const before = server.seen.length;
      for (const group of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
        expect({ group, code: await codeOf(store.addToGroup(name, group)) }).toEqual({ group, code: 'JIT_ERR_STORE_NO_SUCH_GROUP' });
        expect({ group, code: await codeOf(store.removeFromGroup(name, group)) }).toEqual({ group, code: 'JIT_ERR_STORE_NO_SUCH_GROUP' });
      }
      // Refused before anything was sent.
      expect(server.seen.length).toBe(before);
      expect((await store.get(name))?.groups).toEqual([]);
    } finally {
      await store.delete(name);
    }
  });

  it('logOff ends a disconnected RDP session and the processes of the JIT account, and nothing of anyone else', async () => {
    const name = fresh();
    const password = generatePassword(name);
    await store.create({ name, password, marker: `jitgate:test:${name}`, expiresAt: new Date(Date.now() + 3600_000) });
    await store.addToGroup(name, 'admins');
    const admin = server.model.logOn('Administrator', { password: 'Adm1n!Passw0rd' });
    // A same-named domain account's session on this computer is another principal.
    const domainTwin = server.model.logOn(name, { domain: 'CORP' });
    try {
      server.model.logOn(name, { password, state: 'Disc' });
      server.model.logOn(name, { password });
      expect(server.model.logonsOf(name).sessions).toHaveLength(2);
      expect(server.model.logonsOf(name).processes.length).toBeGreaterThan(0);

      await store.logOff(name);
      expect(server.model.logonsOf(name)).toEqual({ sessions: [], processes: [] });
      expect(server.model.sessions.map((x) => x.id)).toEqual(expect.arrayContaining([admin.id, domainTwin.id]));
      expect(server.model.logonsOf('Administrator').processes.length).toBeGreaterThan(0);
      // Logging off is not removing: the account is still there, in its group, until teardown goes on.
      expect((await store.get(name))?.groups).toEqual(['admins']);
      await store.logOff(name);
      // The name travelled only on stdin.
      expect(server.seen.filter((x) => x.commandLine).every((x) => !x.commandLine?.includes(name))).toBe(true);
    } finally {
      server.model.logOffSession(admin.id);
      server.model.logOffSession(domainTwin.id);
      await store.delete(name);
    }
  });

  it('logOff of a name with no local account ends that domain account\'s sessions here, never a built-in one', async () => {
    const name = fresh();
    const local = server.model.logOn('Administrator', { password: 'Adm1n!Passw0rd' });
    const domainAdmin = server.model.logOn('Administrator', { domain: 'CORP' });
    try {
      server.model.logOn(name, { domain: 'CORP', state: 'Disc' });
      expect(server.model.logonsOf(name, 'CORP').sessions).toHaveLength(1);
      await store.logOff(name);
      expect(server.model.logonsOf(name, 'CORP')).toEqual({ sessions: [], processes: [] });
      // The local Administrator is not ours; CORP\Administrator is built in: both refused, both still logged on.
      expect(await codeOf(store.logOff('Administrator'))).toBe('JIT_ERR_STORE_NOT_MANAGED');
      expect(server.model.sessions.map((x) => x.id)).toEqual(expect.arrayContaining([local.id, domainAdmin.id]));
    } finally {
      server.model.logOffSession(local.id);
      server.model.logOffSession(domainAdmin.id);
    }
  });

  it('faults give typed errors and leave nothing half-created', async () => {
    // 500 + SOAP fault on Command: nothing ran.
    let name = fresh();
    server.inject.faultOn = 'Command';
    expect(await codeOf(store.create({ name, password: generatePassword(name), marker: `jitgate:test:${name}`, expiresAt: new Date(Date.now() + 60_000) }))).toBe('JIT_ERR_STORE_FAILED');
    expect(server.model.userBy(name)).toBeUndefined();

    // Connection reset after the script ran: the store reconnects and removes its own account.
    name = fresh();
    server.inject.resetOnReceive = 1;
    expect(await codeOf(store.create({ name, password: generatePassword(name), marker: `jitgate:test:${name}`, expiresAt: new Date(Date.now() + 60_000) }))).toBe('JIT_ERR_STORE_UNREACHABLE');
    expect(server.model.journal.filter((j) => j.name === name).map((j) => j.op)).toEqual(['create', 'get', 'delete']);
    expect(server.model.userBy(name)).toBeUndefined();

    // Slow response beyond timeoutMs: transient, compensated the same way.
    name = fresh();
    server.inject.delayOn = 'Receive';
    server.inject.delayMs = 4000;
    expect(await codeOf(store.create({ name, password: generatePassword(name), marker: `jitgate:test:${name}`, expiresAt: new Date(Date.now() + 60_000) }))).toBe('JIT_ERR_STORE_UNREACHABLE');
    expect(server.model.userBy(name)).toBeUndefined();

    // 401 mid-session twice in a row (handshake redone once, then refused) → auth error.
    server.inject.unauthorized = 2;
    expect(await codeOf(store.get('nobody'))).toBe('JIT_ERR_STORE_AUTH');
    // And the store recovers afterwards.
    expect(await store.get('nobody')).toBeNull();

    // Wrong service password.
    const bad = new WinRmStore(options({ password: 'not-it' }));
    expect(await codeOf(bad.get('nobody'))).toBe('JIT_ERR_STORE_AUTH');
    await bad.close();
  });
});

// The shared AccountStore contract against the WinRM test server.
{
  let server: WsmanTestServer;
  let store: WinRmStore;
  describeAccountStoreContract('winrm on the WS-Man test server', async () => {
    server = await new WsmanTestServer({ users: USERS, ntlm: true }).start();
    server.model.groups.set('backup operators', { name: 'Backup Operators', sid: 'S-1-5-32-551', members: new Set() });
    store = new WinRmStore({
      endpoint: server.url, auth: 'ntlm', username: 'jitsvc', password: USERS.jitsvc, groups: GROUPS, logger, timeoutMs: 5000, allowInsecureTransport: true,
      protectedGroups: ['Backup Operators'],
    });
    const user = (name: string) => {
      const u = server.model.userBy(name);
      if (!u) throw new Error(`no user ${name} in the model`);
      return u;
    };
    const group = (configured: string) => server.model.groupBy(GROUPS[configured as keyof typeof GROUPS])!;
    return {
      store,
      groups: ['admins', 'rdp'],
      elevation: {
        builtInProtected: 'Administrator',
        makeProtectedByGroup: async (name: string) => void server.model.groupBy('Backup Operators')!.members.add(user(name).sid),
        disableOutOfBand: async (name: string) => void (user(name).enabled = false),
        expireOutOfBand: async (name: string) => void (user(name).accountExpires = new Date(Date.now() - 60_000)),
        addMemberOutOfBand: async (name: string, g: string) => void group(g).members.add(user(name).sid),
        memberOutOfBand: async (name: string, g: string) => group(g).members.has(user(name).sid),
      },
      seedUnmanaged: async (name: string) => {
        server.model.addUser({ name, description: 'a human account', password: 'Hum4n!Password' });
      },
      removeUnmanaged: async (name: string) => {
        server.model.removeUser(name);
      },
      canLogOn: async (name: string, password: string) => {
        const u = server.model.userBy(name);
        return !!u && u.enabled && u.password === password && (u.accountExpires === null || u.accountExpires > new Date());
      },
      startLogon: async (name: string, password: string) => {
        server.model.logOn(name, { password, state: 'Disc' });
      },
      hasLogon: async (name: string) => {
        const l = server.model.logonsOf(name);
        return l.sessions.length + l.processes.length > 0;
      },
      teardown: async () => {
        await store.close();
        await server.stop();
      },
    };
  });
}
