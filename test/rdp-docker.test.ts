import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../config/load.js';
import { DEFAULT_DRIVE_ROOT } from '../gateway/rdp/rdp-tunnel.js';

/**
 * docker/compose.yaml and docker/Dockerfile, checked by structure: there is
 * no Docker engine here, so nothing is run. What can be checked is checked:
 * services, dependencies, the recordings volume shared by guacd and the
 * gateway at paths that match the config, and that the gateway's
 * environment loads through the real config loader.
 */
const repo = fileURLToPath(new URL('..', import.meta.url));

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  networks?: string[];
  secrets?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}
interface Compose {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
  networks: Record<string, { internal?: boolean }>;
  secrets: Record<string, { file: string }>;
}

const compose = parse(readFileSync(join(repo, 'docker/compose.yaml'), 'utf8'), { merge: true }) as Compose;
const svc = (name: string): Service => {
  const s = compose.services[name];
  if (!s) throw new Error(`service ${name} missing`);
  return s;
};
/** `volume:/path` → path, for named volumes. */
const mountOf = (s: Service, volume: string): string | undefined => s.volumes?.find((v) => v.startsWith(`${volume}:`))?.split(':')[1];

describe('docker/compose.yaml', () => {
  it('runs gateway, worker, Redis, PostgreSQL and the official guacd image', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['gateway', 'guacd', 'postgres', 'redis', 'worker']);
    expect(svc('guacd').image).toMatch(/^guacamole\/guacd:1\.6\.\d+$/); // cert-fingerprints (certificate pinning) exists from guacd 1.6.0
    expect(svc('redis').image).toMatch(/^redis:/);
    expect(svc('postgres').image).toMatch(/^postgres:/);
    for (const s of ['gateway', 'worker']) {
      expect(svc(s).build).toEqual({ context: '..', dockerfile: 'docker/Dockerfile' });
      expect(svc(s).environment?.JITGATE_REDIS__URL).toBe('redis://redis:6379');
    }
    expect(svc('gateway').command).toEqual(['serve', '--role', 'gateway']);
    expect(svc('worker').command).toEqual(['serve', '--role', 'worker']);
  });

  it('starts the gateway after healthy PostgreSQL, Redis and guacd; the worker after PostgreSQL and Redis', () => {
    expect(svc('gateway').depends_on).toEqual({
      postgres: { condition: 'service_healthy' }, redis: { condition: 'service_healthy' }, guacd: { condition: 'service_healthy' },
    });
    expect(svc('worker').depends_on).toEqual({ postgres: { condition: 'service_healthy' }, redis: { condition: 'service_healthy' } });
    for (const dep of ['postgres', 'redis', 'guacd']) expect(svc(dep).healthcheck?.test.length).toBeGreaterThan(0);
  });

  it('shares the recordings volume between guacd (writer) and the gateway (indexer) at the configured paths', () => {
    const gw = svc('gateway');
    const gatewayPath = mountOf(gw, 'recordings');
    const guacdPath = mountOf(svc('guacd'), 'recordings');
    expect(gatewayPath).toBeDefined();
    expect(guacdPath).toBeDefined();
    expect(gw.environment?.JITGATE_RECORDINGS__DIR).toBe(gatewayPath);
    expect(gw.environment?.JITGATE_GUACD__RECORDING_DIR).toBe(guacdPath);
    expect(gw.environment?.JITGATE_GUACD__HOST).toBe('guacd');
    // Drives redirected by guacd (only when a computer allows them) live in their own volume.
    expect(mountOf(svc('guacd'), 'drives')).toBe(DEFAULT_DRIVE_ROOT);
    // Every named volume used is declared.
    for (const [name, s] of Object.entries(compose.services)) {
      for (const v of s.volumes ?? []) {
        const vol = v.split(':')[0] as string;
        expect(compose.volumes, `${name} uses ${vol}`).toHaveProperty(vol);
      }
    }
  });

  it('keeps guacd, PostgreSQL and Redis off the published ports, on an internal network', () => {
    for (const s of ['guacd', 'postgres', 'redis', 'worker']) {
      expect(svc(s).ports).toBeUndefined();
      expect(svc(s).networks).toEqual(['backend']);
    }
    expect(compose.networks.backend?.internal).toBe(true);
    expect(svc('gateway').ports).toEqual(['127.0.0.1:8080:8080']);
    for (const s of Object.values(compose.services)) {
      for (const sec of s.secrets ?? []) expect(compose.secrets).toHaveProperty(sec);
    }
    // No secret values inline: the keys and the database URL come from secret files.
    const env = svc('gateway').environment ?? {};
    for (const k of ['JITGATE_DATABASE__URL', 'JITGATE_SECRETS__KEY', 'JITGATE_RECORDINGS__SIGNING_KEY']) expect(env[k]).toMatch(/^file:\/run\/secrets\//);
  });

  it("the gateway's environment loads through the real config loader", () => {
    const dir = mkdtempSync(join(tmpdir(), 'jitgate-compose-'));
    try {
      const secretValues: Record<string, string> = {
        database_url: 'postgres://jitgate:pw@postgres:5432/jitgate',
        jitgate_secret_key: Buffer.alloc(32, 7).toString('base64'),
        recording_signing_key: Buffer.alloc(32, 9).toString('base64'),
      };
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(svc('gateway').environment ?? {})) {
        const m = /^file:\/run\/secrets\/(\w+)$/.exec(v);
        if (m) {
          const f = join(dir, m[1] as string);
          writeFileSync(f, secretValues[m[1] as string] ?? 'x');
          env[k] = `file:${f}`;
        } else env[k] = v;
      }
      // An empty config file: everything comes from the environment, as in the container.
      writeFileSync(join(dir, 'jitgate.yaml'), '{}\n');
      const cfg = loadConfig({ env, file: join(dir, 'jitgate.yaml') });
      expect(cfg.guacd).toMatchObject({ host: 'guacd', port: 4822, recordingDir: '/recordings' });
      expect(cfg.server).toMatchObject({ host: '0.0.0.0', port: 8080 });
      expect(cfg.redis.url?.reveal()).toBe('redis://redis:6379');
      expect(cfg.database.url?.reveal()).toBe(secretValues.database_url);
      expect(cfg.recordings.dir).toBe('/var/lib/jitgate/recordings');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('docker/Dockerfile', () => {
  const text = readFileSync(join(repo, 'docker/Dockerfile'), 'utf8');
  it('builds on node:20-bookworm-slim with npm ci and the build, and runs the jitgate command', () => {
    const froms = [...text.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(froms.length).toBeGreaterThan(0);
    expect(froms.every((f) => f === 'node:20-bookworm-slim')).toBe(true);
    expect(text).toMatch(/^RUN npm ci\b/m);
    expect(text).toMatch(/npm run build/);
    expect(text).toMatch(/^ENTRYPOINT \["node", "bin\/jitgate.js"\]$/m);
    expect(text).toMatch(/^USER node$/m);
  });
  it('copies only paths that exist in the repository', () => {
    const sources = [...text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => (m[1] as string).split(/\s+/));
    for (const s of sources) if (s !== '.') expect(existsSync(join(repo, s)), s).toBe(true);
    expect(existsSync(join(repo, 'web/build.ts'))).toBe(true);
  });
});
