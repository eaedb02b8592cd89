/**
 * An elevated session (jit.mode elevate) over RDP, through the websocket
 * tunnel to the Guacamole-protocol test peer standing in for guacd, with the
 * real JIT engine, queue and Linux account store on an sshd test host (the
 * computer is a Linux desktop reached over RDP, as with xrdp; the front-door
 * rig, bench/ssh-front-door-rig.ts). docs/jit-engine.md, "Create or
 * elevate": jitgate holds no password for the person's own account, so
 * guacd's `connect` carries the person's account name and an empty
 * password, and the person types their own password at the computer's login
 * screen: as key events through the tunnel to guacd, which are not recorded
 * (`recording-include-keys` false). The session's `sudo` membership is
 * jitgate's and goes at the end; `adm`, which the account had before, stays.
 * A computer that requires NLA cannot show a login screen without the
 * password first: guacd asks (`required`), the tunnel never forwards that
 * question to the page, ends the session with words saying what to change,
 * and the membership is taken back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { isJitgateError } from '../core/errors.js';
import { JitErrors } from '../provisioner/jit-errors.js';
import { startRig, type Rig, type RigPerson } from '../bench/ssh-front-door-rig.js';
import { hostAccounts } from './fixtures/linux-host-accounts.js';
import { openGuacBrowser, until, type GuacBrowser } from './harness/guac-browser.js';
import { SlotRecorder, startGuacdPeer, startRdpTestApp, type GuacdPeer } from './harness/guacd-peer.js';
import { sshHostAvailable } from './harness/ssh-host.js';

const avail = sshHostAvailable();
const socket = inject('redisSocket');
const skip = !avail.ok ? avail.reason ?? 'no ssh test hosts' : !socket ? `no Redis: ${inject('missing')}` : '';

/** X11 keysyms (what Guacamole's `key` carries): Latin-1 characters are their own code; Return is 0xff0d. */
const RETURN = 0xff0d;

