import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { loadConfig } from './load.js';

describe('config/jitgate.example.yaml', () => {
  it('is a valid configuration', () => {
    const cfg = loadConfig({ env: {}, file: fileURLToPath(new URL('./jitgate.example.yaml', import.meta.url)) });
    expect(cfg.server.port).toBe(8080);
  });
});
