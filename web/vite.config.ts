import { defineConfig, type UserConfig } from 'vite';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('.', import.meta.url));

/**
 * The browser app: preact with JSX compiled by esbuild (no framework plugin),
 * everything bundled from node_modules — no CDN, no external fonts — so the
 * gateway can serve it under a strict Content-Security-Policy.
 */
export const webConfig: UserConfig = {
  root,
  base: '/',
  logLevel: 'warn',
  clearScreen: false,
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    // The polyfill would be an inline script, which the CSP forbids; every supported browser has modulepreload.
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 1500,
    assetsInlineLimit: 0,
  },
};

export default defineConfig(webConfig);
