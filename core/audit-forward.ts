import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createWriteStream, type WriteStream } from 'node:fs';
import { isIPv6 } from 'node:net';
import { connect, type Socket } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { z } from 'zod';
import type { AuditEvent, AuditLog } from './audit.js';
import { checkpointLine, type AuditCheckpoint } from './audit-chain.js';

/**
 * Optional forwarding of every committed audit event to where a security
 * team collects logs: a JSON-lines file and/or syslog (RFC 5424). The
 * database chain stays the record; forwarding is best effort and never
 * blocks or fails the audited operation (AuditLog sinks must not throw).
 * Signed checkpoints of the chain's head (core/audit-checkpoint.ts) travel
 * in the same stream, as lines `{"kind":"audit.checkpoint",...}`, so the
 * collected copy can be given to `jitgate audit verify --checkpoints`.
 */
export const auditForwardConfigSchema = z.strictObject({
  /** Append each event as one JSON line to this file (created 0600). */
  file: z.string().min(1).optional(),
  syslog: z
    .strictObject({
      /**
       * `udp://host:port` (one RFC 5424 message per datagram, RFC 5426),
       * `tcp://host:port` or `unix:/path` (a stream socket, octet-counting
       * framing of RFC 6587 §3.4.1, as rsyslog imptcp/imtcp and syslog-ng
       * accept). Node cannot write to datagram unix sockets such as /dev/log.
       */
      target: z.string().regex(/^(udp|tcp):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$|^unix:\/.+/, 'udp://host:port, tcp://host:port or unix:/path'),
      /** RFC 5424 facility number; 13 = log audit. */
      facility: z.number().int().min(0).max(23).default(13),
      appName: z.string().regex(/^[!-~]{1,48}$/, 'printable ASCII without spaces, at most 48').default('jitgate'),
    })
    .optional(),
});
export type AuditForwardConfig = z.output<typeof auditForwardConfigSchema>;

