/**
 * An elevated session (jit.mode elevate) through the native SSH front door,
 * end to end on real services (bench/ssh-front-door-rig.ts: sshd test host,
 * SSH store, JIT engine, BullMQ on Redis): the person's own Linux account
 * joins `sudo` for the session while its membership of `adm`, which it had
 * before, is recorded as not jitgate's. They sign in at the front door (key +
 * TOTP), then answer the computer's own login prompt at their terminal with
 * their own password (a wrong one first: refused, asked again), get a shell
 * with sudo, and leave. After the session `sudo` is gone and `adm` is still
 * there; the account, its password and its home are as they were; the typed
 * passwords are nowhere in the recording or the database. Without a terminal
 * the front door refuses (it could not ask) and takes the membership back.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { ClientChannel } from 'ssh2';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AuditLog } from '../core/audit.js';
import type { FrontDoorHandle } from '../gateway/ssh/front-door.js';
import { createRecorder, type Recorder } from '../recorder/session-recorder.js';
import { execOver, frontDoorClient, startRig, totpNow, type Rig } from '../bench/ssh-front-door-rig.js';
import { waitFor } from './fixtures/elevation-ssh-env.js';
import { hostAccounts } from './fixtures/linux-host-accounts.js';
import { sshHostAvailable } from './harness/ssh-host.js';

const avail = sshHostAvailable();
const socket = inject('redisSocket');
const skip = !avail.ok ? avail.reason ?? 'no ssh test hosts' : !socket ? `no Redis: ${inject('missing')}` : '';

describe.skipIf(skip !== '')(`elevated sessions through the SSH front door${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let rig: Rig;
  let door: FrontDoorHandle;
  let recorder: Recorder;

  beforeAll(async () => {
    rig = await startRig(socket, { groups: { admins: 'sudo', operators: 'adm' } });
    recorder = createRecorder({ db: rig.db, audit: new AuditLog(rig.db), log: rig.log, dir: join(rig.dir, 'recordings'), signingKey: randomBytes(32) });
    door = await rig.frontDoor({ recorder });
  }, 120_000);
  afterAll(async () => {
    await rig?.close();
  });

  const host = () => hostAccounts(rig.host);
  const must = (cmd: string) => host().must(cmd);
  const members = (group: string) => host().members(group);
  const elevated = () => rig.computer({}, { mode: 'elevate', adminGroups: ['admins', 'operators'] });

  it('the person logs in with their own password at their terminal; sudo is theirs for the session only, adm (theirs before) stays', async () => {
    const own = await host().ownAccount('ev');
    const { name } = own;
    const person = rig.person(name);
    const wrong = `Wrong-${randomBytes(9).toString('base64url')}`;
    const pc = await elevated();
    expect(await members('sudo')).not.toContain(name);

    const c = await frontDoorClient(door.port, `${name}+${pc.name}`, person, totpNow(person.totpSecret));
    let out = '';
    let ch!: ClientChannel;
    try {
      ch = await new Promise<ClientChannel>((resolve, reject) => c.shell({ term: 'xterm', cols: 100, rows: 30 }, (err, x) => (err ? reject(err) : resolve(x))));
      ch.on('data', (d: Buffer) => (out += d.toString('utf8')));
      const closed = new Promise<void>((resolve) => ch.once('close', () => resolve()));
      /** Wait for `re` in what the terminal showed after `from`; returns where it ended. */
      const seen = async (what: string, re: RegExp, from: number, ms = 90_000) =>
        waitFor(what, async () => {
          const m = re.exec(out.slice(from));
          return m ? from + m.index + m[0].length : undefined;
        }, ms);

      // The front door says whose password it wants, then the computer's own prompt.
      let at = await seen('the own-password notice', new RegExp(`sign in with your own password for ${name} on ${pc.name}`), 0);
      at = await seen('the computer\'s password prompt', /[Pp]assword[^\r\n]*: ?$/, at);
      const sessionId = rig.broker.opened.at(-1)!;
      // Elevated before the login: the account is in sudo now, with its fail-safe; the records say which membership is jitgate's.
      expect(await members('sudo')).toContain(name);
      expect(await host().exists(`/etc/sudoers.d/jitgate-elev-${name}`)).toBe(true);
      const rows = await rig.fx.repo.elevationsOfSession(sessionId);
      expect(Object.fromEntries(rows.map((e) => [e.group, [e.addedByJitgate, e.state]]))).toEqual({ admins: [true, 'active'], operators: [false, 'active'] });

      ch.write(`${wrong}\r`);
      at = await seen('the refusal', new RegExp(`${pc.name} refused that answer; try again\\.`), at);
      at = await seen('the prompt again', /[Pp]assword[^\r\n]*: ?$/, at);
      ch.write(`${own.password}\r`);
      at = await seen('the shell prompt', /\$ $/, at);

      // In the session: the groups as the login got them, and sudo with the person's own password.
      ch.write('id -nG\n');
      at = await seen('the groups', /\badm\b[^\r\n]*\bsudo\b/, at);
      // The prompt split in the command line, so that its echo never looks like the prompt itself.
      ch.write("sudo -k; sudo -p 'SUDO''-PW:' id -u\n");
      at = await seen('sudo\'s password prompt', /SUDO-PW:$/, at);
      ch.write(`${own.password}\r`);
      await seen('root', /\n0\r?\n/, at);
      ch.write('exit\n');
      await closed;
      expect(out).not.toContain(own.password);
      expect(out).not.toContain(wrong);
    } finally {
      c.end();
    }

    const sessionId = rig.broker.opened.at(-1)!;
    await rig.broker.allEnded(90_000);
    expect(await members('sudo')).not.toContain(name);
    expect(await members('adm')).toContain(name);
    expect(await host().exists(`/etc/sudoers.d/jitgate-elev-${name}`)).toBe(false);
    const rows = await rig.fx.repo.elevationsOfSession(sessionId);
    expect(Object.fromEntries(rows.map((e) => [e.group, [e.addedByJitgate, e.state]]))).toEqual({ admins: [true, 'removed'], operators: [false, 'removed'] });
    const removals = (await rig.fx.audit.list({ sessionId })).filter((e) => e.type === 'account.group_removed');
    expect(Object.fromEntries(removals.map((e) => [(e.data as { group: string }).group, (e.data as { removed: boolean }).removed]))).toEqual({ admins: true, operators: false });
    // The account is the person's: the same passwd line, password hash and expiry as before; the home is still there.
    expect(await must(`getent shadow ${name}`)).toBe(own.shadow);
    await must(`test -d /home/${name}`);

    // The typed passwords are in no recording and no row.
    await expect.poll(async () => (await rig.db.query("SELECT id FROM recordings WHERE session_id = $1 AND kind = 'terminal' AND ended_at IS NOT NULL", [sessionId])).length, { timeout: 15_000 }).toBe(1);
    const [rec] = await rig.db.query<{ id: string }>('SELECT id FROM recordings WHERE session_id = $1', [sessionId]);
    const file = await recorder.open(rec!.id);
    expect(file?.integrity).toBe('ok');
    const chunks: Buffer[] = [];
    for await (const chunk of file!.stream as AsyncIterable<Buffer>) chunks.push(Buffer.from(chunk));
    const cast = Buffer.concat(chunks).toString('utf8');
    expect(cast).toContain('SUDO-PW:');
    expect(cast).not.toContain(own.password);
    expect(cast).not.toContain(wrong);
    const dump = JSON.stringify(await rig.db.query("SELECT s.*, e.* FROM sessions s LEFT JOIN elevations e ON e.session_id = s.id WHERE s.id = $1", [sessionId]));
    expect(dump).toContain(name);
    expect(dump).not.toContain(own.password);
    expect(dump).not.toContain(wrong);
  }, 240_000);

  it('without a terminal the front door cannot ask for the password: refused with a hint, and the membership jitgate added is taken back', async () => {
    const own = await host().ownAccount('nt');
    const { name } = own;
    const person = rig.person(name);
    const pc = await elevated();
    const c = await frontDoorClient(door.port, `${name}+${pc.name}`, person, totpNow(person.totpSecret));
    try {
      const r = await execOver(c, 'id');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`${pc.name} logs you in as your own account ${name}, whose password you type at the login prompt: connect with a terminal (ssh -t) first`);
      expect(r.stdout).toBe('');
    } finally {
      c.end();
    }
    await rig.broker.allEnded(90_000);
    expect(await members('sudo')).not.toContain(name);
    expect(await members('adm')).toContain(name);
    expect(await must(`getent shadow ${name}`)).toBe(own.shadow);
  }, 180_000);
});
