import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AuditLog } from '../../core/audit.js';
import type { Computer } from '../../core/domain.js';
import { JitgateError } from '../../core/errors.js';
import { toComputer } from '../../provisioner/jit-repository.js';
import { canEditComputer, canSeeComputer, isUuid } from '../access-policy.js';
import type { Principal } from '../auth/principal.js';
import { SshGatewayErrors } from '../ssh/errors.js';
import { scanHostKey, type ScannedHostKey } from '../ssh/host-key-scan.js';
import { effectivePolicy } from './computer-policy.js';
import type { ApiDeps } from './deps.js';
import { conflict, ensure, FieldValidationError, notFound, parseBody, principalOf } from './http.js';

/**
 * Pinning a computer's SSH host key (docs/api.md "Host keys"): scan → show
 * the fingerprint → confirm. There is no trust on first use: a computer
 * without a pin gets no SSH session (gateway/ssh/host-key-pin.ts).
 *
 * - `POST /computers/:id/host-key/scan`: the key the computer presents now
 *   (no authentication is attempted, nothing is stored).
 * - `PUT /computers/:id/host-key` `{ sha256 }`: scans again and pins only if
 *   the computer presents exactly that key, at the address it has at that
 *   moment (a concurrent address change makes the pin fail, not land on the
 *   new address).
 * - `DELETE /computers/:id/host-key`: unpin; connections are refused until a
 *   key is confirmed again.
 *
 * Admins of the computer's organization and global admins; pins and unpins
 * are audited (`computer.host_key_pinned` / `computer.host_key_unpinned`).
 */

const FINGERPRINT = /^SHA256:([A-Za-z0-9+/]{43})=?$/;
const pinBody = z.strictObject({ sha256: z.string().trim().regex(FINGERPRINT, 'an OpenSSH SHA256 fingerprint (SHA256:…)') });

/** Fingerprints compare without base64 padding (`ssh-keygen -l` prints none). */
function normalise(fp: string): string {
  return fp.trim().replace(/=+$/, '');
}

type Audit = Pick<AuditLog, 'record'>;

/** Audit a pin that went away (unpinned by hand, or dropped because the address changed). */
export async function auditUnpinned(audit: Audit, actor: string, c: Pick<Computer, 'id' | 'name' | 'organizationId'>, previous: string, reason: string): Promise<void> {
  await audit.record({
    type: 'computer.host_key_unpinned', actor, outcome: 'success', computer: c.name,
    data: { id: c.id, organizationId: c.organizationId, previous, reason },
  });
}

/**
 * The pin across a PATCH of the computer: it belongs to the address and port
 * it was confirmed at. Changing either drops it (returned, for the audit);
 * the pin itself changes only through the host-key routes, which check it
 * against the key the computer presents. Mutates `next.policy`.
 */
export function pinAcrossEdit(
  cur: Pick<Computer, 'address' | 'sshPort' | 'policy'>,
  next: { address: string; sshPort: number; policy: { sshHostKeySha256?: string | undefined } },
  bodyPolicy: unknown,
): { dropped: string | null } {
  const curPin = effectivePolicy(cur.policy).sshHostKeySha256;
  const stated = bodyPolicy && typeof bodyPolicy === 'object' ? (bodyPolicy as Record<string, unknown>).sshHostKeySha256 : undefined;
  if (stated !== undefined && (typeof stated !== 'string' || !curPin || normalise(stated) !== normalise(curPin))) {
    throw new FieldValidationError({ 'policy.sshHostKeySha256': 'the host key is pinned under Host key (PUT /computers/:id/host-key), which checks it against the key the computer presents' });
  }
  const moved = next.address !== cur.address || next.sshPort !== cur.sshPort;
  if (!moved || !curPin) return { dropped: null };
  delete next.policy.sshHostKeySha256;
  return { dropped: curPin };
}

/**
 * Pin `want` on `c` if the computer presents exactly that key now, at the
 * address and port it has at that moment; audited either way. Shared by the
 * API and `jitgate computers pin-host-key`.
 */
