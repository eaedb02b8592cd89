/**
 * The browser side of bench/rdp-sizing.bench.ts, in its own process (forked
 * with IPC): N websocket clients on the gateway's RDP tunnel that behave as
 * guacamole-common-js does for the person at the desktop:
 *   - a ping every 500 ms (`0.,4.ping,<ms>;`, WebSocketTunnel's PING_FREQUENCY);
 *   - every `sync` from guacd acknowledged with `sync,<same timestamp>`
 *     (Guacamole.Client, once the frame is drawn);
 *   - while active, the person's input: 10 mouse moves a second and typing at
 *     5 characters a second (a key press and release each).
 * It counts what it received (bytes, frames, syncs) and drops the rest.
 */
import WebSocket from 'ws';

export type ClientRequest =
  | { op: 'open'; wsUrl: string; count: number; parallel: number }
  | { op: 'mode'; active: boolean }
  | { op: 'stats' }
  | { op: 'close' };
export interface ClientStats {
  /** Sessions open now. */
  open: number;
  /** Bytes (UTF-8) received since the last `stats`, over all sessions. */
  bytes: number;
  syncs: number;
  /** Sessions closed by the gateway since they opened (not by `close`). */
  closedByGateway: number;
  seconds: number;
}

interface Session {
  ws: WebSocket;
  closing: boolean;
}
const sessions = new Set<Session>();
let active = false;
let bytes = 0;
let syncs = 0;
let closedByGateway = 0;
let since = performance.now();
const keys = [104, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100]; // "hello world", X11 keysyms of ASCII

const el = (s: string): string => `${s.length}.${s}`;
const ins = (...e: string[]): string => e.map(el).join(',') + ';';

function openOne(wsUrl: string): Promise<Session> {
  const q = new URLSearchParams({ computer: 'bench01', accountType: 'domain', width: '1920', height: '1080', dpi: '96', csrf: 'good' });
  const ws = new WebSocket(`${wsUrl}?${q.toString()}`, 'guacamole');
  const s: Session = { ws, closing: false };
  return new Promise((resolve, reject) => {
    let ready = false;
    const timer = setTimeout(() => reject(new Error('no first frame within 60 s')), 60_000);
    ws.on('message', (data: Buffer) => {
      const text = data.toString('utf8');
      bytes += data.length;
      // Instructions are whole per frame; base64 blobs contain neither '.' nor ',' nor ';'.
      let acks = '';
      for (let i = text.startsWith('4.sync,') ? 0 : text.indexOf(';4.sync,'); i !== -1; i = text.indexOf(';4.sync,', i + 1)) {
        const from = text.indexOf(',', i + 2) + 1;
        const head = text.slice(from, text.indexOf(';', from)).split(',')[0] ?? '';
        acks += ins('sync', head.slice(head.indexOf('.') + 1));
        syncs++;
      }
      if (acks) ws.send(acks);
      if (!ready && text.includes('7.jitgate,5.ready,')) {
        ready = true;
        clearTimeout(timer);
        sessions.add(s);
        resolve(s);
      } else if (text.includes('7.jitgate,5.error,')) reject(new Error(`tunnel error: ${text.slice(0, 300)}`));
    });
    ws.once('close', (code) => {
      sessions.delete(s);
      if (!s.closing) closedByGateway++;
      if (!ready) reject(new Error(`tunnel closed (${code}) before ready`));
    });
    ws.once('error', reject);
  });
}

// One tick every 100 ms for every session: pings each 5th tick; input while active.
let tick = 0;
const ticker = setInterval(() => {
  tick++;
  const now = String(Date.now());
  let out = tick % 5 === 0 ? ins('', 'ping', now) : '';
  const base = out;
  let i = 0;
  for (const s of sessions) {
    out = base;
    if (active) {
      i++;
      out += ins('mouse', String((tick * 7 + i) % 1900), String((tick * 3 + i) % 1060), '0');
      // 5 characters a second: a key pressed on each even tick, released on the next.
      out += ins('key', String(keys[(tick >> 1) % keys.length]!), tick % 2 === 0 ? '1' : '0');
    }
    if (out && s.ws.readyState === WebSocket.OPEN) s.ws.send(out);
  }
}, 100);

async function handle(m: ClientRequest): Promise<unknown> {
  switch (m.op) {
    case 'open': {
      let opened = 0;
      const errors: string[] = [];
      const worker = async (): Promise<void> => {
        while (opened + errors.length < m.count) {
          opened++;
          try {
            await openOne(m.wsUrl);
          } catch (err) {
            opened--;
            errors.push(String(err));
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(m.parallel, m.count) }, worker));
      if (errors.length > 0) throw new Error(`${errors.length} sessions failed: ${errors.slice(0, 3).join('; ')}`);
      return { open: sessions.size };
    }
    case 'mode':
      active = m.active;
      return { active };
    case 'stats': {
      const now = performance.now();
      const r: ClientStats = { open: sessions.size, bytes, syncs, closedByGateway, seconds: (now - since) / 1000 };
      bytes = 0;
      syncs = 0;
      since = now;
      return r;
    }
    case 'close': {
      const all = [...sessions];
      await Promise.all(
        all.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.closing = true;
              s.ws.once('close', () => resolve());
              s.ws.send(ins('disconnect'));
              setTimeout(() => {
                s.ws.terminate();
                resolve();
              }, 10_000).unref();
            }),
        ),
      );
      return { closed: all.length };
    }
  }
}

process.on('message', (m: ClientRequest) => {
  handle(m).then(
    (result) => process.send?.({ ok: true, result }),
    (err: unknown) => process.send?.({ ok: false, error: String(err) }),
  );
});
process.on('disconnect', () => {
  clearInterval(ticker);
  process.exit(0);
});
process.send?.({ ok: true, result: { ready: true } });
