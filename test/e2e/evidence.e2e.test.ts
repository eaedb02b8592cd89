import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AuditLog } from '../../core/audit.js';
import { auditKeyPath, loadAuditKey } from '../../core/audit-key.js';
import { migrate } from '../../core/db/migrations.js';
import { PgDatabase } from '../../core/db/pg.database.js';
import { createPerson } from '../../gateway/auth/index.js';
import type { EvidenceBundle } from '../../recorder/evidence.js';
import { evidenceSource } from '../../recorder/evidence-export.js';
import { loadEvidenceSigner } from '../../recorder/evidence-key.js';
import { createRecorder, type Recorder } from '../../recorder/session-recorder.js';
import { loadSigningKey, signingKeyPath } from '../../recorder/signing-key.js';
import { silentLogger } from '../../core/logging.js';
import { runCli } from '../harness/cli.js';
import { createTestDatabase } from '../harness/postgres.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { startWebRig, type WebRig } from './web-rig.js';
import { signIn, type Person } from './web-steps.js';

/**
 * Issue 19, evidence end to end: an auditor signed in for real exports a
 * session's bundle from the replay page in Chromium; the file is tampered
 * with as someone outside jitgate would (a recording's bytes, an audit event)
 * and `jitgate evidence verify`, spawned with nothing but the file and the
 * published fingerprint (and, for the installation's own auditors, its HMAC
 * key files), names each changed part. `jitgate evidence export` is then run
 * as an operator runs it, on the same PostgreSQL database and data directory
 * as the gateway, and its bundle verifies and carries the same evidence.
 */
const pgUrl = inject('pgUrl');
const why = [chromiumAvailable(), pgUrl ? { ok: true } : { ok: false, reason: `no PostgreSQL server: ${inject('missing')}` }].find((a) => !a.ok)?.reason;

const MARKER = `evidence-marker-${randomBytes(3).toString('hex')}`;

