/**
 * The gateway side of bench/rdp-sizing.bench.ts, in its own process (forked
 * with IPC) so that its CPU time and RSS can be read from /proc alone: the
 * real RDP websocket tunnel (gateway/rdp/rdp-tunnel.ts under buildServer)
 * with recording on as deployed (the real recorder on PGlite: a slot per
 * session, the file written by guacd, hashed, signed and indexed at close),
 * and a broker that hands every session the same credentials (provisioning
 * is measured elsewhere).
 *
 * env: BENCH_GUACD_HOST, BENCH_GUACD_PORT, BENCH_DIR; the RDP target as in
 * rdp-first-frame.bench.ts (RDP_HOST, RDP_PORT, RDP_USER, RDP_PASSWORD,
 * RDP_SECURITY); GUACD_RECORDING_DIR: guacd's view of the recordings
 * directory when guacd runs elsewhere.
 */
import { join } from 'node:path';
import { AuditLog } from '../core/audit.js';
import { migrate } from '../core/db/migrations.js';
import { PgliteDatabase } from '../core/db/pglite.database.js';
import type { Computer } from '../core/domain.js';
import { silentLogger } from '../core/logging.js';
import { Secret } from '../core/secret.js';
import { createRecorder } from '../recorder/session-recorder.js';
import { loadSigningKey } from '../recorder/signing-key.js';
import { FixedBroker, startRdpTestApp } from '../test/harness/guacd-peer.js';
import { sampleSelf } from './lib/memory.js';

export type GatewayRequest = { op: 'sample'; n: number } | { op: 'counts' } | { op: 'forget' };
export interface GatewayCounts {
  opened: number;
  ended: number;
  /** Recordings sealed (hashed and signed into the manifest). */
  sealed: number;
  /** Recordings guacd never wrote, or still open. */
  unsealed: number;
}

const env = process.env;
const dir = env.BENCH_DIR!;
const target = {
  host: env.RDP_HOST ?? '127.0.0.1',
  port: Number(env.RDP_PORT ?? 3389),
  username: env.RDP_USER ?? 'bench',
  password: env.RDP_PASSWORD ?? 'bench-password',
  security: env.RDP_SECURITY ?? 'any',
};
const computer: Computer = {
  id: 'c1', organizationId: 'o1', name: 'bench01', address: target.host, protocols: ['rdp'], sshPort: 22, rdpPort: target.port,
  domainStore: 'ad', localStore: null, jit: {}, policy: { rdpSecurity: target.security, rdpIgnoreCert: true }, restricted: false,
};

const db = await PgliteDatabase.open();
await migrate(db);
const recorder = createRecorder({
  db, audit: new AuditLog(db), log: silentLogger(), dir: join(dir, 'recordings'), signingKey: loadSigningKey({ dataDir: dir }),
  ...(env.GUACD_RECORDING_DIR ? { guacdDir: env.GUACD_RECORDING_DIR } : {}),
});
const broker = new FixedBroker(computer, { username: target.username, password: new Secret(target.password) });
broker.steps = [];
broker.onSession = async (s) => {
  await db.query(
    "INSERT INTO sessions (id, person_login, computer_name, protocol, account_type, state, lease_expires_at) VALUES ($1, 'alice', 'bench01', 'rdp', 'domain', 'active', now() + interval '1 hour')",
    [s.id],
  );
};
let forgotten = { opened: 0, ended: 0 };
const t = await startRdpTestApp({ broker, recorder, guacd: { host: env.BENCH_GUACD_HOST!, port: Number(env.BENCH_GUACD_PORT) } });

async function counts(): Promise<GatewayCounts> {
  const rows = await db.query<{ sealed: string; unsealed: string }>(
    'SELECT count(*) FILTER (WHERE sha256 IS NOT NULL) AS sealed, count(*) FILTER (WHERE sha256 IS NULL) AS unsealed FROM recordings',
  );
  return {
    opened: forgotten.opened + broker.opened.length,
    ended: forgotten.ended + broker.opened.filter((o) => o.ended.length > 0).length,
    sealed: Number(rows[0]?.sealed ?? 0),
    unsealed: Number(rows[0]?.unsealed ?? 0),
  };
}

process.on('message', (m: GatewayRequest) => {
  const answer = async (): Promise<unknown> => {
    switch (m.op) {
      case 'sample':
        return sampleSelf(m.n);
      case 'counts':
        return counts();
      case 'forget': {
        // The test broker keeps every request and session it saw (their closures hold the tunnels): drop the
        // ended ones between phases, as a real broker forgets ended sessions.
        const c = await counts();
        forgotten = { opened: c.opened, ended: c.ended };
        broker.opened.length = 0;
        broker.requests.length = 0;
        return c;
      }
    }
  };
  answer().then(
    (result) => process.send?.({ ok: true, result }),
    (err: unknown) => process.send?.({ ok: false, error: String(err) }),
  );
});
// The bench ended (or hit its deadline): go with it.
process.on('disconnect', () => process.exit(0));
process.send?.({ ok: true, result: { wsUrl: t.wsUrl } });
