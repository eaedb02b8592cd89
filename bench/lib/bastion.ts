/**
 * The OpenSSH bastion jitgate's relay is compared with: a second sshd inside
 * an sshd test host (test/harness/ssh-host.ts), whose ForceCommand runs
 * `ssh target "$SSH_ORIGINAL_COMMAND"` to the host's own sshd, so the bytes are
 * decrypted and re-encrypted in C, as in a classic jump host. Both legs use
 * aes128-gcm@openssh.com, the cipher ssh2 (the gateway) negotiates on both of
 * its legs here.
 *
 * The bastion's CPU time is its cgroup's: the listening sshd is started inside
 * a cpuacct cgroup of its own (cgroup v1 `cpuacct.usage`, or cgroup v2
 * `cpu.stat` usage_usec), which every per-connection process it forks
 * (sshd-session's monitor and its user child, the shell, the `ssh` client
 * that does the relaying) inherits and which keeps counting after they exit.
 *
 * An earlier version read the listener's utime+stime+cutime+cstime, assuming
 * every process is reaped up the tree into it. It is not: the relaying
 * processes' time never arrives there (a 128 MiB download through it cost
 * 0.24 CPU-s, a 0-byte one 0.22 CPU-s, i.e. 0.16 CPU-s per GiB relayed — less
 * than AES-GCM alone costs): the figures printed with it were per-connection
 * setup, not relaying.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SshHostHandle } from '../../test/harness/ssh-host.js';

export interface Bastion {
  address: string;
  port: number;
  username: string;
  password: string;
  /** CPU seconds the bastion spent so far: all its processes, from its cgroup (waits until every connection's processes exited). */
  cpuSeconds(): Promise<number>;
  stop(): Promise<void>;
}

const CIPHER = 'aes128-gcm@openssh.com';

/** A fresh CPU-accounting cgroup (v1 cpuacct or v2), as seen from outside the host's namespaces, and how to read it. */
function makeCgroup(): { dir: string; usageSeconds(): number } {
  const name = `jgt-bastion-${randomBytes(4).toString('hex')}`;
  const v1 = '/sys/fs/cgroup/cpuacct';
  if (existsSync(join(v1, 'cpuacct.usage'))) {
    const dir = join(v1, name);
    mkdirSync(dir);
    return { dir, usageSeconds: () => Number(readFileSync(join(dir, 'cpuacct.usage'), 'utf8')) / 1e9 };
  }
  const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/unified';
  const dir = join(v2, name);
  mkdirSync(dir);
  return {
    dir,
    usageSeconds: () => Number(/usage_usec (\d+)/.exec(readFileSync(join(dir, 'cpu.stat'), 'utf8'))?.[1] ?? NaN) / 1e6,
  };
}

/** The PID, as seen from here, of the process inside the host's PID namespace with `innerPid` running with `configPath`. */
function outerPid(innerPid: string, configPath: string): number {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (!readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(configPath)) continue;
      const ns = /NSpid:\s+([\d\s]+)/.exec(readFileSync(`/proc/${d}/status`, 'utf8'))?.[1]?.trim().split(/\s+/);
      if (ns && ns[ns.length - 1] === innerPid) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`bastion sshd (pid ${innerPid} inside the host) not found`);
}

export async function startBastion(host: SshHostHandle, port = 2222): Promise<Bastion> {
  // The host's state dir is /run/jgt inside it.
  const outside = join(host.stateDir, 'bastion');
  const inside = '/run/jgt/bastion';
  mkdirSync(outside, { recursive: true });
  const password = randomBytes(12).toString('hex');
  writeFileSync(join(outside, 'id'), host.adminPrivateKey, { mode: 0o600 });
  const target = `ssh -q -T -c ${CIPHER} -i /home/bastion/id -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p ${host.port} ${host.adminUser}@${host.address}`;
  writeFileSync(join(outside, 'sshd_config'), [
    `ListenAddress ${host.address}:${port}`,
    `HostKey ${inside}/host_key`,
    `PidFile ${inside}/sshd.pid`,
    'PasswordAuthentication yes',
    'KbdInteractiveAuthentication no',
    'UsePAM yes',
    'UseDNS no',
    'PrintMotd no',
    'PrintLastLog no',
    'MaxStartups 200',
    `Ciphers ${CIPHER}`,
    `ForceCommand ${target} "$SSH_ORIGINAL_COMMAND"`,
    '',
  ].join('\n'));
  const cg = makeCgroup();
  const up = await host.exec([
    'set -e',
    'id bastion >/dev/null 2>&1 || useradd -m -s /bin/sh bastion',
    'chpasswd',
    // The state dir is root's only (0700): the key goes to the bastion user's home.
    `install -o bastion -m 600 ${inside}/id /home/bastion/id`,
    `ssh-keygen -q -t ed25519 -N '' -f ${inside}/host_key`,
    `/usr/sbin/sshd -f ${inside}/sshd_config`,
    `for i in $(seq 100); do [ -s ${inside}/sshd.pid ] && break; sleep 0.05; done`,
  ].join('\n'), { stdin: `bastion:${password}\n` });
  if (up.code !== 0) throw new Error(`bastion sshd did not start: ${up.stderr}`);
  // The listener (idle so far) goes into the cgroup; every process it forks from now on is accounted there.
  const innerPid = (await host.exec(`cat ${inside}/sshd.pid`)).stdout.trim();
  writeFileSync(join(cg.dir, 'cgroup.procs'), String(outerPid(innerPid, `${inside}/sshd_config`)));
  const quiet = () => host.exec(`p=$(cat ${inside}/sshd.pid); for i in $(seq 200); do [ -z "$(cat /proc/$p/task/*/children)" ] && break; sleep 0.05; done`);
  return {
    address: host.address, port, username: 'bastion', password,
    async cpuSeconds() {
      await quiet();
      return cg.usageSeconds();
    },
    async stop() {
      await host.exec(`kill $(cat ${inside}/sshd.pid) 2>/dev/null || true`);
      for (let i = 0; i < 100; i++) {
        try {
          rmdirSync(cg.dir);
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
  };
}
