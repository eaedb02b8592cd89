import { createHmac } from 'node:crypto';
import nodemailer from 'nodemailer';
import type { Logger } from '../../core/logging.js';

/**
 * Where approvers are told about access requests: email over SMTP
 * (nodemailer) and outgoing webhooks with Slack- and Teams-compatible
 * payloads, signed with HMAC-SHA256. Every message carries a link to the
 * request page only: approving there needs a signed-in approver and a second
 * factor, never the link alone (docs/access-requests.md).
 */

export interface Recipient {
  login: string;
  displayName: string;
  email: string | null;
}

/** `moderator_needed`: a four-eyes session waits for a moderator (its `requestId` is the session's id, its link the watch page). */
export type NoticeKind = 'requested' | 'break_glass' | 'approved' | 'denied' | 'revoked' | 'moderator_needed';

/** One thing to tell; no secrets in here (it goes to chat rooms). */
export interface RequestNotice {
  kind: NoticeKind;
  requestId: string;
  organizationId: string;
  organization: string;
  computer: string;
  requester: string;
  reason: string;
  ticket: string | null;
  minutes: number;
  approvals: number;
  required: number;
  /** The request page (`<publicUrl>/requests/<id>`), or a path when no public URL is configured. */
  link: string;
  recipients: Recipient[];
}

export interface NotifyResult {
  channel: 'email' | 'webhook';
  /** Webhook name, or `smtp`. */
  target: string;
  ok: boolean;
  recipients?: number;
  error?: string;
}

export interface AccessRequestNotifier {
  notify(n: RequestNotice): Promise<NotifyResult[]>;
}

/** Sends one email (implemented with nodemailer by `smtpSender`). */
export interface MailSender {
  send(m: { to: string[]; subject: string; text: string }): Promise<void>;
}

export interface WebhookTarget {
  name: string;
  url: string;
  format: 'slack' | 'teams';
  /** HMAC-SHA256 key of the `x-jitgate-signature` header. */
  secret: string;
  /** Organization names whose requests go here; absent: every organization. */
  organizations?: readonly string[] | undefined;
}

export interface SmtpOptions {
  host: string;
  port: number;
  /** implicit: TLS from the first byte (port 465); starttls: upgrade required; none: plain text (loopback relays only). */
  tls: 'implicit' | 'starttls' | 'none';
  user?: string | undefined;
  password?: string | undefined;
  from: string;
}

/** A MailSender over SMTP with nodemailer. */
export function smtpSender(o: SmtpOptions): MailSender & { close(): void } {
  const transport = nodemailer.createTransport({
    host: o.host,
    port: o.port,
    secure: o.tls === 'implicit',
    requireTLS: o.tls === 'starttls',
    ignoreTLS: o.tls === 'none',
    ...(o.user ? { auth: { user: o.user, pass: o.password ?? '' } } : {}),
    connectionTimeout: 15_000,
    socketTimeout: 30_000,
  });
  return {
    send: async (m) => {
      await transport.sendMail({ from: o.from, to: m.to, subject: m.subject, text: m.text });
    },
    close: () => transport.close(),
  };
}

const TITLE: Record<NoticeKind, (n: RequestNotice) => string> = {
  requested: (n) => `Access request: ${n.requester} asks for ${n.computer}`,
  break_glass: (n) => `BREAK-GLASS: ${n.requester} opened ${n.computer} without approval`,
  approved: (n) => `Access to ${n.computer} approved for ${n.requester}`,
  denied: (n) => `Access to ${n.computer} denied for ${n.requester}`,
  revoked: (n) => `Access to ${n.computer} revoked for ${n.requester}`,
  moderator_needed: (n) => `Four-eyes: ${n.requester} waits for a moderator on ${n.computer}`,
};

function facts(n: RequestNotice): [string, string][] {
  if (n.kind === 'moderator_needed') {
    return [
      ['Organization', n.organization],
      ['Computer', n.computer],
      ['Session of', n.requester],
      ['Waits up to', `${n.minutes} minutes`],
    ];
  }
  return [
    ['Organization', n.organization],
    ['Computer', n.computer],
    ['Requested by', n.requester],
    ['Reason', n.reason],
    ['Ticket', n.ticket ?? '(none)'],
    ['Duration', `${n.minutes} minutes`],
    ['Approvals', `${n.approvals} of ${n.required}`],
  ];
}