describe.skipIf(why !== undefined)(`evidence bundles from the browser and the CLI${why ? ` (skipped: ${why})` : ''}`, () => {
  let db: PgDatabase;
  let url: string;
  let dataDir: string;
  let rig: WebRig;
  let rec: Recorder;
  let b: BrowserHandle;
  let fingerprint: string;
  let sessionId: string;
  let recordingId: string;
  let downloaded: EvidenceBundle;
  const cliEnv = () => ({ JITGATE_DATA_DIR: dataDir, JITGATE_DATABASE__URL: url, JITGATE_LOG__LEVEL: 'warn' });
  const auditor: Person = { login: `ava${randomBytes(2).toString('hex')}`, displayName: 'Ava Auditor', password: `pw-${randomUUID()}` };

  beforeAll(async () => {
    url = await createTestDatabase(pgUrl, `t_evidence_e2e_${randomBytes(5).toString('hex')}`);
    db = new PgDatabase({ url, poolSize: 5 });
    await migrate(db);
    // The keys in the data directory, where `jitgate serve` creates them and where the CLI finds them.
    dataDir = mkdtempSync(join(tmpdir(), 'jg-evidence-e2e-'));
    const auditKey = loadAuditKey({ dataDir });
    const recordingKey = loadSigningKey({ dataDir });
    const signer = loadEvidenceSigner({ dataDir });
    fingerprint = signer.fingerprint;
    const audit = new AuditLog(db, { key: auditKey });
    rec = createRecorder({ db, audit, log: silentLogger(), dir: join(dataDir, 'recordings'), signingKey: recordingKey });
    rig = await startWebRig({ db, audit, api: { recordingFiles: rec, evidence: evidenceSource({ db, store: rec.store, recordingKey, auditKey, signer }) } });

    const org = randomUUID();
    await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1,$2,$3)', [org, `ev-e2e-${org.slice(0, 6)}`, String(10_000_000 + randomBytes(3).readUIntBE(0, 3))]);
    await createPerson(db, { login: auditor.login, displayName: auditor.displayName, role: 'auditor', organizationId: org, password: auditor.password });
    // A session with the life an auditor asks about: request, account created, start, a terminal recording, account deleted, end.
    sessionId = randomUUID();
    await db.query(
      "INSERT INTO sessions (id, person_login, computer_name, protocol, account_type, account_name, state, lease_expires_at, organization_id, started_at) VALUES ($1,'tess','web01','ssh','local','tess_k3x9q2','active', now() + interval '1 hour', $2, now())",
      [sessionId, org],
    );
    const ev = (type: 'session.requested' | 'account.created' | 'session.started' | 'account.deleted' | 'session.ended', actor: string) =>
      audit.record({ type, actor, outcome: 'success', sessionId, computer: 'web01', account: type === 'session.requested' ? null : 'tess_k3x9q2' });
    await ev('session.requested', 'tess');
    await ev('account.created', 'system:provisioner');
    await ev('session.started', 'tess');
    const term = await rec.startTerminal({ sessionId, personLogin: 'tess', computerName: 'web01', account: 'tess_k3x9q2', protocol: 'ssh', startedAt: new Date() }, { cols: 80, rows: 24, recordInput: false });
    term.output(Buffer.from(`tess@web01:~$ rm -rf /var/tmp/${MARKER}\r\ntess@web01:~$ `));
    recordingId = term.recordingId;
    await term.close();
    await ev('account.deleted', 'system:provisioner');
    await ev('session.ended', 'tess');
    await db.query("UPDATE sessions SET state = 'ended', ended_at = now() WHERE id = $1", [sessionId]);
    b = await launchBrowser();
  }, 300_000);

  afterAll(async () => {
    await b?.close();
    await rig?.close();
    await db?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  const verifyCli = (file: string, ...extra: string[]) => runCli(['evidence', 'verify', file, '--fingerprint', fingerprint, ...extra]);

  it('an auditor exports the bundle from the replay page; the CLI verifies it offline, and names each part tampered with', async () => {
    const page = await b.newPage();
    await signIn(page, rig.base, auditor, 'evidence-auditor');
    await page.goto(`${rig.base}/recordings/${recordingId}`);
    await page.getByRole('heading', { name: 'Replay' }).waitFor();
    const link = page.getByRole('link', { name: 'Export evidence bundle' });
    await link.waitFor();
    await screenshot(page, 'evidence-export');
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), link.click()]);
    const file = join(dataDir, 'downloaded.json');
    await download.saveAs(file);
    downloaded = JSON.parse(readFileSync(file, 'utf8')) as EvidenceBundle;
    expect(downloaded.statement.session).toMatchObject({ id: sessionId, computer: 'web01' });
    expect(downloaded.statement.exportedBy).toBe(auditor.login);

    // As received: intact, with the published fingerprint, and with the installation's HMAC keys recomputed.
    const ok = await verifyCli(file, '--audit-key', auditKeyPath(dataDir), '--recording-key', signingKeyPath(dataDir));
    expect([ok.code, ok.stderr]).toEqual([0, '']);
    expect(ok.stdout).toContain('INTACT');
    expect(ok.stdout).toContain(`signed by ${fingerprint} (matches the fingerprint given)`);

    // Tampered: the command in the recording rewritten (same length), and who created the account.
    const cast = `recordings/${recordingId}.cast`;
    const created = downloaded.statement.auditEvents.find((e) => JSON.parse(Buffer.from(downloaded.parts[e.part]!, 'base64').toString('utf8')).type === 'account.created')!.part;
    const edit = (part: string, from: string, to: string) => {
      const text = Buffer.from(downloaded.parts[part]!, 'base64').toString('utf8');
      expect(text).toContain(from);
      return Buffer.from(text.replace(from, to)).toString('base64');
    };
    const tampered: EvidenceBundle = { ...downloaded, parts: { ...downloaded.parts, [cast]: edit(cast, 'rm -rf', 'ls -la'), [created]: edit(created, 'system:provisioner', 'system:provisionet') } };
    const bad = join(dataDir, 'tampered.json');
    writeFileSync(bad, JSON.stringify(tampered));
    const r = await verifyCli(bad);
    expect(r.code, r.stderr).toBe(1);
    const named = r.stdout.split('\n').filter((l) => /: changed/.test(l));
    expect(named.map((l) => l.slice(0, l.indexOf(':'))).sort()).toEqual([`audit event ${created}`, `recording bytes ${cast}`]);
    expect(r.stdout).toContain('2 problem(s): TAMPERED');
    expect(b.errors).toEqual([]);
  }, 300_000);

  it('`jitgate evidence export` on the installation\'s database writes a bundle that verifies and holds the same evidence, audited as the CLI', async () => {
    const out = join(dataDir, 'cli.json');
    const r = await runCli(['evidence', 'export', sessionId, '-o', out], cliEnv());
    expect([r.code, r.stdout]).toEqual([0, '']);
    const cli = JSON.parse(readFileSync(out, 'utf8')) as EvidenceBundle;
    expect(r.stderr).toContain(`${out}: 1 recording(s), ${cli.statement.auditEvents.length} audit event(s), signed by ${fingerprint}`);
    expect(cli.statement.exportedBy).toBe('system:cli');
    // The same recording bytes and manifest entry as the browser's bundle, and every event it held, byte for byte;
    // the CLI's also holds what happened since (the replay viewed, the browser's export).
    const digests = (x: EvidenceBundle, audit: boolean) => Object.fromEntries(x.statement.parts.filter((p) => p.name.startsWith('audit/') === audit).map((p) => [p.name, p.sha256]));
    expect(digests(cli, false)).toEqual(digests(downloaded, false));
    expect(digests(cli, true)).toMatchObject(digests(downloaded, true));
    const types = cli.statement.auditEvents.map((e) => (JSON.parse(Buffer.from(cli.parts[e.part]!, 'base64').toString('utf8')) as { type: string }).type);
    expect(types).toEqual(expect.arrayContaining(['session.requested', 'account.created', 'session.started', 'account.deleted', 'session.ended', 'recording.evidence_exported']));
    const ok = await verifyCli(out, '--audit-key', auditKeyPath(dataDir), '--recording-key', signingKeyPath(dataDir));
    expect([ok.code, ok.stderr]).toEqual([0, '']);
    expect(ok.stdout).toContain('INTACT');
    const exported = await db.query<{ actor: string }>("SELECT actor FROM audit_events WHERE type = 'recording.evidence_exported' AND session_id = $1 ORDER BY seq", [sessionId]);
    expect(exported.map((e) => e.actor)).toEqual([auditor.login, 'system:cli']);

    // An unknown session: nothing written, exit 1.
    const none = await runCli(['evidence', 'export', randomUUID(), '-o', join(dataDir, 'none.json')], cliEnv());
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no session/);
  }, 180_000);
});
