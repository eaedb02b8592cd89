/**
 * A real RDP server for integration tests (scripts/xrdp-host.sh; docs/ssh-test-hosts.md
 * "RDP: the xrdp host"): an SSH test host whose namespaces also run Debian's
 * xrdp + xorgxrdp, TLS only, on `address:rdpPort`, with a certificate generated
 * at start. An account created over sshd (by the Linux SSH store) logs in over RDP.
 */
import { accessSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sshHostAvailable, startHostWith, type SshHostEnv, type SshHostHandle } from './ssh-host.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/xrdp-host.sh', import.meta.url));

export interface XrdpHostEnv extends SshHostEnv {
  /** 3389, on `address` only. */
  readonly rdpPort: number;
  /** SHA-256 of the DER certificate xrdp presents, `AB:CD:…` (what `rdpCertFingerprint` pins). */
  readonly rdpCertSha256: string;
  readonly rdpCertPath: string;
  readonly rdpLog: string;
  readonly sesmanLog: string;
}

export type XrdpHostHandle = SshHostHandle & XrdpHostEnv;

function installed(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** Whether this machine can run the xrdp host; `reason` says why not (for `describe.skipIf`). */
export function xrdpHostAvailable(): { ok: boolean; reason?: string } {
  const ssh = sshHostAvailable();
  if (!ssh.ok) return ssh;
  const hint = 'install with: sudo scripts/xrdp-host.sh install-deps (scripts/deps-optional/xrdp.txt)';
  if (!installed('/usr/sbin/xrdp') || !installed('/usr/sbin/xrdp-sesman')) return { ok: false, reason: `xrdp is not installed; ${hint}` };
  if (!installed('/usr/lib/xorg/modules/drivers/xrdpdev_drv.so')) return { ok: false, reason: `xorgxrdp is not installed; ${hint}` };
  if (!installed('/usr/bin/openssl')) return { ok: false, reason: 'openssl is not installed (scripts/deps/core.txt)' };
  return { ok: true };
}

/** Start one xrdp host (sshd + xrdp-sesman + xrdp; ~1–3 s). Call `stop()` in `afterAll`. */
export async function startXrdpHost(): Promise<XrdpHostHandle> {
  const avail = xrdpHostAvailable();
  if (!avail.ok) throw new Error(`xrdp test host unavailable: ${avail.reason ?? ''}`);
  return startHostWith<XrdpHostEnv>(SCRIPT);
}