/** RFC 5424 §6.3.3: inside PARAM-VALUE, `"`, `\` and `]` are escaped with a backslash. */
function sdValue(v: string): string {
  return v.replace(/["\\\]]/g, (c) => `\\${c}`);
}

/** The event as one JSON object (what the file and the syslog MSG carry). */
export function auditEventJson(e: AuditEvent): string {
  return JSON.stringify({ ...e, at: e.at.toISOString() });
}

/**
 * RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] BOM MSG`.
 * Severity 5 (notice) for successes, 4 (warning) for failures and denials.
 * Structured data uses the documentation enterprise number 32473 (RFC 5612).
 */
export function syslogMessage(e: AuditEvent, opts: { facility: number; appName: string; hostname: string; procId: string }): string {
  const severity = e.outcome === 'success' ? 5 : 4;
  const host = opts.hostname.replace(/[^!-~]/g, '').slice(0, 255) || '-';
  const msgId = e.type.replace(/[^!-~]/g, '').slice(0, 32) || '-';
  const sd = `[jitgate@32473 seq="${e.seq}" outcome="${sdValue(e.outcome)}" actor="${sdValue(e.actor)}" hash="${e.hash}"]`;
  return `<${opts.facility * 8 + severity}>1 ${e.at.toISOString()} ${host} ${opts.appName} ${opts.procId} ${msgId} ${sd} \uFEFF${auditEventJson(e)}`;
}

/**
 * RFC 5424 message of a checkpoint: MSGID `audit.checkpoint`, severity 5,
 * MSG the same JSON line as in the checkpoint file.
 */
export function syslogCheckpointMessage(c: AuditCheckpoint, opts: { facility: number; appName: string; hostname: string; procId: string }): string {
  const host = opts.hostname.replace(/[^!-~]/g, '').slice(0, 255) || '-';
  const sd = `[jitgate@32473 seq="${c.seq}" link="${c.link}"]`;
  return `<${opts.facility * 8 + 5}>1 ${c.at} ${host} ${opts.appName} ${opts.procId} audit.checkpoint ${sd} \uFEFF${checkpointLine(c)}`;
}

type Forwarded = { event: AuditEvent } | { checkpoint: AuditCheckpoint };

export interface AuditForwarder {
  /** Forward a signed checkpoint of the chain (AuditCheckpointer.onCheckpoint). Never throws. */
  checkpoint(c: AuditCheckpoint): void;
  /** Events dropped because a target was unreachable or its buffer full. */
  readonly dropped: () => number;
  /** Stop forwarding, flush the file, close sockets. */
  close(): Promise<void>;
}

const MAX_PENDING = 10_000;

/** A stream socket (TCP or unix) that reconnects lazily and buffers a bounded number of messages while down. */
class StreamSender {
  #socket: Socket | null = null;
  #connected = false;
  #pending: Buffer[] = [];
  #retryAt = 0;
  #closed = false;
  dropped = 0;

  constructor(private readonly target: { path: string } | { host: string; port: number }) {}

  send(msg: string): void {
    if (this.#closed) return;
    const body = Buffer.from(msg, 'utf8');
    const framed = Buffer.concat([Buffer.from(`${body.length} `), body]);
    if (this.#connected && this.#socket) {
      this.#socket.write(framed);
      return;
    }
    if (this.#pending.length >= MAX_PENDING) {
      this.dropped++;
      return;
    }
    this.#pending.push(framed);
    this.#connect();
  }

  #connect(): void {
    if (this.#socket || Date.now() < this.#retryAt) return;
    const s = 'path' in this.target ? connect(this.target.path) : connect(this.target.port, this.target.host);
    this.#socket = s;
    s.setNoDelay?.(true);
    s.on('connect', () => {
      this.#connected = true;
      for (const m of this.#pending.splice(0)) s.write(m);
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      this.#socket = null;
      this.#connected = false;
      // Back off a second before the next event tries again.
      this.#retryAt = Date.now() + 1000;
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const s = this.#socket;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.once('close', () => resolve());
      if (this.#connected) s.end();
      else s.destroy();
    });
  }
}

/**
 * Register forwarding on `audit` for each configured target. Call once at
 * start-up (main.ts) with `config.audit.forward`; `close()` at shutdown.
 */
export function forwardAudit(audit: AuditLog, cfg: AuditForwardConfig, opts: { hostname?: string } = {}): AuditForwarder {
  let closed = false;
  let dropped = 0;
  const closers: (() => Promise<void>)[] = [];
  const senders: ((f: Forwarded) => void)[] = [];
  const droppedBy: (() => number)[] = [];

  if (cfg.file) {
    const out: WriteStream = createWriteStream(cfg.file, { flags: 'a', mode: 0o600 });
    let broken = false;
    out.on('error', () => {
      broken = true;
    });
    senders.push((f) => {
      if (broken) {
        dropped++;
        return;
      }
      out.write(`${'event' in f ? auditEventJson(f.event) : checkpointLine(f.checkpoint)}\n`);
    });
    closers.push(() => new Promise<void>((resolve) => (broken ? resolve() : out.end(() => resolve()))));
  }

  if (cfg.syslog) {
    const { target, facility, appName } = cfg.syslog;
    const fmt = { facility, appName, hostname: opts.hostname ?? osHostname(), procId: String(process.pid) };
    const message = (f: Forwarded) => ('event' in f ? syslogMessage(f.event, fmt) : syslogCheckpointMessage(f.checkpoint, fmt));
    if (target.startsWith('udp://')) {
      const u = new URL(target);
      const host = u.hostname.replace(/^\[|\]$/g, '');
      const sock: UdpSocket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
      sock.on('error', () => undefined);
      sock.unref();
      senders.push((f) => {
        sock.send(Buffer.from(message(f), 'utf8'), Number(u.port), host, (err) => {
          if (err) dropped++;
        });
      });
      closers.push(() => new Promise<void>((resolve) => sock.close(() => resolve())));
    } else {
      const stream = target.startsWith('unix:')
        ? new StreamSender({ path: target.slice('unix:'.length) })
        : (() => {
            const u = new URL(target);
            return new StreamSender({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) });
          })();
      senders.push((f) => stream.send(message(f)));
      closers.push(() => stream.close());
      droppedBy.push(() => stream.dropped);
    }
  }

  const forward = (f: Forwarded) => {
    if (closed) return;
    for (const send of senders) {
      try {
        send(f);
      } catch {
        dropped++;
      }
    }
  };
  audit.addSink((event) => forward({ event }));

  return {
    checkpoint: (checkpoint) => forward({ checkpoint }),
    dropped: () => dropped + droppedBy.reduce((n, f) => n + f(), 0),
    async close() {
      closed = true;
      for (const c of closers) await c();
    },
  };
}