describe.skipIf(skip !== '')(`elevated RDP sessions through the tunnel to the guacd test peer${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let rig: Rig;
  let dir: string;
  const closers: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    rig = await startRig(socket, { groups: { admins: 'sudo', operators: 'adm' } });
    dir = mkdtempSync(join(tmpdir(), 'jgt-rdp-elev-'));
  }, 120_000);
  afterAll(async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    await rig?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const host = () => hostAccounts(rig.host);
  const must = (cmd: string) => host().must(cmd);
  const members = (group: string) => host().members(group);
  /** A person whose own Linux account (same name, a password of their own, already in adm) is on the host. */
  async function personWithAccount(prefix: string) {
    const own = await host().ownAccount(prefix);
    return { ...own, person: rig.person(own.name) };
  }

  /** A gateway serving the tunnel for `person`, in front of its own guacd test peer. */
  async function gateway(person: RigPerson, peerOpts: Parameters<typeof startGuacdPeer>[0] = {}): Promise<{ peer: GuacdPeer; wsUrl: string }> {
    const peer = await startGuacdPeer(peerOpts);
    closers.push(() => peer.close());
    const t: { app: FastifyInstance; wsUrl: string } = await startRdpTestApp({
      broker: rig.broker, recorder: new SlotRecorder(dir), guacd: { host: peer.host, port: peer.port }, guacdTimeoutMs: 30_000,
      principals: { me: person.principal },
    });
    closers.push(() => t.app.close());
    return { peer, wsUrl: t.wsUrl };
  }

  const query = (computer: string) => ({ computer, accountType: 'local', width: '1024', height: '768', dpi: '96', csrf: 'good', as: 'me' });
  const jitgate = (b: GuacBrowser, kind: string) => b.instructions.find((i) => i[0] === 'jitgate' && i[1] === kind);
  const elevatedComputer = (rdpSecurity: 'tls' | 'nla') => rig.computer({ rdpSecurity }, { mode: 'elevate', adminGroups: ['admins', 'operators'] });
  const groupsOf = async (sessionId: string) =>
    Object.fromEntries((await rig.fx.repo.elevationsOfSession(sessionId)).map((e) => [e.group, [e.addedByJitgate, e.state]]));

  it('guacd gets the person\'s own account and no password; the password they type reaches guacd as their keystrokes, unrecorded; only sudo (jitgate\'s) is taken back', async () => {
    const { person, name, password, shadow } = await personWithAccount('rd');
    const pc = await elevatedComputer('tls');
    const { peer, wsUrl } = await gateway(person, { image: { width: 64, height: 48, rgb: [10, 20, 30] } });

    const b = await openGuacBrowser(wsUrl, query(pc.name));
    const ready = await until(() => jitgate(b, 'ready'), 'jitgate ready', 90_000);
    const sessionId = ready[2]!;
    // The page is told whose password the login screen will ask for (the 7th argument).
    expect(ready[8]).toBe(name);
    const conn = await peer.waitFor(() => peer.connections[0], 10_000, 'the session connection');
    expect(conn.problems).toEqual([]);
    expect(conn.args.username).toBe(name);
    expect(conn.args.password).toBe('');
    expect(conn.args.domain ?? '').toBe('');
    expect(conn.args.security).toBe('tls');
    // Keystrokes stay out of guacd's recording: the password typed at the login screen is not kept there.
    expect(conn.args['recording-include-keys']).toBe('false');
    // jitgate holds nothing to inject: no account row, and the engine refuses credentials for the session.
    const s = (await rig.fx.repo.getSession(sessionId))!;
    expect(s.accountId).toBeNull();
    expect(s.accountName).toBe(name);
    const refused = await rig.fx.service.credentials(sessionId).then(() => null, (err: unknown) => err);
    expect(isJitgateError(refused, JitErrors.JIT_ERR_JIT_PASSWORD_FROM_PERSON)).toBe(true);
    // Elevated for the session: sudo is jitgate's, adm was theirs.
    expect(await members('sudo')).toContain(name);
    expect(await groupsOf(sessionId)).toEqual({ admins: [true, 'active'], operators: [false, 'active'] });

    // The person types their own password at the computer's login screen, then Return.
    for (const k of [...[...password].map((c) => c.codePointAt(0)!), RETURN]) {
      b.send('key', String(k), '1');
      b.send('key', String(k), '0');
    }
    const typed = await peer.waitFor(() => {
      const presses = conn.received.filter((i) => i[0] === 'key' && i[2] === '1').map((i) => Number(i[1]));
      return presses.at(-1) === RETURN ? presses : undefined;
    }, 20_000, 'the typed password at guacd');
    expect(String.fromCodePoint(...typed.slice(0, -1))).toBe(password);
    // Nowhere else: not in anything the tunnel sent to the page, not in any connect value.
    expect(b.frames.join('')).not.toContain(password);
    expect(Object.values(conn.args).join('\n')).not.toContain(password);

    b.send('disconnect');
    await b.closed;
    await rig.broker.allEnded(90_000);
    expect(await members('sudo')).not.toContain(name);
    expect(await members('adm')).toContain(name);
    expect(await host().exists(`/etc/sudoers.d/jitgate-elev-${name}`)).toBe(false);
    expect(await groupsOf(sessionId)).toEqual({ admins: [true, 'removed'], operators: [false, 'removed'] });
    // The account itself is untouched: same password hash and expiry, home still there.
    expect(await must(`getent shadow ${name}`)).toBe(shadow);
    await must(`test -d /home/${name}`);
    const dump = JSON.stringify(await rig.db.query('SELECT s.*, e.* FROM sessions s LEFT JOIN elevations e ON e.session_id = s.id WHERE s.id = $1', [sessionId]));
    expect(dump).not.toContain(password);
  }, 180_000);

  it('NLA: guacd asks for the password (`required`); the page is never asked, the session ends saying to use TLS, and the membership is taken back', async () => {
    const { person, name } = await personWithAccount('nl');
    const pc = await elevatedComputer('nla');
    // As guacd 1.5+ when FreeRDP's CredSSP has no password: a `required` instruction for it.
    const { peer, wsUrl } = await gateway(person, { extra: [['required', 'password']] });

    const b = await openGuacBrowser(wsUrl, query(pc.name));
    const closed = await b.closed;
    const conn = await peer.waitFor(() => peer.connections[0], 10_000, 'the session connection');
    expect(conn.args.username).toBe(name);
    expect(conn.args.password).toBe('');
    expect(conn.args.security).toBe('nla');
    // No `required` reached the page (it would show Guacamole's own credential prompt).
    expect(b.instructions.some((i) => i[0] === 'required')).toBe(false);
    const words = b.instructions.filter((i) => i[0] === 'jitgate' || i[0] === 'error').flat().join(' ') + closed.reason;
    expect(words).toMatch(/NLA/);
    expect(words).toMatch(/TLS/);
    const sessionId = rig.broker.opened.at(-1)!;
    await rig.broker.allEnded(90_000);
    expect(await members('sudo')).not.toContain(name);
    expect(await members('adm')).toContain(name);
    expect(await groupsOf(sessionId)).toEqual({ admins: [true, 'removed'], operators: [false, 'removed'] });
  }, 180_000);
});
