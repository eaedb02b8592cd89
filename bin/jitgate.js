#!/usr/bin/env node
// Entry for the installed `jitgate` command: runs the compiled CLI.
import('../dist/app/cli.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    process.stderr.write('jitgate: not built yet; run `npm run build` first\n');
    process.exit(1);
  }
  throw err;
});
