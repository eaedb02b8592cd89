import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The local demo target of `jitgate demo`: an SSH host in a network
 * namespace, started and removed by the project's own script
 * (scripts/ssh-host.sh, docs/ssh-test-hosts.md). Accounts created on it
 * never touch this machine's own /etc.
 */
const SCRIPT = fileURLToPath(new URL(existsHere('../scripts/ssh-host.sh') ? '../scripts/ssh-host.sh' : '../../scripts/ssh-host.sh', import.meta.url));

function existsHere(rel: string): boolean {
  try {
    accessSync(new URL(rel, import.meta.url));
    return true;
  } catch {
    return false;
  }
}

export interface DemoHost {
  address: string;
  port: number;
  adminUser: string;
  adminKeyPath: string;
  hostKeySha256: string;
  stateDir: string;
  stop(): Promise<void>;
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter).some((d) => {
    try {
      accessSync(join(d, cmd), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Why the demo target cannot run here (null when it can), with what to do instead. */
export function demoUnavailable(): string | null {
  if (process.platform !== 'linux') return 'the demo target needs Linux network namespaces';
  if (process.getuid?.() !== 0) {
    return 'the demo target needs root (it creates a network namespace with its own sshd). Run `sudo jitgate demo`, or run `jitgate serve` and add your own computer';
  }
  try {
    accessSync('/usr/sbin/sshd', constants.X_OK);
  } catch {
    return '/usr/sbin/sshd is missing: apt-get install -y openssh-server openssh-client (see scripts/deps/ssh.txt), or run `bash scripts/install-system-deps.sh`';
  }
  for (const cmd of ['unshare', 'nsenter', 'ip', 'ssh-keygen']) {
    if (!onPath(cmd)) return `${cmd} is missing (apt-get install -y iproute2 util-linux openssh-client)`;
  }
  return null;
}

export async function startDemoHost(dataDir: string): Promise<DemoHost> {
  const stateDir = join(dataDir, 'demo-host');
  mkdirSync(dataDir, { recursive: true });
  spawnSync('bash', [SCRIPT, 'down', stateDir], { stdio: 'ignore' });
  await new Promise<void>((resolve, reject) => {
    const child = spawn('bash', [SCRIPT, 'up', stateDir], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`scripts/ssh-host.sh up failed (exit ${String(code)}): ${err.trim()}`))));
  });
  const env = JSON.parse(readFileSync(join(stateDir, 'env.json'), 'utf8')) as Omit<DemoHost, 'stop' | 'stateDir'> & { pid: number };
  allowPasswordlessSudo(env.pid);
  // Removed even on an unexpected exit.
  const onExit = () => spawnSync('bash', [SCRIPT, 'down', stateDir], { stdio: 'ignore' });
  process.once('exit', onExit);
  return {
    address: env.address,
    port: env.port,
    adminUser: env.adminUser,
    adminKeyPath: env.adminKeyPath,
    hostKeySha256: env.hostKeySha256,
    stateDir,
    async stop() {
      process.removeListener('exit', onExit);
      spawnSync('bash', [SCRIPT, 'down', stateDir], { stdio: 'ignore' });
    },
  };
}

/**
 * JIT accounts never learn their password, so `sudo` must not ask for one:
 * on the demo computer (inside its namespace, its own copy of /etc) the
 * `sudo` group may use sudo without a password — what an admin configures on
 * real targets for the JIT admin group (docs/ssh.md). Skipped without sudo.
 */
function allowPasswordlessSudo(pid: number): void {
  try {
    accessSync('/usr/bin/sudo', constants.X_OK);
  } catch {
    return;
  }
  spawnSync('nsenter', ['-t', String(pid), '-m', '-u', '-i', '-n', '-p', '--', 'sh', '-c',
    "mkdir -p /etc/sudoers.d && printf '%%sudo ALL=(ALL:ALL) NOPASSWD: ALL\\n' > /etc/sudoers.d/jitgate-demo && chmod 0440 /etc/sudoers.d/jitgate-demo"], { stdio: 'ignore' });
}