export async function confirmAndPin(
  deps: { db: ApiDeps['db']; audit: Audit; scan?: typeof scanHostKey },
  c: Computer,
  want: string,
  actor: string,
): Promise<{ computer: Computer; key: ScannedHostKey }> {
  const wanted = normalise(want);
  // Confirm against what the computer presents now, not against what a browser says it saw.
  const seen = await (deps.scan ?? scanHostKey)({ host: c.address, port: c.sshPort });
  const base = { id: c.id, organizationId: c.organizationId, address: c.address, port: c.sshPort };
  if (seen.sha256 !== wanted) {
    await deps.audit.record({ type: 'computer.host_key_pinned', actor, outcome: 'failure', computer: c.name, data: { ...base, expected: wanted, seen: seen.sha256 } });
    throw new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_KEY_NOT_CONFIRMED, { host: `${c.address}:${c.sshPort}`, seen: seen.sha256, expected: wanted });
  }
  // Only at the address that was scanned: an address changed meanwhile must be scanned again.
  const rows = await deps.db.query(
    `UPDATE computers SET policy = jsonb_set(policy, '{sshHostKeySha256}', to_jsonb($4::text)), updated_at = now()
     WHERE id = $1 AND address = $2 AND ssh_port = $3 RETURNING *`,
    [c.id, c.address, c.sshPort, seen.sha256],
  );
  if (!rows[0]) throw conflict(`the address of ${c.name} changed meanwhile; scan again`);
  await deps.audit.record({
    type: 'computer.host_key_pinned', actor, outcome: 'success', computer: c.name,
    data: { ...base, fingerprint: seen.sha256, algorithm: seen.algorithm, previous: effectivePolicy(c.policy).sshHostKeySha256 ?? null },
  });
  return { computer: toComputer(rows[0]), key: seen };
}

export function hostKeyRoutes(deps: Pick<ApiDeps, 'db' | 'audit' | 'access'> & { scan?: typeof scanHostKey }) {
  const { db, audit, access } = deps;
  const scan = deps.scan ?? scanHostKey;

  async function load(p: Principal, id: string, action: string): Promise<Computer> {
    if (!isUuid(id)) throw notFound('computer');
    const rows = await db.query('SELECT * FROM computers WHERE id = $1', [id]);
    const c = rows[0] ? toComputer(rows[0]) : null;
    const granted = c && c.restricted && p.role === 'technician' ? await access.hasGrant(c.id, p.personId) : false;
    if (!c || !canSeeComputer(p, c, granted)) throw notFound('computer');
    ensure(canEditComputer(p, c), `${action} of ${c.name}`);
    return c;
  }

  function pinOf(c: Computer): string | null {
    return effectivePolicy(c.policy).sshHostKeySha256 ?? null;
  }

  function sshOnly(c: Computer): void {
    if (!c.protocols.includes('ssh')) throw conflict(`${c.name} does not take SSH`);
  }

  function view(c: Computer, key: ScannedHostKey) {
    const pinned = pinOf(c);
    return {
      computer: c.name, address: c.address, port: c.sshPort, algorithm: key.algorithm, sha256: key.sha256,
      pinned, matchesPin: pinned !== null && normalise(pinned) === key.sha256,
    };
  }

  return async (app: FastifyInstance): Promise<void> => {
    app.post<{ Params: { id: string } }>('/computers/:id/host-key/scan', async (req) => {
      const c = await load(principalOf(req), req.params.id, 'scan the host key');
      sshOnly(c);
      return view(c, await scan({ host: c.address, port: c.sshPort }));
    });

    app.put<{ Params: { id: string } }>('/computers/:id/host-key', async (req) => {
      const p = principalOf(req);
      const c = await load(p, req.params.id, 'pin the host key');
      sshOnly(c);
      const pinned = await confirmAndPin({ db, audit, scan }, c, parseBody(pinBody, req.body).sha256, p.login);
      return view(pinned.computer, pinned.key);
    });

    app.delete<{ Params: { id: string } }>('/computers/:id/host-key', async (req, reply) => {
      const p = principalOf(req);
      const c = await load(p, req.params.id, 'unpin the host key');
      const rows = await db.query<{ previous: string | null }>(
        `UPDATE computers c SET policy = c.policy - 'sshHostKeySha256', updated_at = now()
         FROM computers old WHERE c.id = $1 AND old.id = c.id AND c.policy ? 'sshHostKeySha256'
         RETURNING old.policy->>'sshHostKeySha256' AS previous`,
        [c.id],
      );
      if (rows[0]?.previous) await auditUnpinned(audit, p.login, c, rows[0].previous, 'unpinned');
      return reply.status(204).send();
    });
  };
}
