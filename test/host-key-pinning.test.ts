/**
 * No trust on first use (issue 12, item 5): a JIT password goes only to a
 * host whose SSH key an admin pinned. On a real sshd test host, through the
 * real session broker, BullMQ on a real Redis and the Linux account store:
 *
 * - an unpinned computer is refused by the browser terminal and the front
 *   door before anything is provisioned: no session row, no account on the
 *   host, nothing sent to its sshd, audited as a failure;
 * - a wrong pin is refused before authentication, and the account made
 *   meanwhile is torn down;
 * - scan + confirm through the API pins the key, and sessions then work;
 * - changing the address (API or import) drops the pin; DELETE unpins;
 * - the Linux store refuses a host whose key is not its `hostKeySha256`.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Database } from '../core/db/database.js';
import type { Computer } from '../core/domain.js';
import { isJitgateError } from '../core/errors.js';
import { createLogger, silentLogger } from '../core/logging.js';
import type { Principal } from '../gateway/auth/principal.js';
import { applyInventory } from '../gateway/inventory.js';
import { startFrontDoor, type FrontDoorHandle } from '../gateway/ssh/front-door.js';
import { scanHostKey } from '../gateway/ssh/host-key-scan.js';
import { SshConnection } from '../provisioner/stores/ssh-connection.js';
import { SshAccountStore } from '../provisioner/stores/ssh.store.js';
import type { RecordingMeta, SessionRecorder, TerminalRecording } from '../recorder/recorder.js';
import { execOver, frontDoorClient, frontDoorPerson, RigIdentity, totpNow, type RigPerson } from '../bench/ssh-front-door-rig.js';
import { ApiFixture } from './fixtures/api-fixture.js';
import type { JitFixture } from './fixtures/jit-fixture.js';
import { startSshGatewayFixture, type SshGatewayFixture } from './fixtures/ssh-gateway-fixture.js';
import { sshHostAvailable, type SshHostHandle } from './harness/ssh-host.js';
import { WsTerminal } from './harness/ws-terminal.js';

const avail = sshHostAvailable();
const redisSocket = inject('redisSocket');
const skip = !avail.ok ? avail.reason ?? 'no ssh test hosts' : !redisSocket ? 'no Redis' : '';
/** The ApiFixture knows a store of this name (validation of PATCH /computers). */
const STORE = 'linux';

/** Recording is not what this file tests: accept and drop. */
const nullRecorder: SessionRecorder = {
  async startTerminal(meta: RecordingMeta): Promise<TerminalRecording> {
    return {
      recordingId: meta.sessionId, output: () => true, input: () => true, resize: () => undefined, drained: async () => undefined,
      close: async () => ({ recordingId: meta.sessionId, sizeBytes: 0, sha256: '', manifestSeq: 0 }),
    };
  },
  startStream: () => {
    throw new Error('not used');
  },
  startRdp: () => {
    throw new Error('not used');
  },
} as unknown as SessionRecorder;

