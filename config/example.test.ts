import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { loadConfig } from './load.js';
import { buildConfigSchema } from './schema.js';

const file = fileURLToPath(new URL('./jitgate.example.yaml', import.meta.url));

describe('config/jitgate.example.yaml', () => {
  it('is a valid configuration', () => {
    const cfg = loadConfig({ env: {}, file });
    expect(cfg.server.port).toBe(8080);
  });

  it('its commented account store examples validate (secrets and pins stand in), owners and containers included', () => {
    const text = readFileSync(file, 'utf8');
    const block = text.slice(text.indexOf('accountStores: []\n# Examples:\n') + 'accountStores: []\n# Examples:\n'.length).split('\n');
    const commented = block.filter((l) => l.startsWith('#  ') || l.startsWith('#    ')).map((l) => l.slice(1));
    const stores = parse(
      commented.join('\n').replace(/\b(env|file):\S+/g, 'stand-in').replace('SHA256:...', `SHA256:${'A'.repeat(43)}`),
    ) as unknown[];
    const { accountStoreSchema } = buildConfigSchema({});
    const parsed = stores.map((s) => accountStoreSchema.parse(s));
    expect(parsed.map((s) => [s.name, s.organizations ?? null])).toEqual([['corp-ad', ['Corp']], ['web01-ssh', ['Corp', 'Beta']], ['win-local', null]]);
    expect(parsed[0]).toMatchObject({ allowedContainers: ['OU=JIT,DC=corp,DC=example'] });
  });
});
