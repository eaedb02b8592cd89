import { createServer } from 'node:net';

/**
 * Whether something already listens on host:port. The demo checks its ports
 * before spending a minute starting demo computers, instead of failing at the
 * end with EADDRINUSE. (A port can still be taken between the check and the
 * listen; the gateway then fails as before.)
 */
export function portTaken(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE' || err.code === 'EACCES'));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(false)));
  });
}

/** The demo's refusal in words, with the flag to pick another port; null when both ports are free. */
export async function demoPortProblem(host: string, ports: { port: number; sshPort: number }): Promise<string | null> {
  if (await portTaken(host, ports.port)) {
    return `port ${ports.port} on ${host} is already in use: pick another web port with --port (npm run demo -- --port ${ports.port === 8080 ? 8081 : ports.port + 1})`;
  }
  if (await portTaken(host, ports.sshPort)) {
    return `port ${ports.sshPort} on ${host} (the SSH front door) is already in use: pick another with --ssh-port (npm run demo -- --ssh-port ${ports.sshPort + 1})`;
  }
  return null;
}
