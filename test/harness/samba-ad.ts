/**
 * A real Samba AD DC for integration tests, started by scripts/samba-ad.sh
 * inside its own network namespace. See docs/samba-ad-harness.md.
 *
 * ```ts
 * const avail = sambaAdAvailable();
 * describe.skipIf(!avail.ok)(`ldap store (${avail.reason ?? 'Samba AD'})`, () => {
 *   let ad: SambaAdHandle;
 *   beforeAll(async () => { ad = await startSambaAd(); });
 *   afterAll(async () => { await ad?.stop(); });
 * });
 * ```
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), '../../scripts/samba-ad.sh');

/** What `scripts/samba-ad.sh up` writes to `<state-dir>/env.json`. */
export interface SambaAdEnv {
  /** Network namespace the DC runs in (`jgt-ad-*`). */
  readonly netns: string;
  /** Host side of the veth pair (tests connect from here). */
  readonly hostAddress: string;
  /** The DC's address inside the namespace. */
  readonly dcAddress: string;
  /** `ldaps://<dc>:636` */
  readonly url: string;
  /** `ldap://<dc>:389` (use with StartTLS). */
  readonly startTlsUrl: string;
  /** PEM of the per-run EC CA that signed the DC certificate (SAN: IP + dc1.jittest.lan). */
  readonly caCertPath: string;
  readonly baseDn: string;
  readonly usersContainer: string;
  /** OU for accounts created by tests: `OU=JIT,DC=jittest,DC=lan`. */
  readonly jitOu: string;
  /** Service account (member of Domain Admins). */
  readonly bindDn: string;
  readonly bindPassword: string;
  /** Built-in Administrator, for seeding accounts jitgate does not manage. */
  readonly adminDn: string;
  readonly adminPassword: string;
  /** Configured group name → DN: `JIT Admins`, `Helpdesk`. */
  readonly adminGroupDns: Readonly<Record<string, string>>;
  readonly realm: string;
  /** UPN suffix (`jittest.lan`). */
  readonly upnSuffix: string;
  readonly pid: number;
  readonly stateDir: string;
}

export interface SambaAdHandle extends SambaAdEnv {
  /** The CA certificate (PEM) for `caCert` / `tlsOptions.ca`. */
  readonly caCert: string;
  /** Kills samba, deletes the namespace and the state directory. Idempotent. */
  stop(): Promise<void>;
}

function runScript(args: string[], timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    execFile('bash', [SCRIPT, ...args], { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`scripts/samba-ad.sh ${args[0] ?? ''} failed: ${err.message}\n${stderr}`, { cause: err }));
        return;
      }
      resolvePromise({ stdout, stderr });
    });
  });
}

/** Whether this machine can run the harness; `reason` says why not. */
export function sambaAdAvailable(): { ok: boolean; reason?: string } {
  if (process.platform !== 'linux') return { ok: false, reason: 'Samba AD harness needs Linux' };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { ok: false, reason: 'Samba AD harness needs root (network namespaces)' };
  }
  for (const bin of ['samba', 'samba-tool', 'ip', 'openssl', 'setsid', 'flock']) {
    const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
    if (r.status !== 0) {
      return { ok: false, reason: `Samba AD harness needs \`${bin}\` (apt packages in scripts/deps/samba.txt)` };
    }
  }
  if (!existsSync('/usr/share/samba/setup')) {
    return { ok: false, reason: 'Samba AD harness needs samba-ad-provision (scripts/deps/samba.txt)' };
  }
  return { ok: true };
}

/** Start a fresh DC (~1.5 s from the cached snapshot, ~10 s on the first run). */
export async function startSambaAd(): Promise<SambaAdHandle> {
  const stateDir = await mkdtemp(join(tmpdir(), 'jgt-ad-'));
  const stop = async (): Promise<void> => {
    await runScript(['down', stateDir], 60_000);
  };
  try {
    await runScript(['up', stateDir], 180_000);
    const env = JSON.parse(await readFile(join(stateDir, 'env.json'), 'utf8')) as SambaAdEnv;
    const caCert = await readFile(env.caCertPath, 'utf8');
    let stopped: Promise<void> | undefined;
    return { ...env, caCert, stop: () => (stopped ??= stop()) };
  } catch (err) {
    // `up` tears down after itself, but a killed script would not.
    await stop().catch(() => undefined);
    throw err;
  }
}

/** Remove every `jgt-ad-*` namespace and its processes (global teardown). */
export async function cleanupAllSambaAd(): Promise<void> {
  await runScript(['cleanup-all'], 60_000);
}