async function waitUntil(what: string, cond: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** JITGATE_TEST_LOG=debug shows the gateway's logs. */
const testLog = process.env.JITGATE_TEST_LOG ? createLogger({ level: process.env.JITGATE_TEST_LOG }) : silentLogger();
const randomPin = (): string => `SHA256:${randomBytes(32).toString('base64').replace(/=+$/, '')}`;

describe.skipIf(skip !== '')(`SSH host keys are pinned, never trusted on first use${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let rig: SshGatewayFixture;
  let host: SshHostHandle;
  let db: Database;
  let fx: JitFixture;
  let api: ApiFixture;
  let door: FrontDoorHandle;
  let dir: string;
  const identity = new RigIdentity();

  /** A technician known to the terminal (test header) and the front door (key + TOTP); login of letters only. */
  async function person(label: string): Promise<RigPerson> {
    const login = `${label}${randomBytes(3).toString('hex')}`.replace(/[0-9]/g, 'q');
    const principal: Principal = { personId: randomUUID(), login, displayName: login, role: 'technician', organizationId: null, authSessionId: `s-${randomUUID()}` };
    rig.people.set(principal.personId, principal);
    await db.query('INSERT INTO people (id, login, display_name, role) VALUES ($1, $2, $3, $4)', [principal.personId, login, login, 'technician']);
    return frontDoorPerson(identity, dir, principal);
  }

  /** A computer on the test host with exactly this policy (no pin unless it says so). */
  const computer = (policy: Record<string, unknown>): Promise<Computer> => rig.computer(policy, { pinned: false });

  function terminal(p: Principal, c: Computer): WsTerminal {
    return new WsTerminal(`${rig.base}/api/v1/terminal?computer=${c.id}&csrf=csrf-${p.authSessionId}`, { headers: { 'x-test-person': p.personId }, timeoutMs: 90_000 });
  }

  async function accountsOf(login: string): Promise<string[]> {
    const r = await host.exec(`getent passwd | cut -d: -f1 | grep '^${login}_' || true`);
    return r.stdout.split('\n').filter(Boolean);
  }

  const sshdLog = (): string => readFileSync(host.log, 'utf8');
  const sessionsOn = async (c: Computer) => db.query<{ id: string; account_name: string | null; state: string }>('SELECT id, account_name, state FROM sessions WHERE computer_id = $1', [c.id]);
  const auditOf = async (c: Computer) => db.query<{ type: string; outcome: string; data: Record<string, unknown> }>('SELECT type, outcome, data FROM audit_events WHERE computer = $1 ORDER BY seq', [c.name]);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jgt-hostkey-'));
    rig = await startSshGatewayFixture({
      redisSocket: redisSocket!, store: STORE, prefix: `hk${randomBytes(4).toString('hex')}`, log: testLog,
      gateway: () => ({ recorder: nullRecorder, mayWatch: () => false }),
    });
    ({ host, db, fx } = rig);
    door = await startFrontDoor({ host: '127.0.0.1', port: 0, dataDir: dir, identity, broker: rig.gw.broker, audit: fx.audit, log: testLog });
    // The administration API (host-key routes, PATCH /computers) on the same database, knowing the store computers here use.
    api = await ApiFixture.start(db, { stores: [{ name: STORE, type: 'ssh', url: `ssh://${host.address}:${host.port}`, organizations: null, groups: ['admins'], allowedContainers: null }] });
  }, 120_000);

  afterAll(async () => {
    await door?.close();
    await api?.close();
    await rig?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('browser terminal: an unpinned computer is refused before provisioning: no session, no account, nothing sent to the host; audited', async () => {
    const alice = await person('alice');
    const pc = await computer({});
    const logBefore = sshdLog().length;
    const term = terminal(alice.principal, pc);
    const closed = await term.waitClosed();
    expect(closed.code).toBe(4011);
    const err = term.messages.find((m) => m.type === 'error');
    expect(err?.code).toBe('JIT_ERR_SSH_HOST_KEY_NOT_PINNED');
    expect(String(err?.message)).toBe(
      `the host key of ${pc.name} is not pinned yet: an admin must confirm it under Computers → ${pc.name} → Host key, or run \`jitgate computers pin-host-key ${pc.name}\``,
    );
    expect(term.messages.some((m) => m.type === 'progress')).toBe(false);
    expect(await sessionsOn(pc)).toEqual([]);
    expect(await accountsOf(alice.principal.login)).toEqual([]);
    // The gateway did not even connect: the host's sshd saw nothing since.
    expect(sshdLog().slice(logBefore)).not.toMatch(/Connection from|password|Invalid user/);
    const audit = await auditOf(pc);
    expect(audit).toContainEqual(expect.objectContaining({ type: 'session.failed', outcome: 'failure', data: expect.objectContaining({ code: 'JIT_ERR_SSH_HOST_KEY_NOT_PINNED' }) }));
    expect(audit.map((a) => a.type)).not.toContain('session.host_key_recorded');
    // and nothing was pinned on the way
    expect((await fx.repo.getComputer(pc.id))!.policy.sshHostKeySha256).toBeUndefined();
  });

  it('front door: an unpinned computer is refused with the same words, before provisioning; audited', async () => {
    const bob = await person('bob');
    const pc = await computer({});
    const logBefore = sshdLog().length;
    const c = await frontDoorClient(door.port, `${bob.principal.login}+${pc.name}`, bob, totpNow(bob.totpSecret));
    try {
      const r = await execOver(c, 'id');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`the host key of ${pc.name} is not pinned yet: an admin must confirm it under Computers → ${pc.name} → Host key`);
      expect(r.stdout).toBe('');
    } finally {
      c.end();
    }
    expect(await sessionsOn(pc)).toEqual([]);
    expect(await accountsOf(bob.principal.login)).toEqual([]);
    expect(sshdLog().slice(logBefore)).not.toMatch(/Connection from|password|Invalid user/);
    expect(await auditOf(pc)).toContainEqual(
      expect.objectContaining({ type: 'session.failed', outcome: 'failure', data: expect.objectContaining({ code: 'JIT_ERR_SSH_HOST_KEY_NOT_PINNED', via: 'ssh-front-door' }) }),
    );
  });

  it('a wrong pin is refused before authentication (terminal and front door) and the account made meanwhile is torn down', async () => {
    const carol = await person('carol');
    const pc = await computer({ sshHostKeySha256: randomPin() });
    const term = terminal(carol.principal, pc);
    expect((await term.waitClosed()).code).toBe(4011);
    expect(term.messages.find((m) => m.type === 'error')?.code).toBe('JIT_ERR_SSH_HOST_KEY_MISMATCH');
    const c = await frontDoorClient(door.port, `${carol.principal.login}+${pc.name}`, carol, totpNow(carol.totpSecret));
    try {
      const r = await execOver(c, 'id');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('does not match the pinned fingerprint');
    } finally {
      c.end();
    }
    const rows = await sessionsOn(pc);
    expect(rows).toHaveLength(2);
    await waitUntil('both sessions to end', async () => (await sessionsOn(pc)).every((s) => s.state === 'ended'));
    expect(await accountsOf(carol.principal.login)).toEqual([]);
    // sshd never saw the accounts authenticate (no password sent, not even a user name).
    for (const s of rows) expect(sshdLog()).not.toContain(s.account_name!);
  });

  it('scan + confirm through the API pins the key; sessions then work; a wrong confirmation or a technician pins nothing', async () => {
    const dave = await person('dave');
    const pc = await computer({});
    const ga = await api.person('global_admin', null);
    const tech = await api.person('technician', pc.organizationId);
    const me = api.as(ga);

    const scan = await me.post(`/computers/${pc.id}/host-key/scan`);
    expect(scan.statusCode).toBe(200);
    expect(scan.json()).toMatchObject({ computer: pc.name, address: host.address, port: host.port, sha256: host.hostKeySha256, pinned: null, matchesPin: false });
    expect(scan.json().algorithm).toMatch(/^(ssh-ed25519|ecdsa-sha2-nistp256|rsa-sha2-512|ssh-rsa)$/);
    // the scan authenticated nothing
    expect(sshdLog()).not.toContain('jitgate-host-key-scan');

    expect((await api.as(tech).put(`/computers/${pc.id}/host-key`, { sha256: host.hostKeySha256 })).statusCode).toBe(403);
    expect((await api.as(tech).post(`/computers/${pc.id}/host-key/scan`)).statusCode).toBe(403);
    const wrong = await me.put(`/computers/${pc.id}/host-key`, { sha256: randomPin() });
    expect(wrong.statusCode).toBe(409);
    expect(wrong.json().code).toBe('JIT_ERR_SSH_HOST_KEY_NOT_CONFIRMED');
    expect((await me.put(`/computers/${pc.id}/host-key`, { sha256: 'not a fingerprint' })).statusCode).toBe(400);
    expect((await fx.repo.getComputer(pc.id))!.policy.sshHostKeySha256).toBeUndefined();

    const ok = await me.put(`/computers/${pc.id}/host-key`, { sha256: host.hostKeySha256 });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ pinned: host.hostKeySha256, matchesPin: true });
    expect((await fx.repo.getComputer(pc.id))!.policy.sshHostKeySha256).toBe(host.hostKeySha256);
    const audit = await auditOf(pc);
    expect(audit).toContainEqual(expect.objectContaining({ type: 'computer.host_key_pinned', outcome: 'failure' }));
    expect(audit).toContainEqual(expect.objectContaining({ type: 'computer.host_key_pinned', outcome: 'success', data: expect.objectContaining({ fingerprint: host.hostKeySha256 }) }));

    const term = terminal(dave.principal, pc);
    const ready = await term.waitForMessage('ready');
    expect(String(ready.account)).toMatch(new RegExp(`^${dave.principal.login}_`));
    term.close();
    await term.waitClosed();
    await waitUntil('the JIT account to be deleted', async () => (await accountsOf(dave.principal.login)).length === 0);
  });

  it('changing the address (API or import) drops the pin, audited; the next connection is refused; DELETE unpins', async () => {
    const erin = await person('erin');
    const pc = await computer({ sshHostKeySha256: host.hostKeySha256 });
    const ga = await api.person('global_admin', null);
    const me = api.as(ga);
    // The pin is not an editable field: only the host-key routes (which check the key) set it.
    const stated = await me.patch(`/computers/${pc.id}`, { policy: { sshHostKeySha256: randomPin() } });
    expect(stated.statusCode).toBe(400);
    expect(stated.json().details.fields).toHaveProperty(['policy.sshHostKeySha256']);
    // Saving the form unchanged (pin included) keeps it.
    expect((await me.patch(`/computers/${pc.id}`, { restricted: false, policy: { sshHostKeySha256: host.hostKeySha256 } })).statusCode).toBe(200);
    expect((await fx.repo.getComputer(pc.id))!.policy.sshHostKeySha256).toBe(host.hostKeySha256);

    const moved = await me.patch(`/computers/${pc.id}`, { address: '192.0.2.10', policy: { sshHostKeySha256: host.hostKeySha256 } });
    expect(moved.statusCode).toBe(200);
    expect(moved.json().policy.sshHostKeySha256).toBeUndefined();
    // Back at the old address: still unpinned until someone confirms again.
    expect((await me.patch(`/computers/${pc.id}`, { address: host.address })).statusCode).toBe(200);
    expect((await fx.repo.getComputer(pc.id))!.policy.sshHostKeySha256).toBeUndefined();
    expect(await auditOf(pc)).toContainEqual(
      expect.objectContaining({ type: 'computer.host_key_unpinned', data: expect.objectContaining({ previous: host.hostKeySha256, reason: 'address changed' }) }),
    );
    const term = terminal(erin.principal, pc);
    expect((await term.waitClosed()).code).toBe(4011);
    expect(term.messages.find((m) => m.type === 'error')?.code).toBe('JIT_ERR_SSH_HOST_KEY_NOT_PINNED');
    expect(await sessionsOn(pc)).toEqual([]);

    // A new SSH port drops it too.
    expect((await me.put(`/computers/${pc.id}/host-key`, { sha256: host.hostKeySha256 })).statusCode).toBe(200);
    expect((await me.patch(`/computers/${pc.id}`, { sshPort: 2222 })).json().policy.sshHostKeySha256).toBeUndefined();
    expect((await me.patch(`/computers/${pc.id}`, { sshPort: host.port })).statusCode).toBe(200);

    // Import: same rule, whatever the document says.
    expect((await me.put(`/computers/${pc.id}/host-key`, { sha256: host.hostKeySha256 })).statusCode).toBe(200);
    const org = (await db.query<{ name: string }>('SELECT name FROM organizations WHERE id = $1', [pc.organizationId]))[0]!.name;
    const row = (await fx.repo.getComputer(pc.id))!;
    const r = await applyInventory(db, {
      organizations: [],
      computers: [{
        organization: org, name: pc.name, address: '192.0.2.11', protocols: ['ssh'], sshPort: host.port, rdpPort: 3389, domainStore: STORE, localStore: STORE,
        jit: row.jit as never, policy: { sshHostKeySha256: host.hostKeySha256 }, restricted: false,
      }],
    });
    expect(r.unpinned).toEqual([expect.objectContaining({ id: pc.id, name: pc.name, previous: host.hostKeySha256 })]);
    expect((await fx.repo.getComputer(pc.id))!.policy.sshHostKeySha256).toBeUndefined();
    await db.query('UPDATE computers SET address = $2 WHERE id = $1', [pc.id, host.address]);

    // DELETE unpins (audited), and is refused to technicians.
    expect((await me.put(`/computers/${pc.id}/host-key`, { sha256: host.hostKeySha256 })).statusCode).toBe(200);
    const tech = await api.person('technician', pc.organizationId);
    expect((await api.as(tech).delete(`/computers/${pc.id}/host-key`)).statusCode).toBe(403);
    expect((await me.delete(`/computers/${pc.id}/host-key`)).statusCode).toBe(204);
    expect((await fx.repo.getComputer(pc.id))!.policy.sshHostKeySha256).toBeUndefined();
    expect(await auditOf(pc)).toContainEqual(expect.objectContaining({ type: 'computer.host_key_unpinned', data: expect.objectContaining({ reason: 'unpinned' }) }));
  });

  it('the Linux account store refuses a host whose key is not its hostKeySha256, before authenticating', async () => {
    const before = (sshdLog().match(/Accepted publickey/g) ?? []).length;
    const wrong = new SshAccountStore({
      host: host.address, port: host.port, username: host.adminUser, privateKey: host.adminPrivateKey, hostKeySha256: randomPin(),
      groups: { admins: 'sudo' }, logger: silentLogger(), timeoutMs: 10_000,
    });
    try {
      const err = await wrong.listManaged().then(() => null, (e: unknown) => e);
      expect(isJitgateError(err) && err.code).toBe('JIT_ERR_STORE_AUTH');
      expect(String((err as Error).message)).toContain('host key mismatch');
    } finally {
      await wrong.close();
    }
    expect((sshdLog().match(/Accepted publickey/g) ?? []).length).toBe(before);
    // And it cannot be built without a pin at all (no trust on first use here either).
    expect(() => new SshConnection({ host: host.address, username: 'root', privateKey: host.adminPrivateKey, hostKeySha256: '', logger: silentLogger() })).toThrow(/hostKeySha256/);
    // What the scan reports is what the store pins.
    expect((await scanHostKey({ host: host.address, port: host.port })).sha256).toBe(host.hostKeySha256);
  });
});
