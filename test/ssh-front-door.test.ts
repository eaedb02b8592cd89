/**
 * The native SSH front door end to end: the real OpenSSH client (and ssh2 as
 * a client) → jitgate's front door → JIT account on a real sshd test host,
 * provisioned through the real queue on Redis. Skips, saying why, when the
 * machine cannot run sshd test hosts or has no Redis.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClientChannel } from 'ssh2';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AuditLog } from '../core/audit.js';
import type { Computer } from '../core/domain.js';
import type { FrontDoorHandle } from '../gateway/ssh/front-door.js';
import { parseFrontDoorUser } from '../gateway/ssh/front-door.js';
import { createRecorder, type Recorder } from '../recorder/session-recorder.js';
import { ADMIN_GROUP, execOver, frontDoorClient, opensshArgs, opensshEnv, runOpenssh, startRig, totpNow, writeAskpass, type Rig, type RigPerson } from '../bench/ssh-front-door-rig.js';
import { sshHostAvailable } from './harness/ssh-host.js';

const avail = sshHostAvailable();
const socket = inject('redisSocket');
const skip = !avail.ok ? avail.reason ?? 'no ssh test hosts' : !socket ? `no Redis: ${inject('missing')}` : '';

describe('parseFrontDoorUser', () => {
  it('splits login and computer', () => {
    expect(parseFrontDoorUser('alice+web01')).toEqual({ login: 'alice', computer: 'web01' });
    expect(parseFrontDoorUser('alice')).toEqual({ login: 'alice', computer: null });
    expect(parseFrontDoorUser('alice+')).toBeNull();
    expect(parseFrontDoorUser('+web01')).toBeNull();
    expect(parseFrontDoorUser('a b+web01')).toBeNull();
  });
});

interface SshRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe.skipIf(skip !== '')(`SSH front door on an sshd test host${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let rig: Rig;
  let door: FrontDoorHandle;
  let alice: RigPerson;
  let knownHosts: string;
  let recorder: Recorder;
  const recDir = () => join(rig.dir, 'recordings');

  beforeAll(async () => {
    rig = await startRig(socket);
    recorder = createRecorder({ db: rig.db, audit: new AuditLog(rig.db), log: rig.log, dir: join(rig.dir, 'recordings'), signingKey: randomBytes(32) });
    door = await rig.frontDoor({ recorder });
    alice = rig.person(`alice${randomBytes(2).toString('hex')}`.replace(/[0-9]/g, 'x'));
    knownHosts = join(rig.dir, 'known_hosts');
    writeFileSync(knownHosts, `[127.0.0.1]:${door.port} ${door.hostKeyPublic}\n`);
  });
  afterAll(async () => {
    await rig?.close();
  });

  /** The real OpenSSH client; the TOTP prompt is answered by an askpass program. */
  function ssh(user: string, person: RigPerson, command: string[], opts: { askpass?: string; sftpBatch?: string } = {}): Promise<SshRun> {
    const common = opensshArgs(knownHosts, person);
    const [cmd, args]: ['ssh' | 'sftp', string[]] = opts.sftpBatch
      ? // sftp -b turns BatchMode on (no prompts); ssh keeps the first value given, so ours wins.
        ['sftp', [...common, '-o', 'BatchMode=no', '-P', String(door.port), '-b', opts.sftpBatch, `${user}@127.0.0.1`]]
      : ['ssh', [...common, '-p', String(door.port), '-n', `${user}@127.0.0.1`, ...command]];
    return runOpenssh(cmd, args, opensshEnv(rig.dir, person, opts.askpass));
  }

  const accountsOf = (login: string): Promise<string[]> => rig.accountsOf(login);

  it('OpenSSH: runs `id` as the JIT account in the admin group, forwards the exit status, and the account is gone afterwards', async () => {
    const pc = await rig.computer();
    const r = await ssh(`${alice.principal.login}+${pc.name}`, alice, ['id']);
    expect(`${r.stderr}exit=${String(r.code)}`).toMatch(/exit=0$/);
    const m = /uid=\d+\(([a-z0-9_]+)\)/.exec(r.stdout);
    expect(m?.[1]).toMatch(new RegExp(`^${alice.principal.login}_[a-z0-9]{6}$`));
    expect(r.stdout).toContain(`(${ADMIN_GROUP})`);
    // Progress went to stderr, never into the command's output.
    expect(r.stderr).toContain('jitgate: creating account');
    expect(r.stdout).not.toContain('jitgate:');
    const account = m![1]!;
    await expect.poll(async () => (await rig.host.exec(`getent passwd ${account}`)).code, { timeout: 30_000, interval: 250 }).toBe(2);

    const seven = await ssh(`${alice.principal.login}+${pc.name}`, alice, ['exit 7']);
    expect(seven.code).toBe(7);
    // A signal death is forwarded as exit-signal (OpenSSH's client then exits 255; ssh2 shows the signal).
    const killed = await ssh(`${alice.principal.login}+${pc.name}`, alice, ['kill -TERM $$']);
    expect(killed.code).toBe(255);
    const c = await frontDoorClient(door.port, `${alice.principal.login}+${pc.name}`, alice, totpNow(alice.totpSecret));
    try {
      const signal = await new Promise<unknown[]>((resolve, reject) => {
        c.exec('kill -TERM $$', (err, stream) => {
          if (err) return reject(err);
          stream.resume().stderr.resume();
          stream.on('exit', (...args: unknown[]) => resolve(args));
        });
      });
      expect(signal.slice(0, 2)).toEqual([null, 'SIGTERM']);
    } finally {
      c.end();
    }
    await expect.poll(() => accountsOf(alice.principal.login), { timeout: 30_000, interval: 250 }).toEqual([]);
    // Four real OpenSSH and ssh2 sessions, each provisioning and removing an account: 60 s was too short on a loaded machine.
  }, 180_000);

  it('refuses a wrong TOTP code and an unregistered key; nothing is provisioned', async () => {
    const pc = await rig.computer();
    const before = rig.broker.opened.length;
    const accountsBefore = await accountsOf(alice.principal.login);
    const wrong = await ssh(`${alice.principal.login}+${pc.name}`, alice, ['id'], { askpass: writeAskpass(rig.dir, null, '000000') });
    expect(wrong.code).toBe(255);
    // Three wrong codes, then the front door hangs up.
    expect(wrong.stderr).toMatch(/Disconnected from 127\.0\.0\.1/);
    expect(rig.identity.codeChecks.filter((c) => c.personId === alice.principal.personId && !c.ok).length).toBe(3);

    // A key nobody registered (mallory presents her own key under alice's name).
    const mallory = rig.person(`mallory${randomBytes(2).toString('hex')}`.replace(/[0-9]/g, 'y'));
    const checksBefore = rig.identity.codeChecks.length;
    const stranger = await ssh(`${alice.principal.login}+${pc.name}`, mallory, ['id']);
    expect(stranger.code).toBe(255);
    expect(stranger.stderr).toMatch(/Permission denied \(publickey\)/);
    // The TOTP prompt is never reached without the key.
    expect(rig.identity.codeChecks.length).toBe(checksBefore);

    // The right code alone (ssh2 client with mallory's key) does not get in either.
    await expect(frontDoorClient(door.port, `${alice.principal.login}+${pc.name}`, mallory, totpNow(alice.totpSecret))).rejects.toThrow(/authentication methods failed/);
    expect(rig.broker.opened.length).toBe(before);
    expect((await accountsOf(alice.principal.login)).filter((a) => !accountsBefore.includes(a))).toEqual([]);
  });

  it('SFTP is refused unless the computer allows it, and works when it does', async () => {
    const closed = await rig.computer();
    const open = await rig.computer({ sftp: true });
    const batch = join(rig.dir, `batch-${randomBytes(3).toString('hex')}`);
    const local = join(rig.dir, `payload-${randomBytes(3).toString('hex')}`);
    const payload = randomBytes(300_000);
    writeFileSync(local, payload);
    writeFileSync(batch, `put ${local} up.bin\nget up.bin ${local}.back\n`);

    const refused = await ssh(`${alice.principal.login}+${closed.name}`, alice, [], { sftpBatch: batch });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`SFTP is not allowed on ${closed.name}`);

    const ok = await ssh(`${alice.principal.login}+${open.name}`, alice, [], { sftpBatch: batch });
    expect(ok.stderr).not.toMatch(/not allowed|Permission denied/);
    expect(ok.code).toBe(0);
    expect(readFileSync(`${local}.back`).equals(payload)).toBe(true);

    // The same through ssh2's SFTP client; the transfer was recorded as an sftp stream.
    const c = await frontDoorClient(door.port, `${alice.principal.login}+${open.name}`, alice, totpNow(alice.totpSecret));
    try {
      // Each session has a fresh account (maximum security): write and read back within this one.
      const back = await new Promise<Buffer>((resolve, reject) => {
        c.sftp((err, sftp) => {
          if (err) return reject(err);
          sftp.writeFile('via-ssh2.bin', payload, (e) => {
            if (e) return reject(e);
            sftp.readFile('via-ssh2.bin', (e2, data) => (e2 ? reject(e2) : resolve(data)));
          });
        });
      });
      expect(back.equals(payload)).toBe(true);
    } finally {
      c.end();
    }
    await expect.poll(async () => (await rig.db.query("SELECT count(*)::int AS n FROM recordings WHERE kind = 'sftp' AND ended_at IS NOT NULL"))[0]!.n as number, { timeout: 15_000 }).toBeGreaterThan(0);
  });

  it('port forwarding is refused unless the computer allows it', async () => {
    const closed = await rig.computer();
    const open = await rig.computer({ portForwarding: true });
    const forward = async (pc: Computer): Promise<string> => {
      const c = await frontDoorClient(door.port, `${alice.principal.login}+${pc.name}`, alice, totpNow(alice.totpSecret));
      try {
        // A command first (provisions the session), then a direct-tcpip channel to the host's own sshd.
        await execOver(c, 'true');
        return await new Promise<string>((resolve) => {
          c.forwardOut('127.0.0.1', 5000, rig.host.address, rig.host.port, (err, ch) => {
            if (err) return resolve(`refused: ${err.message}`);
            ch.once('data', (d: Buffer) => {
              resolve(d.toString('latin1').split('\r\n')[0]!);
              ch.close();
            });
          });
        });
      } finally {
        c.end();
      }
    };
    expect(await forward(closed)).toMatch(/^refused/);
    expect(await forward(open)).toMatch(/^SSH-2\.0-OpenSSH/);
  });

  it('a pty shell is recorded as asciicast (output, resize) and the window size reaches the host', async () => {
    const pc = await rig.computer();
    const c = await frontDoorClient(door.port, `${alice.principal.login}+${pc.name}`, alice, totpNow(alice.totpSecret));
    const marker = `mark-${randomBytes(4).toString('hex')}`;
    let sessionId = '';
    try {
      const out = await new Promise<string>((resolve, reject) => {
        c.shell({ term: 'xterm-256color', cols: 100, rows: 30 }, (err, ch: ClientChannel) => {
          if (err) return reject(err);
          let buf = '';
          let sent = false;
          ch.on('data', (d: Buffer) => {
            buf += d.toString();
            // The shell's prompt: the upstream shell and its recording are running.
            if (!sent && /\$ $/.test(buf)) {
              sent = true;
              ch.setWindow(40, 120, 0, 0);
              // The echo arrives as typed; the marker joined from two halves appears only in the output.
              setTimeout(() => ch.write(`stty size; echo ${marker.slice(0, 5)}""${marker.slice(5)}; exit 3\n`), 300);
            }
          });
          ch.on('exit', (code: number) => (code === 3 ? undefined : reject(new Error(`exit ${code}`))));
          ch.on('close', () => resolve(buf));
        });
      });
      expect(out).toContain(marker);
      expect(out).toContain('40 120');
    } finally {
      c.end();
    }
    sessionId = rig.broker.opened.at(-1)!;
    await expect.poll(async () => (await rig.db.query("SELECT path FROM recordings WHERE session_id = $1 AND kind = 'terminal' AND ended_at IS NOT NULL", [sessionId])).length, { timeout: 15_000 }).toBe(1);
    const [row] = await rig.db.query<{ id: string }>('SELECT id FROM recordings WHERE session_id = $1', [sessionId]);
    const file = await recorder.open(row!.id);
    expect(file?.integrity).toBe('ok');
    const chunks: Buffer[] = [];
    for await (const chunk of file!.stream as AsyncIterable<Buffer>) chunks.push(Buffer.from(chunk));
    const lines = Buffer.concat(chunks).toString('utf8').trim().split('\n');
    const header = JSON.parse(lines[0]!) as { version: number; width: number; height: number };
    expect(header).toMatchObject({ version: 2, width: 100, height: 30 });
    const events = lines.slice(1).map((l) => JSON.parse(l) as [number, string, string]);
    expect(events.some((e) => e[1] === 'o' && e[2].includes(marker))).toBe(true);
    expect(events.some((e) => e[1] === 'r' && e[2] === '120x40')).toBe(true);
    // Keystrokes are not recorded by default (policy.recordInput is off).
    expect(events.some((e) => e[1] === 'i')).toBe(false);
    expect(existsSync(recDir())).toBe(true);
  });

  it('terminals are told before the lease ends; exec channels are not', async () => {
    // Every lease is "about to end" for this door: the notice is due as soon as the session opens.
    const warnDoor = await rig.frontDoor({ recorder, leaseWarningMs: 24 * 3600_000 });
    const pc = await rig.computer();
    const c = await frontDoorClient(warnDoor.port, `${alice.principal.login}+${pc.name}`, alice, totpNow(alice.totpSecret));
    try {
      const shellErr = await new Promise<string>((resolve, reject) => {
        c.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, ch: ClientChannel) => {
          if (err) return reject(err);
          let out = '';
          let errText = '';
          ch.stderr.on('data', (d: Buffer) => (errText += d.toString()));
          ch.on('data', (d: Buffer) => {
            out += d.toString();
            if (/\$ $/.test(out)) ch.end('exit\n');
          });
          ch.on('close', () => resolve(errText));
        });
      });
      const lease = (await rig.fx.repo.getSession(rig.broker.opened.at(-1)!))!.leaseExpiresAt;
      expect(shellErr).toContain(`jitgate: this session ends at ${lease.toISOString().slice(11, 16)} UTC`);
      expect(shellErr).toContain('save your work');
      const execErr = await new Promise<string>((resolve, reject) => {
        c.exec('echo hi', (err, ch: ClientChannel) => {
          if (err) return reject(err);
          let errText = '';
          ch.stderr.on('data', (d: Buffer) => (errText += d.toString()));
          ch.resume();
          ch.on('close', () => resolve(errText));
        });
      });
      expect(execErr).not.toContain('session ends');
    } finally {
      c.end();
    }
  });

  it('a terminal is told when somebody starts and stops watching it live (issue 17)', async () => {
    const pc = await rig.computer();
    const c = await frontDoorClient(door.port, `${alice.principal.login}+${pc.name}`, alice, totpNow(alice.totpSecret));
    try {
      const errText = await new Promise<string>((resolve, reject) => {
        c.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, ch: ClientChannel) => {
          if (err) return reject(err);
          let out = '';
          let errs = '';
          let told = false;
          ch.stderr.on('data', (d: Buffer) => {
            errs += d.toString();
            if (errs.includes('stopped watching')) ch.end('exit\n');
          });
          ch.on('data', (d: Buffer) => {
            out += d.toString();
            if (!told && /\$ $/.test(out)) {
              told = true;
              const id = rig.broker.opened.at(-1)!;
              rig.broker.watch(id, { count: 1, event: 'joined', by: 'secops' });
              rig.broker.watch(id, { count: 0, event: 'left', by: 'secops' });
            }
          });
          ch.on('close', () => resolve(errs));
        });
      });
      expect(errText).toContain('jitgate: secops started watching this session live (1 watching now)');
      expect(errText).toContain('jitgate: secops stopped watching this session live (0 watching now)');
    } finally {
      c.end();
    }
  });

  it('an admin terminate closes the connection with a message and the account is removed', async () => {
    const pc = await rig.computer();
    const c = await frontDoorClient(door.port, `${alice.principal.login}+${pc.name}`, alice, totpNow(alice.totpSecret));
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    let connected!: () => void;
    const upstreamConnected = new Promise<void>((resolve) => (connected = resolve));
    const out = new Promise<string>((resolve, reject) => {
      c.exec('sleep 600', (err, ch: ClientChannel) => {
        if (err) return reject(err);
        let buf = '';
        ch.stderr.on('data', (d: Buffer) => {
          buf += d.toString();
          if (buf.includes('connecting to')) connected();
        });
        ch.resume();
        ch.on('close', () => resolve(buf));
      });
    });
    await upstreamConnected;
    // The command runs on the host; then the session is terminated from outside.
    await expect.poll(async () => (await rig.host.exec('pgrep -x sleep')).code, { timeout: 20_000 }).toBe(0);
    expect(rig.broker.terminate(rig.broker.opened.at(-1)!, 'secops')).toBe(1);
    await closed;
    expect(await out).toContain('jitgate: session terminated by secops');
    const account = (await rig.fx.repo.getSession(rig.broker.opened.at(-1)!))!.accountName!;
    await expect.poll(async () => (await rig.host.exec(`getent passwd ${account}`)).code, { timeout: 30_000, interval: 250 }).toBe(2);
  });

  it('a bare login gets a menu of computers and connects to the chosen one', async () => {
    const pcs = [await rig.computer(), await rig.computer()];
    const menuDoor = await rig.frontDoor({ recorder, listComputers: () => Promise.resolve(pcs.map((p) => ({ name: p.name }))) });
    const c = await frontDoorClient(menuDoor.port, alice.principal.login, alice, totpNow(alice.totpSecret));
    try {
      const out = await new Promise<string>((resolve, reject) => {
        c.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, ch: ClientChannel) => {
          if (err) return reject(err);
          let buf = '';
          let step = 0;
          ch.on('data', (d: Buffer) => {
            buf += d.toString();
            if (step === 0 && buf.includes('Choose a number: ')) {
              step = 1;
              ch.write('9\r');
            } else if (step === 1 && buf.includes('Please type a number from 1 to 2')) {
              step = 2;
              ch.write('2\r');
            } else if (step === 2 && buf.includes('account ready')) {
              step = 3;
              setTimeout(() => ch.write('hostname; exit\n'), 300);
            }
          });
          ch.on('close', () => resolve(buf));
        });
      });
      expect(out).toContain(`2) ${pcs[1]!.name}`);
      expect(out).toContain(rig.host.netns);
    } finally {
      c.end();
    }
    const s = await rig.fx.repo.getSession(rig.broker.opened.at(-1)!);
    expect(s?.computerName).toBe(pcs[1]!.name);
    // Without a computer, exec is refused with a hint.
    const c2 = await frontDoorClient(menuDoor.port, alice.principal.login, alice, totpNow(alice.totpSecret));
    try {
      const r = await execOver(c2, 'id');
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`connect as ${alice.principal.login}+<computer>`);
    } finally {
      c2.end();
    }
  });

  it('keeps the generated host key across restarts', async () => {
    const again = await rig.frontDoor();
    expect(again.hostKeyPublic).toBe(door.hostKeyPublic);
    expect(readFileSync(join(rig.dir, 'ssh_host_ed25519_key'), 'utf8')).toContain('OPENSSH PRIVATE KEY');
  });
});
