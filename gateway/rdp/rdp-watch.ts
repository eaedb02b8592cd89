import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { AuditEventInput } from '../../core/audit.js';
import { CoreErrors, JitgateError, isJitgateError } from '../../core/errors.js';
import type { Logger } from '../../core/logging.js';
import type { Principal } from '../auth/principal.js';
import type { LiveEntry, RedisLiveSessions } from '../sessions/live-sessions.js';
import { InstructionParser, encodeInstructionUtf16, type Instruction } from './guac-protocol.js';
import { preconnectGuacd, type GuacdConnection } from './guacd-client.js';
import { RDP_CLOSE, openGuacTunnel, publicError } from './guac-websocket.js';

/**
 * `GET /api/v1/rdp/watch?session=&width=&height=&dpi=&csrf=`: an admin or
 * auditor watches a live RDP session, read-only (docs/rdp.md "Watching a
 * live session"). Same websocket tunnel protocol as `/rdp`.
 *
 * The watcher's gateway joins the session's guacd connection by its id
 * (`select $<connection id>`, protocol reference "Handshake phase") with
 * guacd's `read-only` parameter set, so guacd itself sends the current
 * screen on join (its display is duplicated to a joining user) and then
 * every update, and ignores input from that user. On top of that the
 * gateway forwards nothing from the watcher but `sync` and `nop` (guacd
 * drops a user that does not answer frames for 15 s): no key, mouse,
 * clipboard, size or file instruction reaches guacd, whatever the browser
 * sends. The remote clipboard is not passed to the watcher either.
 *
 * When the person's session ends guacd ends every joined user; the watcher
 * then gets `jitgate,closed,the session ended` and close 1000.
 * Audited: `session.watch` with data.phase `started` / `stopped`.
 */

export interface RdpWatchDeps {
  log: Logger;
  /** The live list (RedisLiveSessions): the entry carries guacd's connection id; watching registers the watcher's presence. */
  live: Pick<RedisLiveSessions, 'get' | 'watchFrames' | 'terminate'>;
  checkCsrf: (req: FastifyRequest) => boolean;
  /** Whether `principal` (admins, auditors, a four-eyes session's moderators) may watch this live session (the same rule as SSH watching). */
  mayWatch: (principal: Principal, session: LiveEntry) => boolean | Promise<boolean>;
  /** Whether the watcher may end the session from the watch (`jitgate,terminate`): its moderators, admins of its organization. */
  mayTerminate?: (principal: Principal, session: LiveEntry) => boolean | Promise<boolean>;
  /** How often to look for guacd's connection id while a four-eyes session waits for its moderator; default 250 ms. */
  pollMs?: number;
  audit: { record(e: AuditEventInput): Promise<unknown> };
  guacd: { host: string; port: number };
  guacdTimeoutMs?: number;
  highWaterBytes?: number;
}

/** Instructions a watcher may send on to guacd: frame acknowledgements and keep-alives, nothing that acts. */
const WATCHER_FORWARDED = new Set(['sync', 'nop']);

const DIM = /^[0-9]{1,5}$/;
function num(v: unknown, dflt: number, min: number, max: number): number {
  if (typeof v !== 'string' || !DIM.test(v)) return dflt;
  const n = Number(v);
  return n >= min && n <= max ? n : dflt;
}


/** Fastify plugin (register under /api/v1): the read-only RDP watch tunnel. */
export function rdpWatchRoutes(deps: RdpWatchDeps): (app: FastifyInstance) => Promise<void> {
  return async (app) => {
    app.get('/rdp/watch', { websocket: true, schema: { hide: true } }, (ws, req) => {
      void runWatch(ws, req, deps).catch((err: unknown) => {
        deps.log.error({ err }, 'rdp watch failed');
        if (ws.readyState === ws.OPEN) ws.close(RDP_CLOSE.hostUnreachable, String(0x0208));
      });
    });
  };
}

