/**
 * Websocket open → first `sync` (the first frame) of an RDP session through
 * jitgate's tunnel, against a raw Guacamole handshake to the same guacd, and
 * the ratio (issue goal: ≤ 1.15× raw guacd).
 *
 *   node --import tsx bench/rdp-first-frame.bench.ts [--runs 20] [--provision-ms 60]
 *
 * Without GUACD_HOST it runs against the Guacamole-protocol test peer
 * (test/harness/guacd-peer.ts, in this process): that measures everything
 * jitgate adds up to and including the handshake, not FreeRDP. With
 * GUACD_HOST (GUACD_PORT, default 4822) it runs against that real guacd and
 * the RDP target in RDP_HOST (RDP_PORT 3389, RDP_USER, RDP_PASSWORD,
 * RDP_SECURITY default `any`, certificate not checked): the broker hands
 * those credentials to the tunnel as a provisioned account would be.
 *
 * The broker holds every session `--provision-ms` before returning (the
 * account creation measured in the issue, ~60 ms) so the overlap of the guacd
 * handshake with provisioning shows; a third row opens guacd only after
 * provisioning (a broker without `onAccessGranted`), as before the overlap.
 * The capability probe is warmed up first (a cache hit in steady state).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import type { Computer } from '../core/domain.js';
import { Secret } from '../core/secret.js';
import type { OpenSessionRequest, OpenedSession, ProgressFn } from '../gateway/contracts.js';
import { openGuacd, type GuacdAddress } from '../gateway/rdp/guacd-client.js';
import type { Credentials } from '../provisioner/jit-account.service.js';
import { FixedBroker, SlotRecorder, startGuacdPeer, startRdpTestApp } from '../test/harness/guacd-peer.js';
import { formatTable, ms, summarize } from './lib/stats.js';

const { values: opts } = parseArgs({ options: { runs: { type: 'string', default: '20' }, 'provision-ms': { type: 'string', default: '60' } } });
const RUNS = Number(opts.runs);
const PROVISION_MS = Number(opts['provision-ms']);
const RUN_DEADLINE_MS = 30_000;

const real = process.env.GUACD_HOST;
const target = {
  host: process.env.RDP_HOST ?? '127.0.0.1',
  port: Number(process.env.RDP_PORT ?? 3389),
  username: process.env.RDP_USER ?? 'bench',
  password: process.env.RDP_PASSWORD ?? 'bench-password',
  security: process.env.RDP_SECURITY ?? 'any',
};
if (real && !process.env.RDP_HOST) console.error('warning: GUACD_HOST without RDP_HOST: guacd will try 127.0.0.1:3389 from its own host');

/** The fixed broker, holding provisioning for PROVISION_MS; `overlap: false` hides `onAccessGranted` (the tunnel connects after). */
class TimedBroker extends FixedBroker {
  constructor(computer: Computer, credentials: Credentials, readonly overlap: boolean) {
    super(computer, credentials);
    this.steps = [];
  }
  override async open(req: OpenSessionRequest, onProgress: ProgressFn): Promise<OpenedSession> {
    this.gate = new Promise((r) => setTimeout(r, PROVISION_MS));
    if (this.overlap) return super.open(req, onProgress);
    const { onAccessGranted: _hidden, ...sequential } = req;
    return super.open(sequential, onProgress);
  }
}

