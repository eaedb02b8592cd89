import type { ServerChannel } from 'ssh2';

const MAX_LINE = 16;

/**
 * The menu for a bare `ssh alice@jitgate` in a pty: numbered computers, the
 * person types a number and Enter. The pty is raw on our side, so we echo and
 * handle backspace ourselves. Resolves the chosen name, or null on Ctrl-C,
 * Ctrl-D or a closed channel.
 */
export function chooseComputer(ch: ServerChannel, names: readonly string[]): Promise<string | null> {
  const menu = ['', 'Computers you may connect to:', ...names.map((n, i) => `  ${String(i + 1).padStart(3)}) ${n}`), ''].join('\r\n');
  const ask = 'Choose a number: ';
  ch.write(`${menu}\r\n${ask}`);
  return new Promise((resolve) => {
    let line = '';
    const finish = (v: string | null): void => {
      ch.removeListener('data', onData);
      ch.removeListener('close', onClose);
      resolve(v);
    };
    const onClose = (): void => finish(null);
    const onData = (d: Buffer): void => {
      for (const c of d.toString('latin1')) {
        if (c === '\x03' || c === '\x04') {
          ch.write('\r\n');
          return finish(null);
        }
        if (c === '\r' || c === '\n') {
          const n = Number(line);
          if (/^[0-9]+$/.test(line) && n >= 1 && n <= names.length) {
            ch.write('\r\n');
            return finish(names[n - 1]!);
          }
          line = '';
          ch.write(`\r\nPlease type a number from 1 to ${names.length}.\r\n${ask}`);
        } else if (c === '\x7f' || c === '\b') {
          if (line.length > 0) {
            line = line.slice(0, -1);
            ch.write('\b \b');
          }
        } else if (c >= '0' && c <= '9' && line.length < MAX_LINE) {
          line += c;
          ch.write(c);
        }
      }
    };
    ch.on('data', onData);
    ch.once('close', onClose);
  });
}
