import { build } from 'vite';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { webConfig } from './vite.config.js';

/** Directory of the built web app (served by gateway/web-static.ts). */
export const WEB_DIST = fileURLToPath(new URL('./dist', import.meta.url));

/**
 * Build the web app with Vite's JS API (no npm script needed); returns the
 * dist directory. `outDir` (absolute) lets tests build into a directory of
 * their own instead of the shared web/dist.
 */
export async function buildWeb(outDir: string = WEB_DIST): Promise<string> {
  await build({ ...webConfig, configFile: false, build: { ...webConfig.build, outDir, emptyOutDir: true } });
  return outDir;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === join(process.argv[1])) {
  const started = Date.now();
  buildWeb().then(
    (dir) => console.log(`web app built in ${Date.now() - started} ms: ${dir}`),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
