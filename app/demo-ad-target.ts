import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The domain half of `jitgate demo` (docs/demo.md): a throw-away Samba AD DC
 * that is also an SSH host whose Linux users are the domain's users (winbind),
 * in one network namespace with a private /etc, started and removed by
 * scripts/demo-ad-host.sh. JIT accounts for the `demo-domain` computer are
 * real AD accounts created over LDAPS by the `demo-ad` LDAP account store.
 */
const SCRIPT = fileURLToPath(new URL(existsHere('../scripts/demo-ad-host.sh') ? '../scripts/demo-ad-host.sh' : '../../scripts/demo-ad-host.sh', import.meta.url));

function existsHere(rel: string): boolean {
  try {
    accessSync(new URL(rel, import.meta.url));
    return true;
  } catch {
    return false;
  }
}

/** What `scripts/demo-ad-host.sh up` writes to `<state-dir>/env.json`. */
export interface DemoDomainEnv {
  netns: string;
  /** The DC's (and the SSH host's) address inside the namespace. */
  dcAddress: string;
  /** `ldaps://<dc>:636` */
  url: string;
  /** PEM file of the per-run CA that signed the DC certificate. */
  caCertPath: string;
  baseDn: string;
  /** OU the JIT accounts are created in. */
  jitOu: string;
  /** Service account the LDAP store binds as, and a file holding its password. */
  bindDn: string;
  bindPasswordPath: string;
  /** Group name → DN (`JIT Admins`, `Helpdesk`). */
  adminGroupDns: Record<string, string>;
  /** NetBIOS domain (`JITTEST`): on a DC winbind names users `JITTEST\name`. */
  domain: string;
  upnSuffix: string;
  sshAddress: string;
  sshPort: number;
  hostKeySha256: string;
  /** Root on the same host, with this key only: the local store that logs JIT domain accounts off. */
  adminUser: string;
  adminKeyPath: string;
  /** PID-namespace init of the host (nsenter -t <initPid> -m -p … getent passwd). */
  initPid: number;
  stateDir: string;
}

export interface DemoDomainHost extends DemoDomainEnv {
  stop(): Promise<void>;
}

/** The admin group of the demo domain computer (an AD group; sudoers names it where sudo is installed). */
export const DEMO_DOMAIN_ADMIN_GROUP = 'JIT Admins';

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter).concat('/usr/sbin').some((d) => {
    try {
      accessSync(join(d, cmd), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Why the demo domain computer cannot run here (null when it can), with what
 * to do instead. Assumes demoUnavailable() (root, sshd, namespaces) passed.
 */
export function demoDomainUnavailable(): string | null {
  for (const cmd of ['samba', 'samba-tool', 'winbindd']) {
    if (!onPath(cmd)) return `no ${cmd}: demo-domain skipped (apt-get install samba samba-ad-provision samba-dsdb-modules winbind, see scripts/deps/samba.txt)`;
  }
  try {
    accessSync('/usr/share/samba/setup', constants.R_OK);
  } catch {
    return 'no samba-ad-provision: demo-domain skipped (apt-get install samba-ad-provision)';
  }
  for (const cmd of ['openssl', 'flock', 'setsid', 'dpkg-deb', 'dpkg-query', 'getent']) {
    if (!onPath(cmd)) return `no ${cmd}: demo-domain skipped (see scripts/deps/samba.txt)`;
  }
  return null;
}

/**
 * Starts the DC + SSH host under `<dataDir>/demo-domain` (~5 s from the cached
 * domain snapshot; the first run provisions it, and fetches the winbind NSS/PAM
 * modules with `apt-get download`). Rejects with the script's reason when it
 * cannot (offline: the modules could not be fetched); removed on process exit.
 */
export async function startDemoDomainHost(dataDir: string): Promise<DemoDomainHost> {
  const stateDir = join(dataDir, 'demo-domain');
  mkdirSync(dataDir, { recursive: true });
  spawnSync('bash', [SCRIPT, 'down', stateDir], { stdio: 'ignore' });
  await new Promise<void>((resolve, reject) => {
    const child = spawn('bash', [SCRIPT, 'up', stateDir], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) return resolve();
      const why = code === 3 ? 'the winbind NSS/PAM modules could not be fetched (offline?)' : `scripts/demo-ad-host.sh up failed (exit ${String(code)})`;
      reject(new Error(`${why}: ${err.trim().split('\n').slice(-5).join(' | ')}`));
    });
  });
  const env = JSON.parse(readFileSync(join(stateDir, 'env.json'), 'utf8')) as DemoDomainEnv;
  const down = () => spawnSync('bash', [SCRIPT, 'down', stateDir], { stdio: 'ignore' });
  // Removed even on an unexpected exit.
  process.once('exit', down);
  return {
    netns: env.netns, dcAddress: env.dcAddress, url: env.url, caCertPath: env.caCertPath, baseDn: env.baseDn, jitOu: env.jitOu,
    bindDn: env.bindDn, bindPasswordPath: env.bindPasswordPath, adminGroupDns: env.adminGroupDns, domain: env.domain,
    upnSuffix: env.upnSuffix, sshAddress: env.sshAddress, sshPort: env.sshPort, hostKeySha256: env.hostKeySha256,
    adminUser: env.adminUser, adminKeyPath: env.adminKeyPath, initPid: env.initPid, stateDir,
    async stop() {
      process.removeListener('exit', down);
      down();
    },
  };
}

/** The `demo-ad` LDAP account store for a started host (an `accountStores[]` entry). */
export function demoDomainStoreConfig(host: DemoDomainEnv, name = 'demo-ad'): Record<string, unknown> {
  return {
    name, type: 'ldap', url: host.url, caCert: `file:${host.caCertPath}`, bindDn: host.bindDn, bindPassword: `file:${host.bindPasswordPath}`,
    baseDn: host.baseDn, accountsContainer: host.jitOu, groups: host.adminGroupDns, upnSuffix: host.upnSuffix, domain: host.domain,
  };
}

/**
 * The host's own `ssh` account store (root with the demo's key, host key
 * pinned). The demo computer keeps `accountType: domain`, so this store never
 * creates accounts: the engine uses a domain computer's local store only to
 * log the JIT domain account off (kill its processes) before its rights go.
 * No `winbindDomain`: winbind on the DC resolves the plain name too
 * (`getent passwd name` answers with `JITTEST\name`), so the plain name
 * reaches the account's uid.
 */
export function demoDomainLocalStoreConfig(host: DemoDomainEnv, name = 'demo-domain-local'): Record<string, unknown> {
  return {
    name, type: 'ssh', host: host.sshAddress, port: host.sshPort, username: host.adminUser,
    privateKey: `file:${host.adminKeyPath}`, hostKeySha256: host.hostKeySha256, groups: {},
  };
}

/**
 * The `demo-domain` computer (an inventory `computers[]` entry): JIT domain accounts in JIT Admins, deleted at
 * check-in; `localStore` (demoDomainLocalStoreConfig) logs them off first.
 */
export function demoDomainComputer(host: DemoDomainEnv, organization: string, store = 'demo-ad', localStore: string | null = null): Record<string, unknown> {
  return {
    organization, name: 'demo-domain', address: host.sshAddress, sshPort: host.sshPort, protocols: ['ssh'], domainStore: store, localStore,
    jit: { enabled: true, deleteOnCheckIn: true, accountMode: 'named', accountType: 'domain', adminGroups: [DEMO_DOMAIN_ADMIN_GROUP], maxSessionMinutes: 60 },
    policy: { sshHostKeySha256: host.hostKeySha256 },
  };
}
