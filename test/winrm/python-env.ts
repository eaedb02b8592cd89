import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Debian's interpreter (not the pyenv one on PATH): python3-winrm / python3-ntlm-auth live there. */
export const SYSTEM_PYTHON = '/usr/bin/python3';

export function driverPath(name: string): string {
  return fileURLToPath(new URL(name, import.meta.url));
}

/** Why the python cross-checks cannot run here, or null when they can. */
export function pythonUnavailable(modules: string[]): string | null {
  const r = spawnSync(SYSTEM_PYTHON, ['-c', modules.map((m) => `import ${m}`).join(';')], {
    encoding: 'utf8',
    env: pythonEnv(),
  });
  if (r.error) return `${SYSTEM_PYTHON} not found (apt packages in scripts/deps/winrm.txt)`;
  if (r.status !== 0) return `python modules ${modules.join(', ')} missing (apt-get install $(cat scripts/deps/winrm.txt))`;
  return null;
}

/** Environment for the drivers: OpenSSL's legacy provider on, for MD4 (see openssl-legacy.cnf). */
export function pythonEnv(): NodeJS.ProcessEnv {
  return { ...process.env, OPENSSL_CONF: driverPath('openssl-legacy.cnf'), PYTHONDONTWRITEBYTECODE: '1' };
}

/**
 * Run a driver with JSON on stdin, parse its JSON stdout. Asynchronous on
 * purpose: the test servers the drivers talk to live in this process.
 */
export function runPythonJson<T>(script: string, input: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      SYSTEM_PYTHON,
      [driverPath(script)],
      { env: pythonEnv(), timeout: 45_000, maxBuffer: 8 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`${script} failed: ${err.message}\n${stderr}`));
          return;
        }
        try {
          resolve(JSON.parse(stdout) as T);
        } catch (e) {
          reject(new Error(`${script} printed no JSON: ${String(e)}\n${stdout}\n${stderr}`));
        }
      },
    );
    child.stdin?.on('error', () => undefined); // a driver that dies early closes the pipe
    child.stdin?.end(JSON.stringify(input));
  });
}
