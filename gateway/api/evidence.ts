import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { canSeeRecording, isAdminOf, canSeeOrganization, isUuid } from '../access-policy.js';
import type { Principal } from '../auth/principal.js';
import type { ApiDeps } from './deps.js';
import { ensure, iso, notFound, parseBody, principalOf } from './http.js';

/**
 * Evidence that verifies outside jitgate (issue 19, docs/evidence.md): a
 * session's signed evidence bundle, the key that signs bundles, the legal
 * hold that keeps a session's recordings from retention, and each
 * organization's retention period.
 */

type SessionRow = {
  id: string; person_id: string | null; person_login: string; computer_name: string; account_name: string | null; organization_id: string | null;
  legal_hold: boolean; legal_hold_by: string | null; legal_hold_at: Date | string | null;
};
const COLS = 'id, person_id, person_login, computer_name, account_name, organization_id, legal_hold, legal_hold_by, legal_hold_at';

const holdBody = z.strictObject({ hold: z.boolean({ error: 'true or false' }), reason: z.string().max(500).optional() });
const retentionBody = z.strictObject({ recordingRetentionDays: z.number({ error: 'a number of days, or null' }).int().min(1).max(36_500).nullable() });

/** Legal hold: admins and auditors who can see the session (not technicians, not even on their own sessions). */
export function canHoldSession(p: Principal, s: { personId: string | null; organizationId: string | null }): boolean {
  return p.role !== 'technician' && canSeeRecording(p, s);
}

export function evidenceRoutes(deps: Pick<ApiDeps, 'db' | 'audit' | 'evidence'>) {
  const { db, audit, evidence } = deps;
  const ref = (r: SessionRow) => ({ personId: r.person_id, organizationId: r.organization_id });
  const holdView = (r: SessionRow) => ({ sessionId: r.id, legalHold: r.legal_hold, by: r.legal_hold_by, at: iso(r.legal_hold_at) });

  /** The session if `p` may see its recordings (the recordings rule), else 404: a session one may not see does not exist. */
  async function load(p: Principal, id: string): Promise<SessionRow> {
    if (!isUuid(id)) throw notFound('session');
    const [r] = await db.query<SessionRow>(`SELECT ${COLS} FROM sessions WHERE id = $1`, [id]);
    if (!r || !canSeeRecording(p, ref(r))) throw notFound('session');
    return r;
  }

  return async (app: FastifyInstance): Promise<void> => {
    app.get('/evidence/key', async (req) => {
      principalOf(req);
      if (!evidence) throw notFound('evidence signing key');
      return { alg: 'ed25519', publicKey: evidence.publicKey, fingerprint: evidence.fingerprint };
    });

    app.get<{ Params: { id: string } }>('/sessions/:id/evidence', async (req, reply) => {
      const p = principalOf(req);
      const s = await load(p, req.params.id);
      if (!evidence) throw notFound('evidence export');
      const bundle = await evidence.export(s.id, p.login);
      if (!bundle) throw notFound('session');
      await audit.record({
        type: 'recording.evidence_exported', actor: p.login, outcome: 'success', sessionId: s.id, computer: s.computer_name, account: s.account_name,
        data: { organizationId: s.organization_id, fingerprint: evidence.fingerprint },
      });
      reply
        .header('content-type', 'application/json')
        .header('content-disposition', `attachment; filename="jitgate-evidence-${s.id}.json"`)
        .header('cache-control', 'no-store');
      return reply.send(JSON.stringify(bundle));
    });

    app.get<{ Params: { id: string } }>('/sessions/:id/legal-hold', async (req) => holdView(await load(principalOf(req), req.params.id)));

    app.put<{ Params: { id: string } }>('/sessions/:id/legal-hold', async (req) => {
      const p = principalOf(req);
      const s = await load(p, req.params.id);
      ensure(canHoldSession(p, ref(s)), 'put sessions under legal hold');
      const b = parseBody(holdBody, req.body);
      const [r] = await db.query<SessionRow>(
        `UPDATE sessions SET legal_hold = $2, legal_hold_by = CASE WHEN $2 THEN $3 ELSE NULL END, legal_hold_at = CASE WHEN $2 THEN now() ELSE NULL END WHERE id = $1 RETURNING ${COLS}`,
        [s.id, b.hold, p.login],
      );
      if (!r) throw notFound('session');
      if (r.legal_hold !== s.legal_hold) {
        await audit.record({
          type: 'session.legal_hold', actor: p.login, outcome: 'success', sessionId: s.id, computer: s.computer_name, account: s.account_name,
          data: { hold: b.hold, organizationId: s.organization_id, ...(b.reason ? { reason: b.reason } : {}) },
        });
      }
      return holdView(r);
    });

    app.get<{ Params: { id: string } }>('/organizations/:id/retention', async (req) => {
      const p = principalOf(req);
      const { id } = req.params;
      if (!isUuid(id) || !canSeeOrganization(p, id)) throw notFound('organization');
      const [r] = await db.query<{ recording_retention_days: number | null }>('SELECT recording_retention_days FROM organizations WHERE id = $1', [id]);
      if (!r) throw notFound('organization');
      return { organizationId: id, recordingRetentionDays: r.recording_retention_days, canChange: isAdminOf(p, id) };
    });

    app.put<{ Params: { id: string } }>('/organizations/:id/retention', async (req) => {
      const p = principalOf(req);
      const { id } = req.params;
      if (!isUuid(id) || !canSeeOrganization(p, id)) throw notFound('organization');
      ensure(isAdminOf(p, id), "change the organization's retention");
      const b = parseBody(retentionBody, req.body);
      const [r] = await db.query<{ recording_retention_days: number | null }>(
        'UPDATE organizations SET recording_retention_days = $2 WHERE id = $1 RETURNING recording_retention_days', [id, b.recordingRetentionDays],
      );
      if (!r) throw notFound('organization');
      await audit.record({
        type: 'admin.changed', actor: p.login, outcome: 'success',
        data: { action: 'organization.retention_changed', id, organizationId: id, recordingRetentionDays: b.recordingRetentionDays },
      });
      return { organizationId: id, recordingRetentionDays: r.recording_retention_days, canChange: true };
    });
  };
}
