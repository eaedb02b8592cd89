/**
 * The OpenSSH bastion jitgate's relay is compared with: a second sshd inside
 * an sshd test host (test/harness/ssh-host.ts), whose ForceCommand runs
 * `ssh target "$SSH_ORIGINAL_COMMAND"` to the host's own sshd, so the bytes are
 * decrypted and re-encrypted in C, as in a classic jump host. Both legs use
 * aes128-gcm@openssh.com, the cipher ssh2 (the gateway) negotiates on both of
 * its legs here.
 *
 * The bastion's CPU time is read from its listening sshd: every per-connection
 * process (privilege-separated sshd, the user's shell, the `ssh` client) is
 * reaped by its parent, and Linux adds a reaped child's CPU time to the parent's
 * cutime/cstime, so the listener's utime+stime+cutime+cstime grows by the whole
 * bastion's CPU once a connection's processes have exited.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SshHostHandle } from '../../test/harness/ssh-host.js';

export interface Bastion {
  address: string;
  port: number;
  username: string;
  password: string;
  /** CPU seconds the bastion spent so far (all its processes that have exited). */
  cpuSeconds(): Promise<number>;
  stop(): Promise<void>;
}

const CIPHER = 'aes128-gcm@openssh.com';
const CLK_TCK = 100;

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
  return {
    address: host.address, port, username: 'bastion', password,
    async cpuSeconds() {
      // Wait until the listener has no children left (every connection reaped), then read its times.
      const r = await host.exec(
        `p=$(cat ${inside}/sshd.pid); for i in $(seq 200); do [ -z "$(cat /proc/$p/task/*/children)" ] && break; sleep 0.05; done; cat /proc/$p/stat`,
      );
      // Fields after the ")" of comm: state is 3rd; utime, stime, cutime, cstime are 14–17.
      const f = r.stdout.slice(r.stdout.lastIndexOf(')') + 2).trim().split(/\s+/);
      return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
    },
    async stop() {
      await host.exec(`kill $(cat ${inside}/sshd.pid) 2>/dev/null || true`);
    },
  };
}
