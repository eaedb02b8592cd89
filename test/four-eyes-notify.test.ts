import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../core/db/database.js';
import { silentLogger } from '../core/logging.js';
import { ChannelNotifier, SessionModerationService, smtpSender } from '../gateway/access-requests/index.js';
import { JIT_PRESETS } from '../provisioner/jit-settings.js';
import { JitFixture } from './fixtures/jit-fixture.js';
import { databaseFactories } from './harness/databases.js';

/**
 * Four-eyes sessions: when a session starts waiting for a moderator, the
 * computer's moderators (its approvers; never the person themself, never a
 * disabled one or one of another organization) are told by email, read here
 * from a real SMTP server on loopback. The notice links to the watch page and
 * carries no secret; each channel's outcome is audited on the session.
 */
const pglite = databaseFactories().find((f) => f.label === 'pglite')!;
type Mail = { to: string[]; raw: string };
const unQp = (s: string) => s.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));

describe('four-eyes sessions tell their moderators', () => {
  let db: Database;
  let smtp: SMTPServer;
  let mail: ReturnType<typeof smtpSender>;
  const mails: Mail[] = [];

  beforeAll(async () => {
    db = await pglite.open();
    smtp = new SMTPServer({
      authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], logger: false,
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          mails.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: unQp(Buffer.concat(chunks).toString('utf8')) });
          cb();
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
    mail = smtpSender({ host: '127.0.0.1', port: (smtp.server.address() as AddressInfo).port, tls: 'none', from: 'jitgate <jitgate@example.test>' });
  }, 60_000);

  afterAll(async () => {
    mail?.close();
    await new Promise<void>((r) => (smtp ? smtp.close(() => r()) : r()));
    await db?.close();
  });

  it('emails the organization\'s approvers a link to the watch page when a session waits; not the person, not a disabled admin, not another organization', async () => {
    const fx = new JitFixture(db, new Map());
    const org = await fx.organization();
    const other = await fx.organization();
    const person = async (login: string, role: string, orgId: string, disabled = false) => {
      const id = randomUUID();
      await db.query('INSERT INTO people (id, login, display_name, email, role, organization_id, disabled) VALUES ($1,$2,$3,$4,$5,$6,$7)', [id, login, login, `${login}@example.test`, role, orgId, disabled]);
      return id;
    };
    const tag = randomUUID().slice(0, 6);
    await person(`ada${tag}`, 'org_admin', org.id);
    await person(`old${tag}`, 'org_admin', org.id, true);
    await person(`nia${tag}`, 'org_admin', other.id);
    const tessId = await person(`tess${tag}`, 'technician', org.id);
    // the person is also a named approver: still never their own moderator
    const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['admins'], accountType: 'local' }, { orgId: org.id, localStore: 'x', domainStore: 'x' });
    await db.query("UPDATE computers SET policy = jsonb_build_object('requireModerator', true, 'moderatorWaitMinutes', 7, 'approverRoles', jsonb_build_array('org_admin'), 'approverLogins', jsonb_build_array($2::text)) WHERE id = $1", [pc.id, `tess${tag}`]);
    const computer = (await fx.repo.getComputer(pc.id))!;

    const mod = new SessionModerationService({
      db, audit: fx.audit, log: silentLogger(), publicUrl: 'https://jitgate.example.test/',
      notifier: new ChannelNotifier({ log: silentLogger(), mail }),
    });
    const sessionId = randomUUID();
    const gate = mod.gateFor({ sessionId, computer, personId: tessId, personLogin: `tess${tag}`, protocol: 'ssh' }, () => undefined);
    expect(gate).not.toBeNull();

    const deadline = Date.now() + 30_000;
    while (!mails.some((m) => m.raw.includes(sessionId)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const m = mails.find((x) => x.raw.includes(sessionId));
    expect(m, 'the email to the moderators').toBeDefined();
    expect(m!.to).toEqual([`ada${tag}@example.test`]);
    expect(m!.raw).toContain(`Four-eyes: tess${tag} waits for a moderator on ${computer.name}`);
    expect(m!.raw).toContain(`https://jitgate.example.test/live/${sessionId}/watch`);
    expect(m!.raw).toContain('Waits up to: 7 minutes');

    let notified: { outcome: string; data: unknown }[] = [];
    while (notified.length === 0 && Date.now() < deadline) {
      notified = await db.query<{ outcome: string; data: unknown }>("SELECT outcome, data FROM audit_events WHERE type = 'access_request.notified' AND session_id = $1", [sessionId]);
      if (notified.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(notified.map((n) => n.outcome)).toEqual(['success']);
    const data = typeof notified[0]!.data === 'string' ? JSON.parse(notified[0]!.data) : notified[0]!.data;
    expect(data).toMatchObject({ kind: 'moderator_needed', channel: 'email', target: 'smtp', recipients: 1 });
    gate?.close();
  }, 60_000);
});
