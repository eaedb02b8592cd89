/**
 * SshConnection's pooled connection against a real sshd test host
 * (scripts/ssh-host.sh) when the connection dies under it (issue 18): a dead
 * pooled connection is replaced and the command runs once on a fresh one; a
 * command that had started is never run a second time; a reply that arrived
 * while this process was not running (stopped, event loop blocked) is read,
 * not mistaken for a timeout.
 */
import { spawnSync } from 'node:child_process';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isJitgateError } from '../core/errors.js';
import { SshConnection } from '../provisioner/stores/ssh-connection.js';
import { sshHostAvailable, startSshHost, type SshHostHandle } from './harness/ssh-host.js';

const avail = sshHostAvailable();
const logger = pino({ level: 'silent' });

describe.skipIf(!avail.ok)(`SshConnection reconnects on an sshd test host${avail.ok ? '' : ` (skipped: ${avail.reason ?? ''})`}`, () => {
  let host: SshHostHandle;
  const conns: SshConnection[] = [];

  beforeAll(async () => {
    host = await startSshHost();
  });
  afterAll(async () => {
    await Promise.all(conns.map((c) => c.close()));
    await host?.stop();
  });

  function connection(timeoutMs = 20_000): SshConnection {
    const c = new SshConnection({ host: host.address, port: host.port, username: host.adminUser, privateKey: host.adminPrivateKey, hostKeySha256: host.hostKeySha256, logger, timeoutMs });
    conns.push(c);
    return c;
  }

  /** Synchronously (this process's event loop does not run meanwhile) kill the sshd processes serving root's connections. */
  function killSessionsBlocking(): void {
    const r = spawnSync('nsenter', ['-t', String(host.pid), '-m', '-u', '-i', '-n', '-p', '--', '/bin/sh', '-c', "pkill -f 'sshd: root@nott[y]' && sleep 1.5"], { timeout: 20_000 });
    expect(r.status).toBe(0);
  }

  /** How many lines `file` on the host has (0 when missing). */
  async function lines(file: string): Promise<number> {
    const r = await host.exec(`cat ${file} 2>/dev/null | wc -l`);
    return Number(r.stdout.trim());
  }

  it('a pooled connection that died while nobody looked is replaced: the next command runs once, at the first try', async () => {
    const conn = connection();
    expect((await conn.exec('echo first')).stdout).toBe('first\n');
    // The server side goes away while this process cannot notice (its event loop is blocked), as after SIGCONT.
    killSessionsBlocking();
    const file = `/run/jgt-once-${process.pid}-a`;
    const r = await conn.exec(`echo ran >> ${file}; echo second`);
    expect(r).toMatchObject({ code: 0, stdout: 'second\n' });
    expect(await lines(file)).toBe(1);
  });

  it('a command that had started is not run again when its connection is lost', async () => {
    const conn = connection();
    const file = `/run/jgt-once-${process.pid}-b`;
    const running = conn.exec(`echo ran >> ${file}; sleep 30`).then(() => 'ok', (err: unknown) => (isJitgateError(err) ? err.code : String(err)));
    await expect.poll(() => lines(file), { timeout: 20_000, interval: 100 }).toBe(1);
    await host.exec("pkill -f 'sshd: root@nott[y]'; true");
    expect(await running).toBe('JIT_ERR_STORE_UNREACHABLE');
    // Give a (wrong) retry every chance to show up.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await lines(file)).toBe(1);
    // And the connection is usable again for the next command.
    expect((await conn.exec('echo next')).stdout).toBe('next\n');
  });

  it('a reply that arrived while the event loop was blocked past the timeout is read, not taken for a timeout', async () => {
    const conn = connection(5000);
    const file = `/run/jgt-once-${process.pid}-c`;
    const pending = conn.exec(`echo ran >> ${file}; sleep 1; echo done`);
    // The command is running (its timeout armed); now block this process for twice the timeout while the
    // reply comes in, as a SIGSTOP would.
    await expect.poll(() => lines(file), { timeout: 4000, interval: 50 }).toBe(1);
    spawnSync('sleep', ['10']);
    expect(await pending).toMatchObject({ code: 0, stdout: 'done\n' });
    expect(await lines(file)).toBe(1);
  });

  it('a command that really hangs still times out', async () => {
    const conn = connection(1500);
    const started = Date.now();
    const code = await conn.exec('sleep 20').then(() => 'ok', (err: unknown) => (isJitgateError(err) ? err.code : String(err)));
    expect(code).toBe('JIT_ERR_STORE_UNREACHABLE');
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
