import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import type { Computer } from '../core/domain.js';
import { silentLogger } from '../core/logging.js';
import { Secret } from '../core/secret.js';
import { SearchIndexer } from '../recorder/search-index.js';
import { createRecorder, type Recorder } from '../recorder/session-recorder.js';
import { startSignedInApi, type SignedInApi, type SignedInClient } from './fixtures/signed-in-api.js';
import { waitFor } from './e2e/web-rig.js';
import { databaseFactories } from './harness/databases.js';
import { FixedBroker, startGuacdPeer, startRdpTestApp, type GuacdPeer } from './harness/guacd-peer.js';

/**
 * Issue 19, RDP: what a person typed in a remote desktop session, and the
 * clipboard text sent to them, found by search and listed by the session
 * timeline. The session runs through the real tunnel to the Guacamole
 * protocol peer, which writes the recording as guacd does (with
 * `recording-include-keys`, the user's key events go into the file); the
 * real recorder seals it and the indexer the search-index job runs reads
 * it. Search and timeline are asked through the real sign-in, by people of
 * two organizations.
 */

type Hit = { sessionId: string; recordingId: string; protocol: string; kind: string; line: string; atMs: number };
type Timeline = { recordings: { id: string; kind: string; indexed: boolean }[]; entries: { recordingId: string; atMs: number; kind: string; text: string; masked: boolean }[] };

const CLIP = (t: string) => `clip${t} copied from the desktop`;

/** A browser's key instruction (guacamole-common-js counts lengths in UTF-16 units): press and release. */
function keyStrokes(keysyms: number[]): string {
  const k = (sym: number, pressed: 0 | 1) => `3.key,${String(sym).length}.${sym},1.${pressed};`;
  return keysyms.map((s) => k(s, 1) + k(s, 0)).join('');
}
const ascii = (text: string) => [...text].map((c) => c.charCodeAt(0));
const CTRL = 0xffe3;
const ENTER = 0xff0d;
const BACKSPACE = 0xff08;

