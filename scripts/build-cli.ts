import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Rollup } from 'vite';

/**
 * Bundle the CLI entry (`app/cli.ts` → `dist/app/cli.js`, over the file tsc wrote) so that a
 * one-shot command starts in ≤ 0.3 s on PostgreSQL (issue 12). Node 20's ESM loader spends
 * ~0.5 ms of CPU per module file: zod alone is 95 files (its barrel loads every locale), yaml 73
 * and commander 9, about 60% of what `accounts list` loaded. Bundled, they are one parse.
 *
 * - Only pure-JS packages are bundled. Native addons (@node-rs/argon2, ssh2's cpu-features),
 *   packages that load files next to themselves (PGlite's WASM, pino's worker transports) and
 *   everything else stay in node_modules and are imported as before.
 * - The commands' lazy `import()`s become chunks (`cli.<name>-<hash>.js`) beside cli.js, in
 *   dist/app/ like the files tsc emits, so paths relative to `import.meta.url` (app/version.ts,
 *   app/main.ts, the demo scripts) resolve the same. `serve` loads its chunks only when it runs.
 * - Vite (already used for the web app) does the bundling: no bundler of our own to depend on.
 *
 * Run after `tsc -p tsconfig.build.json` (npm run build does both); `outDir` (absolute) lets
 * test/cli-startup.test.ts build a copy of its own.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CLI_DIST = join(ROOT, 'dist/app');

/** Bundled into cli.js: pure JS, many small modules, loaded by every command. */
export const BUNDLED_PACKAGES = ['zod', 'yaml', 'commander'];

const CHUNK_PREFIX = 'cli.';

export async function buildCli(outDir: string = CLI_DIST): Promise<string> {
  // Chunk names carry a content hash: drop the previous build's so they do not pile up.
  try {
    for (const f of readdirSync(outDir)) if (f.startsWith(CHUNK_PREFIX) && /-[\w-]{8}\.js(\.map)?$/.test(f)) rmSync(join(outDir, f));
  } catch {
    // no previous build
  }
  await build({
    configFile: false,
    root: ROOT,
    // Vite's own reporter lists every module that is both imported and lazily imported (harmless here).
    logLevel: 'error',
    ssr: { target: 'node', noExternal: BUNDLED_PACKAGES },
    build: {
      ssr: join(ROOT, 'app/cli.ts'),
      outDir,
      emptyOutDir: false, // dist/app also holds what tsc emitted
      target: 'node20',
      minify: false,
      sourcemap: true,
      rollupOptions: {
        output: { format: 'esm', entryFileNames: 'cli.js', chunkFileNames: `${CHUNK_PREFIX}[name]-[hash].js` },
        onwarn(warning: Rollup.RollupLog, warn: (w: Rollup.RollupLog) => void) {
          // zod's sources carry `@__PURE__` comments placed where Rollup cannot use them
          if (warning.code === 'INVALID_ANNOTATION') return;
          warn(warning);
        },
      },
    },
  });
  return outDir;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === join(process.argv[1])) {
  const started = Date.now();
  buildCli().then(
    (dir) => console.log(`CLI bundled in ${Date.now() - started} ms: ${join(dir, 'cli.js')}`),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