export function emailOf(n: RequestNotice): { subject: string; text: string } {
  const lines = facts(n).map(([k, v]) => `${k}: ${v}`);
  const action =
    n.kind === 'requested'
      ? 'To approve or deny, open the request, sign in and confirm with your second factor:'
      : n.kind === 'break_glass'
        ? 'No approval was asked. Review it, and revoke it if it is not justified:'
        : n.kind === 'moderator_needed'
          ? 'The session connects only while a moderator watches it. To moderate, sign in and open it:'
          : 'Details:';
  return { subject: `[jitgate] ${TITLE[n.kind](n)}`, text: `${TITLE[n.kind](n)}\n\n${lines.join('\n')}\n\n${action}\n${n.link}\n` };
}

/** Slack mrkdwn: the three characters Slack asks to escape, so a reason cannot forge a link or a mention. */
const slackEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A Slack incoming-webhook payload (text + Block Kit section and a link button). */
export function slackPayload(n: RequestNotice): Record<string, unknown> {
  const title = slackEscape(TITLE[n.kind](n));
  return {
    text: title,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: TITLE[n.kind](n).slice(0, 150) } },
      { type: 'section', fields: facts(n).map(([k, v]) => ({ type: 'mrkdwn', text: `*${k}*\n${slackEscape(v)}` })).slice(0, 10) },
      { type: 'actions', elements: [{ type: 'button', text: { type: 'plain_text', text: 'Review (sign-in and MFA required)' }, url: n.link }] },
    ],
  };
}

/** A Microsoft Teams incoming-webhook payload (MessageCard with an open-link action). */
export function teamsPayload(n: RequestNotice): Record<string, unknown> {
  return {
    '@type': 'MessageCard',
    '@context': 'https://schema.org/extensions',
    summary: TITLE[n.kind](n),
    themeColor: n.kind === 'break_glass' || n.kind === 'revoked' ? 'D13438' : '0078D7',
    title: TITLE[n.kind](n),
    sections: [{ facts: facts(n).map(([name, value]) => ({ name, value })) }],
    potentialAction: [{ '@type': 'OpenUri', name: 'Review (sign-in and MFA required)', targets: [{ os: 'default', uri: n.link }] }],
  };
}

export const SIGNATURE_HEADER = 'x-jitgate-signature';
export const TIMESTAMP_HEADER = 'x-jitgate-timestamp';

/** `v1=<hex>`: HMAC-SHA256 over `<timestamp>.<body>` (the timestamp lets receivers refuse replays). */
export function signBody(secret: string, timestamp: string, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export interface ChannelNotifierOptions {
  mail?: MailSender | undefined;
  webhooks?: readonly WebhookTarget[];
  log: Logger;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

/** Email to each recipient with an address, and every webhook of the request's organization. */
export class ChannelNotifier implements AccessRequestNotifier {
  readonly #o: ChannelNotifierOptions;
  readonly #log: Logger;

  constructor(o: ChannelNotifierOptions) {
    this.#o = o;
    this.#log = o.log.child({ component: 'access-request-notifier' });
  }

  async notify(n: RequestNotice): Promise<NotifyResult[]> {
    const jobs: Promise<NotifyResult>[] = [];
    const to = n.recipients.map((r) => r.email).filter((e): e is string => !!e);
    if (this.#o.mail && to.length > 0) {
      const mail = this.#o.mail;
      jobs.push(
        (async (): Promise<NotifyResult> => {
          try {
            await mail.send({ to, ...emailOf(n) });
            return { channel: 'email', target: 'smtp', ok: true, recipients: to.length };
          } catch (err) {
            this.#log.warn({ err, requestId: n.requestId }, 'access request email failed');
            return { channel: 'email', target: 'smtp', ok: false, recipients: to.length, error: err instanceof Error ? err.message : String(err) };
          }
        })(),
      );
    }
    for (const w of this.#o.webhooks ?? []) {
      if (w.organizations && !w.organizations.includes(n.organization)) continue;
      jobs.push(this.#post(w, n));
    }
    return Promise.all(jobs);
  }

  async #post(w: WebhookTarget, n: RequestNotice): Promise<NotifyResult> {
    const body = JSON.stringify(w.format === 'slack' ? slackPayload(n) : teamsPayload(n));
    const ts = String(Math.floor(Date.now() / 1000));
    try {
      const res = await (this.#o.fetch ?? fetch)(w.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [TIMESTAMP_HEADER]: ts, [SIGNATURE_HEADER]: signBody(w.secret, ts, body) },
        body,
        redirect: 'error',
        signal: AbortSignal.timeout(this.#o.timeoutMs ?? 10_000),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return { channel: 'webhook', target: w.name, ok: true };
    } catch (err) {
      this.#log.warn({ err, webhook: w.name, requestId: n.requestId }, 'access request webhook failed');
      return { channel: 'webhook', target: w.name, ok: false, error: err instanceof Error ? err.message : String(err) };
    }
  }
}
