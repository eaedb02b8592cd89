/**
 * When SshConnection retries a command, at the SSH message level (issue 18): an
 * ssh2 server on loopback (a real SSH protocol peer) refuses the session channel,
 * refuses the exec request, or drops the connection right after the exec request
 * arrived. Only the first is safe to retry (the command never reached the server);
 * in the other two the command may have run, so it must be sent exactly once.
 */
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import ssh2, { type Connection } from 'ssh2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isJitgateError } from '../core/errors.js';
import { SshConnection, sshFingerprintSha256 } from '../provisioner/stores/ssh-connection.js';
import { generateParsableEd25519 } from '../gateway/ssh/front-door-host-key.js';

const { Server, utils } = ssh2;
const logger = pino({ level: 'silent' });

/** What the server does with the n-th connection's session channel (n from 1). */
type Behaviour = (n: number, client: Connection) => void;

describe('SshConnection retries only what never reached the server', () => {
  const hostKey = generateParsableEd25519();
  const parsed = utils.parseKey(hostKey.public);
  if (parsed instanceof Error) throw parsed;
  const hostKeySha256 = sshFingerprintSha256(parsed.getPublicSSH());
  const clientKey = generateParsableEd25519();

  let behaviour: Behaviour = () => undefined;
  let connections = 0;
  let execRequests = 0;
  const server = new Server({ hostKeys: [hostKey.private] }, (client) => {
    const n = ++connections;
    client.on('error', () => undefined);
    client.on('authentication', (ctx) => ctx.accept());
    client.on('ready', () => behaviour(n, client));
  });
  let port = 0;
  const conns: SshConnection[] = [];

  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterEach(async () => {
    await Promise.all(conns.splice(0).map((c) => c.close()));
    connections = 0;
    execRequests = 0;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  function connection(): SshConnection {
    const c = new SshConnection({ host: '127.0.0.1', port, username: 'jit', privateKey: clientKey.private, hostKeySha256, logger, timeoutMs: 10_000 });
    conns.push(c);
    return c;
  }

  /** Accept the session channel; `onExec` answers the exec request. */
  function acceptSession(client: Connection, onExec: (accept: () => ssh2.ServerChannel, reject: () => void) => void): void {
    client.on('session', (acceptSession) => {
      const session = acceptSession();
      session.on('exec', (accept, reject) => {
        execRequests++;
        onExec(accept, reject);
      });
    });
  }

  /** Run the command, exit 0 with `out` on stdout. */
  function answer(out: string) {
    return (accept: () => ssh2.ServerChannel): void => {
      const ch = accept();
      ch.write(out);
      ch.exit(0);
      ch.end();
    };
  }

  async function outcome(p: Promise<{ stdout: string }>): Promise<string> {
    return p.then((r) => r.stdout, (err: unknown) => (isJitgateError(err) ? err.code : String(err)));
  }

  it('a session channel the server refuses is opened again on a new connection, and the command runs once', async () => {
    behaviour = (n, client) => {
      if (n === 1) client.on('session', (_accept, reject) => reject());
      else acceptSession(client, answer('ran'));
    };
    expect(await outcome(connection().exec('true'))).toBe('ran');
    expect({ connections, execRequests }).toEqual({ connections: 2, execRequests: 1 });
  });

  it('an exec request the server refuses is not sent again', async () => {
    behaviour = (_n, client) => acceptSession(client, (_accept, reject) => reject());
    expect(await outcome(connection().exec('true'))).toBe('JIT_ERR_STORE_UNREACHABLE');
    expect(execRequests).toBe(1);
  });

  it('a connection lost after the exec request arrived is not taken for a channel that never opened', async () => {
    behaviour = (_n, client) => acceptSession(client, () => client.end());
    expect(await outcome(connection().exec('true'))).toBe('JIT_ERR_STORE_UNREACHABLE');
    expect(execRequests).toBe(1);
  });

  it('after such a failure the next command gets a working connection', async () => {
    behaviour = (n, client) => acceptSession(client, n === 1 ? () => client.end() : answer('next'));
    const conn = connection();
    expect(await outcome(conn.exec('true'))).toBe('JIT_ERR_STORE_UNREACHABLE');
    expect(await outcome(conn.exec('true'))).toBe('next');
    expect(execRequests).toBe(2);
  });
});
