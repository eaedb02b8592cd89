/**
 * The SSH front door's guards, end to end with the real OpenSSH clients (ssh,
 * scp -O, sftp -s) and ssh2 against an sshd test host: the computer's policy
 * is decided before anything is provisioned (file transfer through exec,
 * port forwards), user names are validated before any lookup, people are
 * told why they are refused, and computer names match without case.
 * Skips, saying why, when the machine cannot run sshd test hosts or has no Redis.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createConnection, createServer } from 'node:net';
import { Writable } from 'node:stream';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'ssh2';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AuditLog } from '../core/audit.js';
import { createLogger } from '../core/logging.js';
import { AccessService } from '../gateway/access-policy.js';
import type { FrontDoorIdentity, SessionBroker } from '../gateway/contracts.js';
import type { FrontDoorHandle } from '../gateway/ssh/front-door.js';
import { parseFrontDoorUser } from '../gateway/ssh/front-door.js';
import { execOver, frontDoorClient, opensshArgs, opensshEnv, runOpenssh, startRig, totpNow, writeAskpass, type Rig, type RigPerson } from '../bench/ssh-front-door-rig.js';
import { sshHostAvailable } from './harness/ssh-host.js';

const avail = sshHostAvailable();
const socket = inject('redisSocket');
const skip = !avail.ok ? avail.reason ?? 'no ssh test hosts' : !socket ? `no Redis: ${inject('missing')}` : '';

describe('parseFrontDoorUser: login and computer patterns first', () => {
  it('refuses control characters, NUL bytes, spaces and overlong parts; logins compare in lower case', () => {
    expect(parseFrontDoorUser('Alice+WEB01')).toEqual({ login: 'alice', computer: 'WEB01' });
    expect(parseFrontDoorUser('alice+acme/web01')).toEqual({ login: 'alice', computer: 'acme/web01' });
    for (const bad of ['ali\u0000ce+web01', 'alice+web\u000001', 'alice+web01\n', 'al\u001bice', 'alice+web 01', `alice+${'w'.repeat(64)}`, `${'a'.repeat(33)}+web01`, 'alice+-web01', 'alice+a/b/c', '1alice+web01', 'alice+web01+x']) {
      expect(parseFrontDoorUser(bad), JSON.stringify(bad)).toBeNull();
    }
  });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe.skipIf(skip !== '')(`SSH front door guards on an sshd test host${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let rig: Rig;
  let door: FrontDoorHandle;
  let audit: AuditLog;
  let alice: RigPerson;
  let knownHosts: string;

  beforeAll(async () => {
    rig = await startRig(socket);
    audit = new AuditLog(rig.db);
    door = await rig.frontDoor({ audit });
    alice = rig.person(`ali${randomBytes(3).toString('hex')}`.replace(/[0-9]/g, 'q'));
    knownHosts = join(rig.dir, 'known_hosts_guards');
    writeFileSync(knownHosts, `[127.0.0.1]:${door.port} ${door.hostKeyPublic}\n`);
  });
  afterAll(async () => {
    await rig?.close();
  });

  // sftp -b turns BatchMode on (no prompts); ssh keeps the first value given, so ours wins.
  const common = (person: RigPerson): string[] => ['-o', 'BatchMode=no', ...opensshArgs(knownHosts, person)];

  /** One of the real OpenSSH clients; the TOTP prompt is answered by an askpass program. */
  function openssh(cmd: 'ssh' | 'scp' | 'sftp', person: RigPerson, args: string[], askpass?: string): Promise<Run> {
    return runOpenssh(cmd, [...common(person), ...args], opensshEnv(rig.dir, person, askpass));
  }

  const accountsOf = (login: string): Promise<string[]> => rig.accountsOf(login);

  async function denials(computer: string): Promise<{ reason: string; tool: string | null }[]> {
    const rows = await rig.db.query<{ data: { reason: string; tool: string | null } }>(
      "SELECT data FROM audit_events WHERE type = 'session.denied' AND computer = $1 ORDER BY seq",
      [computer],
    );
    return rows.map((r) => ({ reason: r.data.reason, tool: r.data.tool }));
  }

  it('file transfer through exec is refused when the policy turns it off (real scp -O, sftp -s, ssh … sftp-server); nothing is provisioned; audited', { timeout: 180_000 }, async () => {
    // Sessions of earlier tests are torn down asynchronously (teardown job): start from a host without alice's accounts.
    await expect.poll(() => accountsOf(alice.principal.login), { timeout: 60_000, interval: 250 }).toEqual([]);
    const closed = await rig.computer();
    const open = await rig.computer({ sftp: true });
    const user = (pc: { name: string }) => `${alice.principal.login}+${pc.name}`;
    const local = join(rig.dir, `scp-${randomBytes(3).toString('hex')}`);
    const payload = randomBytes(50_000);
    writeFileSync(local, payload);
    const batch = join(rig.dir, `batch-${randomBytes(3).toString('hex')}`);
    writeFileSync(batch, `put ${local} up.bin\n`);
    const opened = rig.broker.opened.length;

    // scp -O (the legacy protocol) runs `scp -t` (upload) and `scp -f` (download) on the host through exec.
    const up = await openssh('scp', alice, ['-O', '-P', String(door.port), local, `${user(closed)}@127.0.0.1:up.bin`]);
    expect(up.code).not.toBe(0);
    expect(up.stderr).toContain(`jitgate: file transfer (scp) is not allowed on ${closed.name}`);
    const down = await openssh('scp', alice, ['-O', '-P', String(door.port), `${user(closed)}@127.0.0.1:/etc/hostname`, `${local}.down`]);
    expect(down.code).not.toBe(0);
    expect(down.stderr).toContain(`jitgate: file transfer (scp) is not allowed on ${closed.name}`);
    // sftp -s <path> asks for an exec of that program instead of the sftp subsystem.
    const sftp = await openssh('sftp', alice, ['-s', '/usr/lib/openssh/sftp-server', '-P', String(door.port), '-b', batch, `${user(closed)}@127.0.0.1`]);
    expect(sftp.code).not.toBe(0);
    expect(sftp.stderr).toContain(`jitgate: file transfer (sftp-server) is not allowed on ${closed.name}`);
    // Running sftp-server directly: exit status 1 and the reason on stderr.
    const direct = await openssh('ssh', alice, ['-p', String(door.port), '-n', `${user(closed)}@127.0.0.1`, '/usr/lib/openssh/sftp-server']);
    expect(direct.code).toBe(1);
    expect(direct.stderr).toContain(`jitgate: file transfer (sftp-server) is not allowed on ${closed.name}`);
    expect(direct.stderr).not.toContain('creating account');

    expect(rig.broker.opened.length).toBe(opened);
    expect(await accountsOf(alice.principal.login)).toEqual([]);
    await expect.poll(() => denials(closed.name), { timeout: 10_000 }).toEqual([
      { reason: 'file-transfer', tool: 'scp' },
      { reason: 'file-transfer', tool: 'scp' },
      { reason: 'file-transfer', tool: 'sftp-server' },
      { reason: 'file-transfer', tool: 'sftp-server' },
    ]);

    // Where the policy allows file transfer, the same scp -O works (the refusal is the policy, not a broken path).
    const ok = await openssh('scp', alice, ['-O', '-P', String(door.port), `${user(open)}@127.0.0.1:/etc/hostname`, `${local}.ok`]);
    expect(`${ok.stderr}exit=${String(ok.code)}`).toMatch(/exit=0$/);
    expect(readFileSync(`${local}.ok`, 'utf8')).toBe((await rig.host.exec('cat /etc/hostname')).stdout);
    const sftpOk = await openssh('sftp', alice, ['-s', '/usr/lib/openssh/sftp-server', '-P', String(door.port), '-b', batch, `${user(open)}@127.0.0.1`]);
    expect(`${sftpOk.stderr}exit=${String(sftpOk.code)}`).toMatch(/exit=0$/);
  });

  it('a forward the policy refuses is "administratively prohibited" and provisions nothing (ssh -N -L, ssh2), audited', { timeout: 180_000 }, async () => {
    // The previous test's sessions (sftp allowed) are torn down asynchronously: wait until their accounts are gone.
    await expect.poll(() => accountsOf(alice.principal.login), { timeout: 60_000, interval: 250 }).toEqual([]);
    const closed = await rig.computer();
    const opened = rig.broker.opened.length;
    // ssh2: a direct-tcpip channel as the connection's first request.
    const c = await frontDoorClient(door.port, `${alice.principal.login}+${closed.name}`, alice, totpNow(alice.totpSecret));
    try {
      const err = await new Promise<Error & { reason?: number }>((resolve, reject) => {
        c.forwardOut('127.0.0.1', 5000, rig.host.address, rig.host.port, (e, ch) => {
          if (e) return resolve(e);
          ch.close();
          reject(new Error('forward was accepted'));
        });
      });
      expect(err.reason).toBe(1); // SSH_OPEN_ADMINISTRATIVELY_PROHIBITED
      expect(err.message).toContain(`port forwarding is not allowed on ${closed.name}`);
    } finally {
      c.end();
    }

    // The real client: a forward-only connection, then something connects to the forwarded port.
    const localPort = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const child = spawn('ssh', [...common(alice), '-p', String(door.port), '-N', '-L', `127.0.0.1:${localPort}:${rig.host.address}:${rig.host.port}`, `${alice.principal.login}+${closed.name}@127.0.0.1`], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: opensshEnv(rig.dir, alice),
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      await expect
        .poll(
          () =>
            new Promise<boolean>((resolve) => {
              const s = createConnection(localPort, '127.0.0.1');
              s.once('connect', () => {
                s.resume();
                s.once('close', () => resolve(true));
              });
              s.once('error', () => resolve(false));
            }),
          { timeout: 30_000, interval: 200 },
        )
        .toBe(true);
      await expect.poll(() => stderr, { timeout: 15_000 }).toContain(`administratively prohibited: port forwarding is not allowed on ${closed.name}`);
    } finally {
      child.kill('SIGTERM');
    }
    expect(rig.broker.opened.length).toBe(opened);
    expect(await accountsOf(alice.principal.login)).toEqual([]);
    await expect.poll(async () => (await denials(closed.name)).map((d) => d.reason), { timeout: 10_000 }).toEqual(['port-forwarding', 'port-forwarding']);

    // -R (tcpip-forward) is not offered at all: refused without provisioning.
    const remote = await openssh('ssh', alice, ['-p', String(door.port), '-N', '-o', 'ExitOnForwardFailure=yes', '-R', '0:127.0.0.1:22', `${alice.principal.login}+${closed.name}@127.0.0.1`]);
    expect(remote.code).toBe(255);
    expect(remote.stderr).toMatch(/remote port forwarding failed/);
    expect(rig.broker.opened.length).toBe(opened);
  });

  it('a user name with a NUL byte is refused before any lookup, and the banner says the expected format', async () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', destination: new Writable({ write: (chunk: Buffer, _e, cb) => { lines.push(chunk.toString()); cb(); } }) });
    // An identity that queries the database the way the real one does: a NUL byte would reach PostgreSQL.
    const queries: string[] = [];
    const identity: FrontDoorIdentity = {
      personByPublicKey: async (login, algo, data) => {
        queries.push(login);
        await rig.db.query('SELECT 1 FROM people WHERE login = $1', [login]);
        return rig.identity.personByPublicKey(login, algo, data);
      },
      verifySecondFactor: (id, code) => rig.identity.verifySecondFactor(id, code),
    };
    const guarded = await rig.frontDoor({ identity, log });
    const banners: string[] = [];
    const c = new Client();
    const failed = await new Promise<Error>((resolve, reject) => {
      c.on('banner', (m: string) => banners.push(m));
      c.once('ready', () => reject(new Error('signed in')));
      c.once('error', resolve);
      c.connect({ host: '127.0.0.1', port: guarded.port, username: `${alice.principal.login}\u0000+web01`, privateKey: alice.privateKey, readyTimeout: 30_000 });
    });
    c.end();
    expect(failed.message).toMatch(/authentication methods failed/);
    expect(queries).toEqual([]);
    expect(banners.join('')).toContain('the user name must be <login>+<computer>');
    expect(banners.join('')).toContain(`ssh -p ${guarded.port} alice+web01@`);
    const logged = lines.join('');
    expect(logged).toContain('user name is not login+computer');
    expect(logged).not.toContain('authentication step failed');
    expect(logged).not.toContain('invalid byte sequence');
    expect(logged).not.toContain('"stack"');

    // The real client with a name that is not login+computer is told the format too.
    const r = await openssh('ssh', alice, ['-p', String(door.port), '-n', `${alice.principal.login}+@127.0.0.1`, 'id']);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain('the user name must be <login>+<computer>');
    expect(r.stderr).toContain(`ssh -p ${door.port} alice+web01@<this gateway>`);
  });

  it('a locked person is told until when once the key is proven (nobody else is); wrong codes say why the door closed', async () => {
    const pc = await rig.computer();
    const bob = rig.person(`bob${randomBytes(3).toString('hex')}`.replace(/[0-9]/g, 'q'));
    const until = new Date(Date.now() + 15 * 60_000);
    rig.identity.locks.set(bob.principal.personId, until);
    try {
      const locked = await openssh('ssh', bob, ['-p', String(door.port), '-n', `${bob.principal.login}+${pc.name}@127.0.0.1`, 'id']);
      expect(locked.code).toBe(255);
      expect(locked.stderr).toContain(`jitgate: ${bob.principal.login} is locked until ${until.toISOString().slice(0, 16).replace('T', ' ')} UTC`);
      // Someone else's key under bob's name learns nothing about the lock.
      const stranger = await openssh('ssh', alice, ['-p', String(door.port), '-n', `${bob.principal.login}+${pc.name}@127.0.0.1`, 'id']);
      expect(stranger.code).toBe(255);
      expect(stranger.stderr).not.toContain('locked');
      expect(stranger.stderr).toMatch(/Permission denied \(publickey\)/);
    } finally {
      rig.identity.locks.delete(bob.principal.personId);
    }
    const wrong = await openssh('ssh', bob, ['-p', String(door.port), '-n', `${bob.principal.login}+${pc.name}@127.0.0.1`, 'id'], writeAskpass(rig.dir, null, '000000'));
    expect(wrong.code).toBe(255);
    expect(wrong.stderr).toContain('jitgate: 3 wrong verification codes; connection closed');
    expect(await accountsOf(bob.principal.login)).toEqual([]);
  });

  it('computer names match without case: alice+WEB01 reaches web01 (through the real access check)', async () => {
    const pc = await rig.computer();
    await rig.db.query('UPDATE computers SET name = $2 WHERE id = $1', [pc.id, `web-${randomBytes(3).toString('hex')}`]);
    const name = (await rig.db.query<{ name: string }>('SELECT name FROM computers WHERE id = $1', [pc.id]))[0]!.name;
    const admin = rig.person(`adm${randomBytes(3).toString('hex')}`.replace(/[0-9]/g, 'q'));
    // A global admin sees every computer: the lookup by name is the product's (gateway/access-policy.ts).
    Object.assign(admin.principal, { role: 'global_admin' });
    const access = new AccessService(rig.db, audit);
    const broker: SessionBroker = {
      open: async (req, progress) => {
        const c = await access.computerForConnect(req.principal, req.computerRef, req.protocol);
        return rig.broker.open({ ...req, computerRef: c.id }, progress);
      },
    };
    const viaAccess = await rig.frontDoor({ broker, audit });
    const c = await frontDoorClient(viaAccess.port, `${admin.principal.login}+${name.toUpperCase()}`, admin, totpNow(admin.totpSecret));
    try {
      const r = await execOver(c, 'hostname');
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe((await rig.host.exec('hostname')).stdout.trim());
    } finally {
      c.end();
    }
    expect((await rig.fx.repo.getSession(rig.broker.opened.at(-1)!))?.computerName).toBe(name);
  });
});
