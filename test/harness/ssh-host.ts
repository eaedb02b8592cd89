/**
 * Disposable Linux SSH target hosts for integration tests (scripts/ssh-host.sh;
 * docs/ssh-test-hosts.md): a real sshd in its own network, mount and PID
 * namespaces, with a private copy of /etc, reachable from the test machine at
 * `address:22`. Accounts created there never touch the test machine.
 */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../scripts/ssh-host.sh', import.meta.url));

/** The fields of `<state-dir>/env.json` written by `scripts/ssh-host.sh up`. */
export interface SshHostEnv {
  readonly netns: string;
  /** Test machine's end of the veth pair. */
  readonly hostAddress: string;
  /** The sshd's address (inside the namespace). */
  readonly address: string;
  readonly port: number;
  /** OpenSSH public key line of the host key. */
  readonly hostKeyPublic: string;
  /** `SHA256:...` fingerprint of the host key, for pinning. */
  readonly hostKeySha256: string;
  readonly adminUser: string;
  /** Private key (ed25519, OpenSSH format) authorized for `adminUser`. */
  readonly adminKeyPath: string;
  /** PID (as seen from the test machine) of the host's PID-namespace init. */
  readonly pid: number;
  readonly stateDir: string;
  /** sshd's log (-e) and the init's output. */
  readonly log: string;
}

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number | null;
}

export interface SshHostHandle extends SshHostEnv {
  /** Contents of `adminKeyPath`. */
  readonly adminPrivateKey: Buffer;
  /** Run `sh -c cmd` as root inside the host (nsenter into its namespaces), independent of sshd. */
  exec(cmd: string, opts?: { stdin?: string; timeoutMs?: number }): Promise<ExecResult>;
  /** Kill everything in the host and remove its namespace and state dir; idempotent. */
  stop(): Promise<void>;
}

function onPath(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      // next
    }
  }
  return false;
}

/** Whether this machine can run SSH test hosts; `reason` says why not (for `describe.skipIf`). */
export function sshHostAvailable(): { ok: boolean; reason?: string } {
  if (process.platform !== 'linux') return { ok: false, reason: 'ssh test hosts need Linux namespaces' };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'ssh test hosts need root (network namespaces, mounts)' };
  try {
    accessSync('/usr/sbin/sshd', constants.X_OK);
  } catch {
    return { ok: false, reason: '/usr/sbin/sshd not installed (apt-get install openssh-server; see scripts/deps/ssh.txt)' };
  }
  for (const cmd of ['unshare', 'nsenter', 'ip', 'ssh-keygen']) {
    if (!onPath(cmd)) return { ok: false, reason: `${cmd} not found (see scripts/deps/ssh.txt)` };
  }
  return { ok: true };
}

interface Run {
  stdout: string;
  stderr: string;
  code: number | null;
}

function run(cmd: string, args: string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), code });
    });
    // A command that exits without reading its input (nsenter on a host that is
    // already gone) closes the pipe: EPIPE is its answer, not an uncaught error.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.stdin ?? '');
  });
}

/** State dirs of hosts this process started and has not stopped (stopped on exit as a last resort). */
const live = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const dir of live) spawnSync('bash', [SCRIPT, 'down', dir], { stdio: 'ignore' });
  });
}

/** Start one SSH test host (~0.1–0.3 s on an idle machine). Call `stop()` in `afterAll`/`finally`. */
export async function startSshHost(): Promise<SshHostHandle> {
  const avail = sshHostAvailable();
  if (!avail.ok) throw new Error(`ssh test hosts unavailable: ${avail.reason ?? ''}`);
  return startHostWith<SshHostEnv>(SCRIPT);
}

/**
 * Start a host with `script up <state-dir>` (scripts/ssh-host.sh or a script
 * that wraps it, such as scripts/xrdp-host.sh, whose env.json adds fields).
 * `down` always goes through scripts/ssh-host.sh, which removes any such host.
 */
export async function startHostWith<E extends SshHostEnv>(script: string): Promise<Omit<SshHostHandle, keyof SshHostEnv> & E> {
  installExitHook();
  const stateDir = mkdtempSync(join(tmpdir(), 'jgt-ssh-'));
  live.add(stateDir);
  const up = await run('bash', [script, 'up', stateDir], { timeoutMs: 60_000 });
  if (up.code !== 0) {
    await run('bash', [SCRIPT, 'down', stateDir]).catch(() => undefined);
    live.delete(stateDir);
    throw new Error(`${script} up failed (exit ${String(up.code)}): ${up.stderr.trim()}`);
  }
  const env = JSON.parse(readFileSync(join(stateDir, 'env.json'), 'utf8')) as E;
  const adminPrivateKey = readFileSync(env.adminKeyPath);
  let stopped: Promise<void> | null = null;

  return {
    ...env,
    adminPrivateKey,
    exec: async (cmd, opts = {}) => {
      // -m -u -i -n -p: the host's mount (private /etc), UTS, IPC, net and PID namespaces.
      const r = await run('nsenter', ['-t', String(env.pid), '-m', '-u', '-i', '-n', '-p', '--', '/bin/sh', '-c', cmd], opts);
      return { stdout: r.stdout, stderr: r.stderr, code: r.code };
    },
    stop: () => {
      stopped ??= run('bash', [SCRIPT, 'down', stateDir]).then((r) => {
        live.delete(stateDir);
        if (r.code !== 0) throw new Error(`scripts/ssh-host.sh down failed: ${r.stderr.trim()}`);
      });
      return stopped;
    },
  };
}
