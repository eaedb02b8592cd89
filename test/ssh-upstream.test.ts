/**
 * The gateway's connection to a computer, opened early (gateway/ssh/upstream.ts
 * preconnectUpstream): the handshake runs while the JIT account is still
 * being provisioned, and nothing names an account until `login`. Real sshd
 * test host (network namespace), real ssh2.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isJitgateError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { preconnectUpstream } from '../gateway/ssh/upstream.js';
import { sshHostAvailable, startSshHost, type SshHostHandle } from './harness/ssh-host.js';

const avail = sshHostAvailable();
const log = pino({ level: 'silent' });

function run(client: import('ssh2').Client, cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    client.exec(cmd, (err, ch) => {
      if (err) return reject(err);
      let out = '';
      ch.on('data', (d: Buffer) => (out += d.toString()));
      ch.stderr.resume();
      ch.on('close', () => resolve(out.trim()));
    });
  });
}

/** A loopback TCP relay to the host whose open connections the test can cut. */
class CuttableRelay {
  readonly server: Server;
  readonly sockets = new Set<Socket>();
  accepted = 0;
  constructor(host: string, port: number) {
    this.server = createServer((down) => {
      this.accepted++;
      const up = netConnect({ host, port });
      this.sockets.add(down).add(up);
      down.pipe(up).pipe(down);
      const drop = (): void => {
        down.destroy();
        up.destroy();
        this.sockets.delete(down);
        this.sockets.delete(up);
      };
      down.on('error', drop).on('close', drop);
      up.on('error', drop).on('close', drop);
    });
  }
  listen(): Promise<number> {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve((this.server.address() as { port: number }).port)));
  }
  cut(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe.skipIf(!avail.ok)(`early upstream connection${avail.ok ? '' : ` (skipped: ${avail.reason ?? ''})`}`, () => {
  let host: SshHostHandle;
  const user = `up_${randomBytes(3).toString('hex')}`;
  const password = new Secret(`Pw-${randomBytes(18).toString('base64url')}`);
  const sshdLog = (): string => readFileSync(host.log, 'utf8');

  beforeAll(async () => {
    host = await startSshHost();
    const r = await host.exec(`useradd -m -s /bin/sh ${user} && chpasswd -c SHA512`, { stdin: `${user}:${password.reveal()}\n` });
    expect(r.code, r.stderr).toBe(0);
  }, 60_000);
  afterAll(async () => host?.stop());

  it('finishes the handshake first, says nothing about the account until login, then logs in on that same connection', async () => {
    const pending = preconnectUpstream({ host: host.address, port: host.port, hostKeySha256: host.hostKeySha256, log });
    expect(await pending.waiting()).toBe(true);
    // The account does not even exist yet in real use: sshd must not have seen its name.
    expect(sshdLog()).not.toContain(user);
    const up = await pending.login(user, password);
    try {
      expect(up.hostKeySha256).toBe(host.hostKeySha256);
      expect(await run(up.client, 'id -un')).toBe(user);
      expect(sshdLog()).toMatch(new RegExp(`Accepted password for ${user} `));
    } finally {
      up.client.end();
    }
  });

  it('a host key that does not match the pin fails before any authentication, and login reports the mismatch', async () => {
    const wrong = `SHA256:${Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '')}`;
    const pending = preconnectUpstream({ host: host.address, port: host.port, hostKeySha256: wrong, log });
    expect(await pending.waiting()).toBe(false);
    const marker = `nobody_${randomBytes(3).toString('hex')}`;
    const err = await pending.login(marker, password).then(() => null, (e: unknown) => e);
    expect(isJitgateError(err) ? err.code : err).toBe('JIT_ERR_SSH_HOST_KEY_MISMATCH');
    expect(sshdLog()).not.toContain(marker);
  });

  it('when the early connection is lost while waiting (e.g. the computer LoginGraceTime), login reconnects and succeeds', async () => {
    const relay = new CuttableRelay(host.address, host.port);
    const port = await relay.listen();
    try {
      const pending = preconnectUpstream({ host: '127.0.0.1', port, hostKeySha256: host.hostKeySha256, log });
      expect(await pending.waiting()).toBe(true);
      relay.cut();
      const up = await pending.login(user, password);
      try {
        expect(await run(up.client, 'id -un')).toBe(user);
        expect(relay.accepted).toBe(2);
      } finally {
        up.client.end();
      }
    } finally {
      await relay.close();
    }
  });

  it('a host that is not there fails once, without a second attempt, and abort is harmless', async () => {
    const relay = new CuttableRelay(host.address, host.port);
    const port = await relay.listen();
    await relay.close();
    const pending = preconnectUpstream({ host: '127.0.0.1', port, hostKeySha256: host.hostKeySha256, log, readyTimeoutMs: 5_000 });
    expect(await pending.waiting()).toBe(false);
    const err = await pending.login(user, password).then(() => null, (e: unknown) => e);
    expect(isJitgateError(err) ? err.code : err).toBe('JIT_ERR_SSH_HOST_UNREACHABLE');
    pending.abort();
  });

  it('abort drops the early connection and login afterwards fails instead of connecting', async () => {
    const relay = new CuttableRelay(host.address, host.port);
    const port = await relay.listen();
    try {
      const pending = preconnectUpstream({ host: '127.0.0.1', port, hostKeySha256: host.hostKeySha256, log });
      expect(await pending.waiting()).toBe(true);
      pending.abort();
      pending.abort();
      const err = await pending.login(user, password).then(() => null, (e: unknown) => e);
      expect(isJitgateError(err) ? err.code : err).toBe('JIT_ERR_SSH_HOST_UNREACHABLE');
      expect(relay.accepted).toBe(1);
    } finally {
      await relay.close();
    }
  });
});
