import type { ServerChannel } from 'ssh2';
import type { AskPerson } from './upstream.js';

/** Longest answer taken (a password or one-time code); more is dropped. */
const MAX_ANSWER = 1024;

/**
 * The person's own account (elevate) through the SSH front door: the
 * computer's login prompts, relayed to the person's terminal. The pty is raw
 * on our side, so nothing typed is echoed unless the computer's prompt asks
 * for echo (a one-time code, a user name). Rejects on Ctrl-C, Ctrl-D or a
 * closed channel. The answers are handed to the upstream login and never kept.
 */
export function askOnTerminal(ch: ServerChannel, computer: string): AskPerson {
  return async (q) => {
    const head = q.attempt > 1 ? `${computer} refused that answer; try again.` : `jitgate: sign in with your own password for ${q.account} on ${computer} (jitgate does not hold it, nothing you type here is recorded).`;
    ch.write(`\r\n${head}\r\n`);
    if (q.instructions) ch.write(`${q.instructions.replace(/\r?\n/g, '\r\n')}\r\n`);
    const answers: string[] = [];
    for (const p of q.prompts) answers.push(await readAnswer(ch, p.prompt, p.echo));
    return answers;
  };
}

function readAnswer(ch: ServerChannel, prompt: string, echo: boolean): Promise<string> {
  ch.write(prompt);
  ch.resume();
  return new Promise((resolve, reject) => {
    let line = '';
    const finish = (v: string | null): void => {
      ch.removeListener('data', onData);
      ch.removeListener('close', onClose);
      ch.pause();
      ch.write('\r\n');
      if (v === null) reject(new Error('the person left the login prompt'));
      else resolve(v);
    };
    const onClose = (): void => finish(null);
    const onData = (d: Buffer): void => {
      for (const c of d.toString('utf8')) {
        if (c === '\x03' || c === '\x04') return finish(null);
        if (c === '\r' || c === '\n') return finish(line);
        if (c === '\x7f' || c === '\b') {
          if (line.length > 0) {
            line = line.slice(0, -1);
            if (echo) ch.write('\b \b');
          }
        } else if (c >= ' ' && line.length < MAX_ANSWER) {
          line += c;
          if (echo) ch.write(c);
        }
      }
    };
    ch.on('data', onData);
    ch.once('close', onClose);
  });
}
