/**
 * SshConnection's idle probe on a real sshd test host (issue 18): when the
 * probe of an idle pooled connection fails, new commands go to a fresh
 * connection, but commands already running on the old one are not cut off by
 * it; they finish (or time out) on their own.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshConnection } from '../provisioner/stores/ssh-connection.js';
import { sshHostAvailable, startSshHost, type SshHostHandle } from './harness/ssh-host.js';

const avail = sshHostAvailable();
const logger = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!avail.ok)(`SshConnection idle probe on an sshd test host${avail.ok ? '' : ` (skipped: ${avail.reason ?? ''})`}`, () => {
  let host: SshHostHandle;
  let conn: SshConnection;

  beforeAll(async () => {
    host = await startSshHost();
  });
  afterAll(async () => {
    await host?.exec("pkill -CONT -f 'sshd: root@nott[y]'; true");
    await conn?.close();
    await host?.stop();
  });

  it('a failed probe does not end a command still running on the probed connection', async () => {
    conn = new SshConnection({ host: host.address, port: host.port, username: host.adminUser, privateKey: host.adminPrivateKey, hostKeySha256: host.hostKeySha256, logger, timeoutMs: 30_000 });
    const file = `/run/jgt-probe-${process.pid}`;
    const running = conn.exec(`echo ran >> ${file}; sleep 2; echo done`).then((r) => r.stdout, (err: unknown) => `failed: ${String(err)}`);
    await expect.poll(async () => (await host.exec(`cat ${file} 2>/dev/null`)).stdout, { timeout: 10_000, interval: 50 }).toBe('ran\n');
    await sleep(1200);
    // The connection's server side stops answering (its sshd is stopped): the next command's probe fails after 5 s.
    expect((await host.exec("pkill -STOP -f 'sshd: root@nott[y]'")).code).toBe(0);
    const next = conn.exec('echo next').then((r) => r.stdout, (err: unknown) => `failed: ${String(err)}`);
    // The new command ran on a fresh connection.
    expect(await next).toBe('next\n');
    // The server side resumes: the command that was running on the old connection reports its outcome.
    expect((await host.exec("pkill -CONT -f 'sshd: root@nott[y]'")).code).toBe(0);
    expect(await running).toBe('done\n');
  }, 40_000);
});