for (const f of databaseFactories()) {
  describe.skipIf(f.skip !== '')(`RDP typed text and clipboard in search (${f.label})`, () => {
    let db: Database;
    let dir: string;
    let rec: Recorder;
    let api: SignedInApi;
    let peer: GuacdPeer;
    const sealed: string[] = [];
    const t = randomBytes(3).toString('hex');
    const needle = `needle${t}`;
    const quiet = `quiet${t}`;
    let owner: SignedInClient, auditorA: SignedInClient, auditorB: SignedInClient, otherTech: SignedInClient;
    const org = { a: '', b: '' };
    const ran = { keys: { sessionId: '', recordingId: '' }, noKeys: { sessionId: '', recordingId: '' } };

    /** One RDP session through the tunnel: the person types `typed` (a `x` corrected with Backspace, then Enter) and presses Ctrl+C. */
    async function rdpSession(recordInput: boolean, typed: string): Promise<{ sessionId: string; recordingId: string }> {
      const computer: Computer = {
        id: randomUUID(), organizationId: org.a, name: `win-${t}`, address: '10.9.8.7', protocols: ['rdp'], sshPort: 22, rdpPort: 3389,
        domainStore: 'ad', localStore: null, jit: {}, policy: { recordInput, clipboard: 'both' }, restricted: false,
      };
      const broker = new FixedBroker(computer, { username: `alice_${t}`, password: new Secret('pw'), domain: 'CORP' });
      broker.onSession = async (s) => {
        await db.query(
          `INSERT INTO sessions (id, person_id, person_login, computer_name, organization_id, protocol, account_type, account_name, state, lease_expires_at, started_at)
           VALUES ($1, $2, $3, $4, $5, 'rdp', 'domain', $6, 'active', now() + interval '1 hour', now())`,
          [s.id, owner.id, owner.login, computer.name, org.a, `alice_${t}`],
        );
      };
      const app = await startRdpTestApp({ broker, recorder: rec, guacd: { host: peer.host, port: peer.port } });
      const before = peer.connections.length;
      try {
        const ws = new WebSocket(`${app.wsUrl}?computer=${computer.name}&csrf=good`, 'guacamole');
        const frames: string[] = [];
        ws.on('message', (d: Buffer) => frames.push(d.toString('utf8')));
        const conn = await waitFor('guacd connected', 30_000, () => (peer.connections[before]?.recordingFile ? peer.connections[before] : undefined));
        await waitFor('the desktop drawn', 30_000, () => (frames.some((x) => x.includes('4.sync,')) ? true : undefined));
        expect(conn.args['recording-include-keys']).toBe(recordInput ? 'true' : 'false');
        const strokes = [...ascii(typed.slice(0, 4)), ascii('x')[0]!, BACKSPACE, ...ascii(typed.slice(4)), ENTER];
        ws.send(keyStrokes(strokes));
        ws.send(`3.key,${String(CTRL).length}.${CTRL},1.1;` + keyStrokes(ascii('c')) + `3.key,${String(CTRL).length}.${CTRL},1.0;`);
        const sent = strokes.length * 2 + 4;
        await waitFor('every key event at guacd', 30_000, () => (conn.received.filter((i) => i[0] === 'key').length === sent ? true : undefined));
        ws.send('10.disconnect;');
        const opened = await waitFor('the session ended', 30_000, () => (broker.opened[0]?.ended.length === 1 ? broker.opened[0] : undefined));
        const recordingId = await waitFor('the recording sealed', 30_000, async () =>
          (await db.query<{ id: string }>('SELECT id FROM recordings WHERE session_id = $1 AND ended_at IS NOT NULL', [opened.session.id]))[0]?.id,
        );
        await waitFor('handed to indexing', 30_000, () => (sealed.includes(recordingId) ? true : undefined));
        // The file is guacd's: keys in it only with recording-include-keys.
        expect(readFileSync(conn.recordingFile!, 'utf8').includes('3.key,')).toBe(recordInput);
        return { sessionId: opened.session.id, recordingId };
      } finally {
        await app.app.close();
      }
    }

    beforeAll(async () => {
      db = await f.open();
      dir = mkdtempSync(join(tmpdir(), 'jitgate-rdp-search-'));
      rec = createRecorder({ db, audit: new AuditLog(db), log: silentLogger(), dir: join(dir, 'recordings'), signingKey: randomBytes(32), onSealed: async (id) => void sealed.push(id) });
      api = await startSignedInApi(db);
      org.a = (await api.org('acme')).id;
      org.b = (await api.org('beta')).id;
      // One after another: the fixture's TOTP clock steps per sign-in.
      owner = await api.person('tech', 'technician', org.a);
      otherTech = await api.person('tech2', 'technician', org.a);
      auditorA = await api.person('aud-a', 'auditor', org.a);
      auditorB = await api.person('aud-b', 'auditor', org.b);
      // Clipboard text the desktop sends the person (a Guacamole clipboard stream), written into the recording like all output.
      peer = await startGuacdPeer({
        writeRecordings: true,
        extra: [['clipboard', '7', 'text/plain'], ['blob', '7', Buffer.from(CLIP(t)).toString('base64')], ['end', '7']],
      });
      ran.keys = await rdpSession(true, `net user ${needle} /add`);
      ran.noKeys = await rdpSession(false, `net user ${quiet} /add`);
      const indexer = new SearchIndexer({ db, store: rec.store, log: silentLogger() });
      for (const id of sealed) await indexer.index(id);
    }, 180_000);

    afterAll(async () => {
      await peer?.close();
      await api?.close();
      await db?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const search = async (c: SignedInClient, q: string): Promise<Hit[]> => {
      const r = await c.get(`/search?q=${encodeURIComponent(q)}`);
      expect(r.statusCode, r.body).toBe(200);
      return (r.json() as { hits: Hit[] }).hits;
    };

    it('finds what was typed in the remote desktop (Backspace applied) at the moment typing began', async () => {
      const hits = await search(auditorA, `"${needle} /add"`);
      expect(hits).toHaveLength(1);
      expect(hits[0]).toMatchObject({ sessionId: ran.keys.sessionId, recordingId: ran.keys.recordingId, protocol: 'rdp', kind: 'keys', line: `net user ${needle} /add` });
      expect(hits[0]!.atMs).toBeGreaterThanOrEqual(0);
      // The corrected typo is not in the text.
      expect(await search(auditorA, `netx`)).toEqual([]);
    });

    it('finds clipboard text sent to the person', async () => {
      const hits = await search(auditorA, `clip${t}`);
      expect(hits.map((h) => [h.sessionId, h.kind, h.line]).sort()).toEqual(
        [[ran.keys.sessionId, 'clipboard', CLIP(t)], [ran.noKeys.sessionId, 'clipboard', CLIP(t)]].sort(),
      );
    });

    it('indexes nothing typed when the computer does not record input (no key events in the recording)', async () => {
      expect(await search(auditorA, quiet)).toEqual([]);
      expect((await db.query('SELECT 1 FROM search_lines WHERE recording_id = $1 AND kind IN ($2, $3)', [ran.noKeys.recordingId, 'keys', 'key'])).length).toBe(0);
    });

    it('authorization as for recordings: the session\'s own technician and its organization\'s auditor find it; another organization\'s auditor and another technician do not', async () => {
      expect((await search(owner, needle)).map((h) => h.sessionId)).toEqual([ran.keys.sessionId]);
      expect(await search(otherTech, needle)).toEqual([]);
      expect(await search(auditorB, needle)).toEqual([]);
      expect(await search(auditorB, `clip${t}`)).toEqual([]);
      expect((await auditorB.get(`/sessions/${ran.keys.sessionId}/timeline`)).statusCode).toBe(404);
      expect((await otherTech.get(`/sessions/${ran.keys.sessionId}/timeline`)).statusCode).toBe(404);
    });

    it('the session timeline lists the clipboard text, the typed line and the key combination, in order', async () => {
      const r = await auditorA.get(`/sessions/${ran.keys.sessionId}/timeline`);
      expect(r.statusCode, r.body).toBe(200);
      const tl = r.json() as Timeline;
      expect(tl.recordings).toEqual([expect.objectContaining({ id: ran.keys.recordingId, kind: 'rdp', indexed: true })]);
      expect(tl.entries.map((e) => [e.kind, e.text, e.masked])).toEqual([
        ['clipboard', CLIP(t), false],
        ['keys', `net user ${needle} /add`, false],
        ['key', 'Ctrl+C', false],
      ]);
      const [clip, typed, combo] = tl.entries;
      expect(clip!.atMs).toBeLessThanOrEqual(typed!.atMs);
      expect(typed!.atMs).toBeLessThanOrEqual(combo!.atMs);
      expect(tl.entries.every((e) => e.recordingId === ran.keys.recordingId)).toBe(true);
    });
  });
}
