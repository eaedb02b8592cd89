/**
 * The client side of bench/ssh-gateway.bench.ts, in its own process (forked
 * with IPC) so that the gateway under test does not share an event loop or a
 * heap with the clients measuring it. Each message runs one measurement and
 * answers with its numbers.
 */
import { generate } from 'otplib';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';

export type Target =
  | { kind: 'direct'; host: string; port: number; username: string; password: string }
  | { kind: 'gateway'; port: number; username: string; privateKey: string; totpSecret: string };

export type Request =
  | { op: 'download'; target: Target; bytes: number }
  | { op: 'keystrokes'; target: Target; n: number }
  | { op: 'start'; target: Target; n: number }
  | { op: 'idle-open'; target: Target; count: number; parallel: number }
  | { op: 'idle-close' }
  | { op: 'exit' };

async function connect(t: Target): Promise<Client> {
  const code = t.kind === 'gateway' ? await generate({ secret: t.totpSecret }) : '';
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.once('ready', () => {
      // Like OpenSSH's client for interactive sessions; both paths measured the same way.
      c.setNoDelay(true);
      resolve(c);
    });
    c.once('error', (err) => {
      c.destroy();
      reject(err);
    });
    const base: ConnectConfig = { host: t.kind === 'direct' ? t.host : '127.0.0.1', port: t.port, username: t.username, readyTimeout: 120_000 };
    if (t.kind === 'direct') c.connect({ ...base, password: t.password, tryKeyboard: false });
    else {
      c.connect({
        ...base,
        authHandler: [
          { type: 'publickey', username: t.username, key: t.privateKey },
          { type: 'keyboard-interactive', username: t.username, prompt: (_n: string, _i: string, _l: string, p: unknown[], finish: (a: string[]) => void) => finish(p.map(() => code)) },
        ] as never,
      });
    }
  });
}

function shell(c: Client): Promise<ClientChannel> {
  return new Promise((resolve, reject) => c.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, ch) => (err ? reject(err) : resolve(ch))));
}

/** Resolves when the accumulated output matches `re`. */
function waitFor(ch: ClientChannel, re: RegExp, timeoutMs = 120_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      ch.removeListener('data', on);
      reject(new Error(`timeout waiting for ${re}`));
    }, timeoutMs);
    const on = (d: Buffer): void => {
      buf = (buf + d.toString('latin1')).slice(-4096);
      if (re.test(buf)) {
        clearTimeout(timer);
        ch.removeListener('data', on);
        resolve();
      }
    };
    ch.on('data', on);
  });
}

const PROMPT = /[$#] $/;

async function download(t: Target, bytes: number): Promise<{ ms: number; bytes: number; cpuMs: number }> {
  const c = await connect(t);
  const cpu0 = process.cpuUsage();
  try {
    return await new Promise((resolve, reject) => {
      const t0 = performance.now();
      c.exec(`head -c ${bytes} /dev/zero`, (err, ch) => {
        if (err) return reject(err);
        let n = 0;
        ch.on('data', (d: Buffer) => (n += d.length));
        ch.stderr.resume();
        ch.on('close', () => {
          const cpu = process.cpuUsage(cpu0);
          resolve({ ms: performance.now() - t0, bytes: n, cpuMs: (cpu.user + cpu.system) / 1000 });
        });
      });
    });
  } finally {
    c.end();
  }
}

async function keystrokes(t: Target, n: number): Promise<number[]> {
  const c = await connect(t);
  try {
    const ch = await shell(c);
    await waitFor(ch, PROMPT);
    // `cat` in cooked mode: the remote pty echoes each key at once.
    ch.write('cat\n');
    await new Promise((r) => setTimeout(r, 300));
    const samples: number[] = [];
    for (let i = 0; i < n + 20; i++) {
      const t0 = performance.now();
      const echoed = new Promise<void>((resolve) => ch.once('data', () => resolve()));
      ch.write('x');
      await echoed;
      if (i >= 20) samples.push(performance.now() - t0);
    }
    ch.write('\x03');
    return samples;
  } finally {
    c.end();
  }
}

async function starts(t: Target, n: number): Promise<{ total: number[]; afterAuth: number[] }> {
  const total: number[] = [];
  const afterAuth: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const c = await connect(t);
    const t1 = performance.now();
    const ch = await shell(c);
    await waitFor(ch, PROMPT);
    const t2 = performance.now();
    total.push(t2 - t0);
    afterAuth.push(t2 - t1);
    c.end();
    await new Promise<void>((r) => c.once('close', () => r()));
  }
  return { total, afterAuth };
}

const idle: Client[] = [];

async function idleOpen(t: Target, count: number, parallel: number): Promise<{ opened: number }> {
  let next = 0;
  const one = async (): Promise<void> => {
    while (next < count) {
      next++;
      const c = await connect(t);
      idle.push(c);
      const ch = await shell(c);
      await waitFor(ch, PROMPT);
    }
  };
  await Promise.all(Array.from({ length: parallel }, one));
  return { opened: idle.length };
}

async function idleClose(): Promise<{ closed: number }> {
  const n = idle.length;
  await Promise.all(
    idle.splice(0).map(
      (c) =>
        new Promise<void>((r) => {
          c.once('close', () => r());
          c.end();
        }),
    ),
  );
  return { closed: n };
}

process.on('message', (msg: Request) => {
  const run = async (): Promise<unknown> => {
    switch (msg.op) {
      case 'download': return download(msg.target, msg.bytes);
      case 'keystrokes': return keystrokes(msg.target, msg.n);
      case 'start': return starts(msg.target, msg.n);
      case 'idle-open': return idleOpen(msg.target, msg.count, msg.parallel);
      case 'idle-close': return idleClose();
      case 'exit': process.exit(0);
    }
  };
  run().then(
    (result) => process.send?.({ ok: true, result }),
    (err: unknown) => process.send?.({ ok: false, error: String(err) }),
  );
});
process.send?.({ ok: true, result: 'ready' });