function withDeadline<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no first frame within ${RUN_DEADLINE_MS} ms`)), RUN_DEADLINE_MS)));
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** One session through the tunnel: websocket open → first `sync` from guacd (ms); then disconnect and wait for teardown. */
async function throughJitgate(wsUrl: string, broker: FixedBroker): Promise<number> {
  const q = new URLSearchParams({ computer: 'bench01', accountType: 'domain', width: '1280', height: '720', dpi: '96', csrf: 'good' });
  const ws = new WebSocket(`${wsUrl}?${q.toString()}`, 'guacamole');
  const ended = broker.opened.length;
  try {
    return await withDeadline(
      new Promise<number>((resolve, reject) => {
        let t0 = 0;
        ws.once('open', () => (t0 = performance.now()));
        ws.on('message', (data: Buffer) => {
          const text = data.toString('utf8');
          // Instructions are whole per frame; base64 blobs contain neither '.' nor ','.
          if (text.startsWith('4.sync,') || text.includes(';4.sync,')) resolve(performance.now() - t0);
          else if (text.includes('7.jitgate,5.error,')) reject(new Error(`tunnel error: ${text}`));
        });
        ws.once('close', (code) => reject(new Error(`tunnel closed (${code}) before the first frame`)));
        ws.once('error', reject);
      }),
      'jitgate',
    );
  } finally {
    ws.close();
    for (let i = 0; i < 500 && broker.opened[ended]?.ended.length !== 1; i++) await new Promise((r) => setTimeout(r, 10));
  }
}

/** The same handshake straight to guacd (TCP → select → … → connect → ready → first `sync`), ms. */
async function rawHandshake(addr: GuacdAddress, recDir: string): Promise<number> {
  const t0 = performance.now();
  const conn = await openGuacd(addr, {
    protocol: 'rdp', computerName: 'bench01', required: new Set(), size: { width: 1280, height: 720, dpi: 96 },
    params: {
      hostname: target.host, port: String(target.port), username: target.username, password: target.password, domain: '',
      security: target.security, 'ignore-cert': 'true', 'recording-path': recDir, 'recording-name': `raw-${Date.now()}.guac`, 'create-recording-path': 'true',
    },
  });
  try {
    return await withDeadline(
      new Promise<number>((resolve, reject) => {
        conn.start(
          (batch) => {
            for (const ins of batch) {
              if (ins[0] === 'sync') return resolve(performance.now() - t0);
              if (ins[0] === 'error') return reject(new Error(`guacd error: ${ins.slice(1).join(' ')}`));
            }
          },
          () => reject(new Error('guacd closed before the first frame')),
        );
      }),
      'raw',
    );
  } finally {
    conn.close();
  }
}

const recDir = mkdtempSync(join(tmpdir(), 'jg-bench-rdp-'));
const peer = real ? null : await startGuacdPeer();
const addr: GuacdAddress = real ? { host: real, port: Number(process.env.GUACD_PORT ?? 4822) } : { host: peer!.host, port: peer!.port };
const computer: Computer = {
  id: 'c1', organizationId: 'o1', name: 'bench01', address: target.host, protocols: ['rdp'], sshPort: 22, rdpPort: target.port,
  domainStore: 'ad', localStore: null, jit: {}, policy: { rdpSecurity: target.security, rdpIgnoreCert: true }, restricted: false,
};
const creds: Credentials = { username: target.username, password: new Secret(target.password) };
const brokers = { overlap: new TimedBroker(computer, creds, true), sequential: new TimedBroker(computer, creds, false) };
const apps = {
  overlap: await startRdpTestApp({ broker: brokers.overlap, recorder: new SlotRecorder(recDir), guacd: addr }),
  sequential: await startRdpTestApp({ broker: brokers.sequential, recorder: new SlotRecorder(recDir), guacd: addr }),
};
try {
  console.error(`rdp-first-frame: ${real ? `real guacd at ${addr.host}:${addr.port}, RDP target ${target.host}:${target.port}` : 'Guacamole-protocol test peer (no GUACD_HOST): jitgate overhead up to the handshake, no FreeRDP'}; ${RUNS} runs, provisioning held ${PROVISION_MS} ms`);
  // Warm-up: capability probe cached, code paths loaded.
  await throughJitgate(apps.overlap.wsUrl, brokers.overlap);
  await throughJitgate(apps.sequential.wsUrl, brokers.sequential);
  await rawHandshake(addr, recDir);
  const samples = { raw: [] as number[], overlap: [] as number[], sequential: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    // Interleaved, so load changes hit all three alike.
    samples.raw.push(await rawHandshake(addr, recDir));
    samples.overlap.push(await throughJitgate(apps.overlap.wsUrl, brokers.overlap));
    samples.sequential.push(await throughJitgate(apps.sequential.wsUrl, brokers.sequential));
    console.error(`run ${i + 1}/${RUNS}`);
  }
  const raw = summarize(samples.raw);
  const rows = (
    [
      ['raw guacd handshake (TCP → first sync)', samples.raw],
      ['jitgate, handshake during provisioning', samples.overlap],
      ['jitgate, handshake after provisioning', samples.sequential],
    ] as const
  ).map(([name, s]) => {
    const x = summarize(s);
    return [name, ms(x.p50), ms(x.p95), ms(x.mean), `${(x.p50 / raw.p50).toFixed(2)}x`];
  });
  console.log(`\n${real ? `Real guacd ${addr.host}:${addr.port}` : 'Test peer (set GUACD_HOST for a real guacd)'}, websocket open → first sync, ms, provisioning ${PROVISION_MS} ms:\n`);
  console.log(formatTable(['path', 'p50', 'p95', 'mean', 'p50 / raw'], rows));
  console.log(`\nratio jitgate / raw guacd (p50): ${(summarize(samples.overlap).p50 / raw.p50).toFixed(2)}x (goal ≤ 1.15x from click, which adds the page and app load)`);
} finally {
  await apps.overlap.app.close();
  await apps.sequential.app.close();
  await peer?.close();
  rmSync(recDir, { recursive: true, force: true });
}
