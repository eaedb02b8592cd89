/**
 * The test server against the real pywinrm (Debian python3-winrm): if
 * pywinrm can authenticate, seal, run commands and read their output, the
 * server speaks WS-Man/NTLM the way Windows does, and testing jitgate's
 * client against it means something.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCOUNT_SCRIPT_ARGS, POWERSHELL, encodeScriptInput } from '../../provisioner/winrm/scripts.js';
import { pythonUnavailable, runPythonJson } from './python-env.js';
import { WsmanTestServer } from './wsman-test-server.js';

const missing = pythonUnavailable(['winrm', 'requests_ntlm', 'ntlm_auth']);
if (missing) console.warn(`skipping pywinrm interop: ${missing}`);

interface DriverOut {
  ipconfig: { code: number; stdout: string; stderr: string };
  computername: { code: number; stdout: string };
  error: { code: number; stderr: string };
  account?: { code: number; result: { ok: boolean; error?: string } };
}

const USERS = { jitsvc: 'Svc!Passw0rd-1' };

describe.skipIf(missing !== null)('pywinrm against the WS-Man test server', () => {
  let server: WsmanTestServer;
  beforeAll(async () => {
    // Basic over plain HTTP only because this server is told AllowUnencrypted (test mode).
    server = await new WsmanTestServer({ users: USERS, basic: true, ntlm: true, allowUnencrypted: true }).start();
  });
  afterAll(async () => {
    await server?.stop();
  });

  const drive = (transport: 'basic' | 'ntlm', encryption: string, stdinFor?: string): Promise<DriverOut> =>
    runPythonJson<DriverOut>('pywinrm-driver.py', {
      endpoint: server.url,
      user: 'jitsvc',
      password: USERS.jitsvc,
      transport,
      encryption,
      account_script_args: [POWERSHELL, ...ACCOUNT_SCRIPT_ARGS],
      account_stdin: stdinFor
        ? encodeScriptInput({
            v: 1,
            op: 'create',
            markerPrefix: 'jitgate:',
            groups: {},
            name: stdinFor,
            password: 'Py!Created-Pw9',
            marker: 'jitgate:test:py',
            expiresMs: Date.parse('2030-01-01T00:00:00Z'),
          }).toString('base64')
        : null,
    });

  for (const [transport, encryption] of [
    ['basic', 'never'],
    ['ntlm', 'always'],
  ] as const) {
    it(`${transport} (encryption ${encryption}): run_cmd, run_ps, CLIXML errors, the account script with stdin`, async () => {
      const before = server.seen.length;
      const name = `py_${transport}`;
      const out = await drive(transport, encryption, name);
      expect(out.ipconfig.code).toBe(0);
      expect(out.ipconfig.stdout).toContain('Windows IP Configuration');
      expect(out.computername.stdout.trim()).toBe('WINTEST');
      expect(out.error.code).toBe(1);
      expect(out.error.stderr).toContain('boom');
      expect(out.account?.result).toEqual({ ok: true });
      expect(server.model.userBy(name)?.description).toBe('jitgate:test:py');

      const seen = server.seen.slice(before);
      expect(seen.map((s) => s.action)).toEqual(expect.arrayContaining(['Create', 'Command', 'Send', 'Receive', 'Signal', 'Delete']));
      for (const s of seen) {
        expect(s.auth).toBe(transport);
        expect(s.user).toBe('jitsvc');
        expect(s.sealed).toBe(transport === 'ntlm');
      }
      // The account script travelled with a constant command line; the data came on stdin.
      const cmdLine = seen.find((s) => s.commandLine?.includes('-EncodedCommand'))?.commandLine ?? '';
      expect(cmdLine).not.toContain(name);
    });
  }

  it('pywinrm retries through w:TimedOut on Receive', async () => {
    server.inject.timedOutReceives = 2;
    try {
      const out = await drive('ntlm', 'always');
      expect(out.ipconfig.stdout).toContain('Windows IP Configuration');
    } finally {
      server.inject.timedOutReceives = 0;
    }
  });
});