async function runWatch(ws: WebSocket, req: FastifyRequest, deps: RdpWatchDeps): Promise<void> {
  const opened = openGuacTunnel(ws, req, deps.checkCsrf);
  if (!opened) return;
  const { principal } = opened;
  const { send, close } = opened.tunnel;
  const q = (req.query ?? {}) as Record<string, unknown>;
  const id = typeof q.session === 'string' ? q.session : '';
  const found = /^[0-9a-f-]{36}$/i.test(id) ? await deps.live.get(id) : null;
  // Not live or not RDP: nothing to watch.
  if (!found || found.protocol !== 'rdp') {
    return close(RDP_CLOSE.badRequest, publicError(new JitgateError(CoreErrors.JIT_ERR_NOT_FOUND, { what: `live remote desktop session ${id.slice(0, 40)}` })));
  }
  if (!(await deps.mayWatch(principal, found))) {
    return close(RDP_CLOSE.accessDenied, publicError(new JitgateError(CoreErrors.JIT_ERR_FORBIDDEN, { action: 'watch live sessions' })));
  }
  // Presence on the live registry, as an SSH watcher: the person is told, and a four-eyes session
  // counts an eligible watcher as its moderator (it connects only then, so guacd's id comes after).
  let presenceEnded = false;
  const stopPresence = await deps.live
    .watchFrames(id, { onData: () => undefined, onResize: () => undefined, onEnd: () => (presenceEnded = true) }, principal.login, principal.personId)
    .catch(() => null);
  ws.once('close', () => void stopPresence?.());
  let entry: LiveEntry | null = found;
  if (!entry.guacdConnection?.startsWith('$')) send('jitgate', 'waiting', id, entry.computerName, entry.personLogin);
  while (entry && !entry.guacdConnection?.startsWith('$') && !presenceEnded && ws.readyState === ws.OPEN) {
    await new Promise((r) => setTimeout(r, deps.pollMs ?? 250));
    entry = await deps.live.get(id);
  }
  if (ws.readyState !== ws.OPEN) return;
  if (!entry?.guacdConnection?.startsWith('$')) return close(RDP_CLOSE.normal, undefined, 'the session ended');
  const live = entry;
  const log = deps.log.child({ component: 'rdp-watch', watcher: principal.login, sessionId: id });
  let clientGone = false;
  let conn: GuacdConnection | null = null;
  const fromBrowser = new InstructionParser('utf16');
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    if (isBinary) return;
    const text = (Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)).toString('utf8');
    let batch: Instruction[];
    try {
      batch = fromBrowser.push(text);
    } catch {
      ws.close(RDP_CLOSE.badRequest, String(0x0300));
      return;
    }
    for (const [opcode, ...args] of batch) {
      if (opcode === '') {
        if (args[0] === 'ping') send('', ...args);
      } else if (opcode === 'disconnect') {
        ws.close(RDP_CLOSE.normal, '0');
        return;
      } else if (opcode === 'jitgate' && args[0] === 'terminate') {
        // A moderator (or an admin) ends the session: the live list's terminate, audited by the holder.
        void (async () => {
          if (!deps.mayTerminate || !(await deps.mayTerminate(principal, live))) {
            return send('jitgate', 'error', CoreErrors.JIT_ERR_FORBIDDEN.code, 'you may not terminate this session');
          }
          await deps.live.terminate(id, principal.login);
        })().catch((err: unknown) => log.warn({ err }, 'terminate from the watch failed'));
      } else if (conn && WATCHER_FORWARDED.has(opcode)) conn.send(opcode, ...args);
    }
  });
  ws.once('close', () => {
    clientGone = true;
    conn?.close();
  });

  const size = { width: num(q.width, 1024, 64, 8192), height: num(q.height, 768, 64, 8192), dpi: num(q.dpi, 96, 48, 480) };
  const pending = preconnectGuacd(deps.guacd, { protocol: live.guacdConnection as `$${string}`, ...(deps.guacdTimeoutMs ? { timeoutMs: deps.guacdTimeoutMs } : {}) });
  try {
    // `read-only` is required: a guacd that did not know it would give the watcher a live keyboard.
    conn = await pending.complete({
      params: { 'read-only': 'true' }, required: new Set(['read-only']), computerName: live.computerName,
      size, image: ['image/png', 'image/jpeg', 'image/webp'],
    });
  } catch (err) {
    log.warn({ code: isJitgateError(err) ? err.code : undefined }, 'could not join the guacd connection');
    // guacd answers a join of a connection that is gone with an error (or closes): the session has ended meanwhile.
    return close(RDP_CLOSE.hostUnreachable, publicError(err), 'the session ended');
  }
  if (clientGone) return void conn.close();
  const started = Date.now();
  const audited = (phase: 'started' | 'stopped'): void => {
    void deps.audit
      .record({
        type: 'session.watch', actor: principal.login, outcome: 'success', sessionId: id, computer: live.computerName, account: live.account,
        data: { phase, protocol: 'rdp', person: live.personLogin, ...(phase === 'stopped' ? { seconds: Math.round((Date.now() - started) / 1000) } : {}) },
      })
      .catch((err: unknown) => log.error({ err }, 'watch could not be audited'));
  };
  audited('started');
  log.info({ connectionId: conn.connectionId }, 'watching');
  send('jitgate', 'watching', id, live.computerName, live.personLogin, live.account ?? '');

  const highWater = deps.highWaterBytes ?? 1 << 20;
  let inFlight = 0;
  let paused = false;
  /** Stream indexes of the remote clipboard: not for the watcher. */
  const clipboardStreams = new Set<string>();
  const c = conn;
  c.start(
    (batch) => {
      let frame = '';
      for (const ins of batch) {
        const [opcode, index = ''] = ins;
        if (opcode === 'clipboard') {
          clipboardStreams.add(index);
          continue;
        }
        if ((opcode === 'blob' || opcode === 'end') && clipboardStreams.has(index)) {
          if (opcode === 'end') clipboardStreams.delete(index);
          continue;
        }
        frame += encodeInstructionUtf16(...ins);
      }
      if (!frame || ws.readyState !== ws.OPEN) return;
      const bytes = Buffer.byteLength(frame);
      inFlight += bytes;
      ws.send(frame, () => {
        inFlight -= bytes;
        if (paused && inFlight < highWater / 2) {
          paused = false;
          c.resume();
        }
      });
      if (!paused && inFlight > highWater) {
        paused = true;
        c.pause();
      }
    },
    () => {
      audited('stopped');
      log.info('watch ended');
      close(RDP_CLOSE.normal, undefined, clientGone ? undefined : 'the session ended');
    },
  );
}
