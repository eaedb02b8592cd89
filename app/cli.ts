#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { Command, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { ConfigError, loadConfig, type Config } from '../config/load.js';
import { insecureTransportWarnings } from '../config/schema.js';
import { CoreErrors, isJitgateError, JitgateError } from '../core/errors.js';
import { createLogger, type Logger } from '../core/logging.js';
import { openDatabase } from '../core/db/open.js';
import { migrate, schemaStatus } from '../core/db/migrations.js';
import type { Core, OpenCoreOptions } from './core.js';
import type { Runtime } from './main.js';
import type { ReadOnlyCore } from './read-only.js';
import { VERSION } from './version.js';
import type { AccountStore } from '../provisioner/account-store.js';
import type { JitQueue } from '../provisioner/jobs.js';
import type { ConnectionOptions } from 'bullmq';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DemoHost } from './demo-target.js';
import type { DemoDomainHost } from './demo-ad-target.js';

/**
 * `jitgate` — serve, check, migrate, and the operator (break-glass) commands.
 * Exit codes: 0 ok, 1 failure, 2 bad configuration or usage.
 */

interface GlobalOpts {
  config?: string;
  logLevel?: string;
}

function fail(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`jitgate: ${err.message}\n`);
    process.exit(2);
  }
  if (isJitgateError(err)) {
    process.stderr.write(`jitgate: ${err.code}: ${err.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`jitgate: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

function config(cmd: Command, overrides: Record<string, unknown> = {}): Config {
  const g = cmd.optsWithGlobals<GlobalOpts>();
  const o: Record<string, unknown> = { ...overrides };
  if (g.logLevel) o.log = { level: g.logLevel };
  return loadConfig({ file: g.config, overrides: o });
}

function logger(cfg: Config): Logger {
  return createLogger({ level: cfg.log.level, pretty: cfg.log.pretty });
}

/** Operator commands log warnings only, to stderr; their output is the answer. */
function quietLogger(cfg: Config): Logger {
  return createLogger({ level: cfg.log.level === 'info' ? 'warn' : cfg.log.level });
}

/*
 * What is heavy loads only in the commands that use it (issue 12: `accounts list` spent ~95% of
 * its time starting up). app/main.ts (fastify, the SSH gateway, BullMQ, the recorder, the web app)
 * loads for `serve` and `demo` only; app/core.ts for the commands that open the database and the
 * engine; the database adapter and each account store adapter only once the configuration chose
 * them (core/db/open.ts, app/stores.ts). test/cli-startup.test.ts checks what `accounts list` loads.
 */
async function startRuntime(cfg: Config, log: Logger): Promise<Runtime> {
  return (await import('./main.js')).startRuntime(cfg, log);
}

/** The core for an operator command: a process that runs a few queries and exits (`shortLived`). */
async function openCore(cfg: Config, log: Logger, opts: Omit<OpenCoreOptions, 'shortLived'> = {}): Promise<Core> {
  return (await import('./core.js')).openCore(cfg, log, { ...opts, shortLived: true });
}

/** For a command that only reads: no migration (one query checks the schema), no stores, no engine. */
async function openReadOnly(cfg: Config): Promise<ReadOnlyCore> {
  return (await import('./read-only.js')).openReadOnly(cfg);
}

async function buildStores(cfg: Config, log: Logger): Promise<Core['stores']> {
  return (await import('./core.js')).buildStores(cfg, log);
}

/** The commands that keep running; every other one is a one-shot process. */
const LONG_RUNNING = new Set(['serve', 'demo']);

const program = new Command('jitgate')
  .description('Privileged session manager gateway with just-in-time accounts')
  .version(VERSION)
  .option('-c, --config <file>', 'configuration file (default ./jitgate.yaml, or $JITGATE_CONFIG)')
  .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
  .showHelpAfterError()
  .hook('preAction', (_program, action) => {
    if (action.parent === program && LONG_RUNNING.has(action.name())) return;
    // A one-shot command on embedded PGlite: V8 would spend ~0.4 s of CPU on background threads
    // optimising PGlite's 9 MB of WASM with TurboFan for a process that exits within a second;
    // its baseline (Liftoff) code runs a few queries just as well. Set before PGlite compiles it.
    setFlagsFromString('--liftoff-only');
  });

program
  .command('serve')
  .description('run the gateway and the workers (embedded database and Redis unless configured)')
  .addOption(new Option('--role <role>', 'what this process runs').choices(['all', 'gateway', 'worker']))
  .option('--host <host>', 'listen address')
  .option('--port <port>', 'listen port', (v) => Number(v))
  .action(async (opts: { role?: string; host?: string; port?: number }, cmd: Command) => {
    let cfg: Config;
    try {
      const server: Record<string, unknown> = {};
      if (opts.host) server.host = opts.host;
      if (opts.port !== undefined) server.port = opts.port;
      cfg = config(cmd, { ...(opts.role ? { role: opts.role } : {}), ...(Object.keys(server).length ? { server } : {}) });
    } catch (err) {
      fail(err);
    }
    const log = logger(cfg);
    let runtime: Awaited<ReturnType<typeof startRuntime>>;
    try {
      runtime = await startRuntime(cfg, log);
    } catch (err) {
      log.fatal({ code: isJitgateError(err) ? err.code : undefined, reason: err instanceof Error ? err.message : String(err) }, 'jitgate failed to start');
      log.flush?.();
      fail(err);
    }
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      log.info({ signal }, 'shutting down');
      runtime
        .close()
        .then(() => {
          log.info('stopped');
          log.flush?.();
          setTimeout(() => process.exit(0), 50).unref();
        })
        .catch(() => process.exit(1));
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    if (runtime.url) process.stdout.write(`jitgate ${VERSION} listening on ${runtime.url} (role ${cfg.role}, data in ${cfg.dataDir})\n`);
    if (runtime.setupUrl) process.stdout.write(`first run: create the first administrator at ${runtime.setupUrl} (one-time link)\n`);
    if (runtime.frontDoor) process.stdout.write(`ssh front door on port ${runtime.frontDoor.port} (host key ${runtime.frontDoor.hostKeySha256})\n`);
  });

program
  .command('demo')
  .description('the gateway with embedded defaults plus local demo computers set up for JIT (an sshd in a network namespace, and with samba a throw-away AD domain controller whose sshd takes domain accounts); Ctrl-C removes everything')
  .option('--port <port>', 'web port', (v) => Number(v), 8080)
  .option('--ssh-port <port>', 'SSH front door port', (v) => Number(v), 2222)
  .option('--host <host>', 'listen address', '127.0.0.1')
  .action(async (opts: { port: number; sshPort: number; host: string }, cmd: Command) => {
    // Loaded here, like everything only one command uses (start-up time of the others, issue 12).
    const [{ demoUnavailable, startDemoHost }, { demoPortProblem }, { demoDomainComputer, demoDomainLocalStoreConfig, demoDomainStoreConfig, demoDomainUnavailable, startDemoDomainHost }, { applyInventory, parseInventory }, { storeScopeOf }] =
      await Promise.all([import('./demo-target.js'), import('./port-check.js'), import('./demo-ad-target.js'), import('../gateway/inventory.js'), import('../provisioner/store-scope.js')]);
    const why = demoUnavailable() ?? (await demoPortProblem(opts.host, opts));
    if (why) {
      process.stderr.write(`jitgate demo: ${why}.\n`);
      process.exit(1);
    }
    const dataDir = mkdtempSync(join(tmpdir(), 'jitgate-demo-'));
    let host: DemoHost | undefined;
    let domain: DemoDomainHost | undefined;
    let domainSkipped = demoDomainUnavailable();
    let runtime: Awaited<ReturnType<typeof startRuntime>> | undefined;
    const cleanup = async () => {
      if (runtime) {
        const rt = runtime;
        // Every JIT account on the demo computer goes before the computer does;
        // bounded, so a stuck step never leaves the namespace behind.
        const steps = (async () => {
          await rt.core.engine.reconcile({}).catch(() => undefined);
          await rt.close().catch(() => undefined);
        })();
        await Promise.race([steps, new Promise((r) => setTimeout(r, 30_000).unref())]);
      }
      await Promise.all([host?.stop(), domain?.stop()]);
      rmSync(dataDir, { recursive: true, force: true });
    };
    try {
      process.stdout.write(domainSkipped
        ? 'starting the demo computer (sshd in a network namespace)…\n'
        : 'starting the demo computers (sshd, and a Samba AD domain controller with sshd, in network namespaces)…\n');
      // Both at once; each is recorded as soon as it is up, so a failure of the other still removes it.
      const started = await Promise.allSettled([
        startDemoHost(dataDir).then((h) => (host = h)),
        domainSkipped ? undefined : startDemoDomainHost(dataDir).then((d) => (domain = d)),
      ]);
      if (started[0].status === 'rejected') throw started[0].reason;
      if (started[1].status === 'rejected') {
        domainSkipped = `demo-domain skipped: ${started[1].reason instanceof Error ? started[1].reason.message : String(started[1].reason)}`;
      }
      if (!host) throw new Error('the demo computer did not start');
      const g = cmd.optsWithGlobals<GlobalOpts>();
      const cfg = loadConfig({
        file: '/dev/null',
        overrides: {
          dataDir,
          server: { host: opts.host, port: opts.port },
          sshFrontDoor: { enabled: true, host: opts.host, port: opts.sshPort },
          log: { level: g.logLevel ?? 'warn' },
          jit: { reconcileIntervalSeconds: 30, leaseGraceSeconds: 10 },
          accountStores: [{
            name: 'demo-linux', type: 'ssh', host: host.address, port: host.port, username: host.adminUser,
            privateKey: `file:${host.adminKeyPath}`, hostKeySha256: host.hostKeySha256, groups: { sudo: 'sudo' },
          }, ...(domain ? [demoDomainStoreConfig(domain, 'demo-ad'), demoDomainLocalStoreConfig(domain, 'demo-domain-local')] : [])],
        },
      });
      const log = logger(cfg);
      runtime = await startRuntime(cfg, log);
      await applyInventory(runtime.core.db, parseInventory({
        organizations: [{ name: 'Demo' }],
        computers: [{
          organization: 'Demo', name: 'demo-linux', address: host.address, protocols: ['ssh'], localStore: 'demo-linux',
          jit: { enabled: true, deleteOnCheckIn: true, accountMode: 'named', accountType: 'local', adminGroups: ['sudo'], maxSessionMinutes: 60 },
          policy: { sshHostKeySha256: host.hostKeySha256 },
        }, ...(domain ? [demoDomainComputer(domain, 'Demo', 'demo-ad', 'demo-domain-local')] : [])],
      }, new Map(cfg.accountStores.map((s) => [s.name, storeScopeOf(s)]))));
      process.stdout.write([
        '',
        `jitgate demo is running on ${runtime.url ?? ''}`,
        runtime.setupUrl ? `1. open ${runtime.setupUrl} and create your administrator (scan the QR code with an authenticator app)` : '',
        '2. Sessions → demo-linux → SSH: a JIT account <you>_xxxxxx is created on the demo computer and put in sudo (`sudo -n` works: you never see its password)',
        '3. run `id`, close the tab: the account is deleted; replay it under Recordings, see every step under Audit',
        runtime.frontDoor ? `   or from a terminal, after adding your SSH key under My account: ssh -p ${runtime.frontDoor.port} <you>+demo-linux@${opts.host}` : '',
        domain
          ? `4. Sessions → demo-domain → SSH: the same with a domain account ${domain.domain}\\<you>_xxxxxx, created in Active Directory (a Samba AD DC at ${domain.url}) and put in JIT Admins, deleted at check-in` +
            (runtime.frontDoor ? `\n   or: ssh -p ${runtime.frontDoor.port} <you>+demo-domain@${opts.host}` : '')
          : `(${domainSkipped ?? 'demo-domain skipped'})`,
        `Ctrl-C stops it and removes the demo computers, their accounts and the data directory (${dataDir}).`,
        '',
      ].filter((l) => l !== '').join('\n') + '\n');
    } catch (err) {
      await cleanup();
      fail(err);
    }
    let stopping = false;
    const stop = () => {
      if (stopping) process.exit(1);
      stopping = true;
      process.stdout.write('stopping the demo…\n');
      cleanup().then(
        () => {
          process.stdout.write('stopped: the demo computers, their accounts and the data directory are gone.\n', () => process.exit(0));
        },
        () => process.exit(1),
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });

program
  .command('check')
  .description('validate the configuration and reach every dependency, without serving')
  .action(async (_o, cmd: Command) => {
    let cfg: Config;
    try {
      cfg = config(cmd);
    } catch (err) {
      fail(err);
    }
    const lines: string[] = [];
    let failed = 0;
    const report = (ok: boolean, what: string, detail: string) => {
      if (!ok) failed++;
      lines.push(`${ok ? 'ok  ' : 'FAIL'} ${what}: ${detail}`);
    };
    report(true, 'configuration', `valid (role ${cfg.role}, data dir ${cfg.dataDir})`);
    // Accepted on purpose, so a warning on every run rather than a failure.
    for (const w of insecureTransportWarnings(cfg.accountStores)) lines.push(`warn ${w}`);
    /** RDP computers and their policies, to hold against what guacd offers (null: database not readable). */
    let rdpComputers: { name: string; policy: unknown }[] | null = null;
    try {
      const db = await openDatabase({ url: cfg.database.url?.reveal(), dataDir: cfg.dataDir });
      try {
        await db.ping();
        // Not migrated is no failure: `serve` and every operator command migrate at start.
        const { current, expected } = await schemaStatus(db);
        const how = 'run `jitgate migrate` (or `jitgate serve`, which migrates at start)';
        if (current === 0) lines.push(`warn database: ${db.kind} reachable, not migrated yet (this version needs schema ${expected}): ${how}`);
        else if (current < expected) lines.push(`warn database: ${db.kind} reachable, schema version ${current} of ${expected}: ${how}`);
        else report(true, 'database', `${db.kind} reachable, schema version ${current}`);
        if (current > 0) rdpComputers = await db.query<{ name: string; policy: unknown }>("SELECT name, policy FROM computers WHERE 'rdp' = ANY(protocols) ORDER BY name");
      } finally {
        await db.close();
      }
    } catch (err) {
      report(false, 'database', isJitgateError(err) ? err.message : String(err));
    }
    const { EmbeddedRedis, pingRedis } = await import('../core/redis.js');
    if (cfg.redis.url) {
      try {
        await pingRedis({ url: cfg.redis.url.reveal() });
        report(true, 'redis', 'reachable');
      } catch (err) {
        report(false, 'redis', isJitgateError(err) ? err.message : String(err));
      }
    } else {
      const ok = EmbeddedRedis.available(cfg.redis.binary);
      report(ok, 'redis', ok ? `embedded (${cfg.redis.binary} found)` : `embedded, but ${cfg.redis.binary} is not installed: apt-get install -y redis-server, or set redis.url`);
    }
    const log = quietLogger(cfg);
    try {
      const stores = await buildStores(cfg, log);
      for (const [name, store] of stores) {
        try {
          await store.check();
          report(true, `account store ${name}`, `${store.kind} reachable${await timeBoundWords(store)}`);
        } catch (err) {
          report(false, `account store ${name}`, isJitgateError(err) ? `${err.code}: ${err.message}` : String(err));
        }
        await store.close().catch(() => undefined);
      }
    } catch (err) {
      report(false, 'account stores', err instanceof Error ? err.message : String(err));
    }
    // guacd only matters for RDP computers: unreachable is a warning, not a failure.
    const { checkGuacd } = await import('../gateway/rdp/guacd-client.js');
    const g = await checkGuacd({ host: cfg.guacd.host, port: cfg.guacd.port });
    lines.push(g.ok
      ? `ok   guacd ${g.address}: ${g.version ?? 'version unknown'}, protocols ${(g.protocols ?? []).join(', ')}`
      : `warn guacd ${g.address}: ${g.error ?? 'unreachable'} (needed for RDP sessions only)`);
    if (g.ok && rdpComputers?.length) {
      // Per computer, what its policy needs that this guacd lacks (a pinned certificate needs guacd 1.6.0+): its sessions would be refused.
      const { probeRdpArgs } = await import('../gateway/rdp/guacd-client.js');
      const { policyGaps } = await import('../gateway/rdp/guacd-capabilities.js');
      try {
        const gaps = policyGaps(rdpComputers, (await probeRdpArgs({ host: cfg.guacd.host, port: cfg.guacd.port })).names);
        for (const x of gaps) {
          const hint = x.missing.includes('cert-fingerprints') ? ' (cert-fingerprints needs guacd 1.6.0 or later)' : '';
          lines.push(`warn guacd ${g.address} lacks ${x.missing.join(', ')}, needed by the policy of ${x.computer}: its RDP sessions will be refused${hint}`);
        }
        if (!gaps.length) lines.push(`ok   guacd ${g.address}: supports the policies of all ${rdpComputers.length} RDP computer(s)`);
      } catch (err) {
        lines.push(`warn guacd ${g.address}: could not read its RDP parameters: ${isJitgateError(err) ? err.message : String(err)}`);
      }
    }
    process.stdout.write(lines.join('\n') + '\n');
    process.exit(failed ? 1 : 0);
  });

program
  .command('migrate')
  .description('apply database migrations')
  .action(async (_o, cmd: Command) => {
    try {
      const cfg = config(cmd);
      const db = await openDatabase({ url: cfg.database.url?.reveal(), dataDir: cfg.dataDir });
      try {
        const r = await migrate(db);
        process.stdout.write(r.applied.length ? `applied migrations ${r.applied.join(', ')}; schema version ${r.current}\n` : `schema up to date (version ${r.current})\n`);
      } finally {
        await db.close();
      }
    } catch (err) {
      fail(err);
    }
  });

program
  .command('apply')
  .description('create or update organizations and computers from a YAML document')
  .requiredOption('-f, --file <file>', 'YAML with organizations: and computers:')
  .action(async (opts: { file: string }, cmd: Command) => {
    try {
      const cfg = config(cmd);
      const [{ applyInventory, parseInventory }, { storeScopeOf }] = await Promise.all([import('../gateway/inventory.js'), import('../provisioner/store-scope.js')]);
      const scopes = new Map(cfg.accountStores.map((s) => [s.name, storeScopeOf(s)]));
      const inv = parseInventory(parseYaml(readFileSync(opts.file, 'utf8')), scopes);
      // The same policy rules as the API's import: a bad value is refused in words, nothing is stored.
      const { computerPolicySchema } = await import('../gateway/api/computer-policy.js');
      const problems: string[] = [];
      inv.computers.forEach((c, i) => {
        const r = computerPolicySchema.safeParse(c.policy);
        if (r.success) c.policy = r.data;
        else for (const issue of r.error.issues) problems.push(`computers.${i}.policy${issue.path.length ? `.${issue.path.join('.')}` : ''}: ${issue.message}`);
      });
      if (problems.length) throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: problems.join('; ') });
      const core = await openCore(cfg, quietLogger(cfg));
      try {
        const r = await applyInventory(core.db, inv, scopes);
        await core.audit.record({ type: 'admin.changed', actor: 'system:cli', outcome: 'success', data: { action: 'apply', organizations: r.organizations, computers: r.computers, accountMappings: r.accountMappings, teams: r.teams } });
        process.stdout.write(`applied ${r.organizations} organization(s), ${r.computers} computer(s)${r.accountMappings ? `, ${r.accountMappings} account mapping(s)` : ''}${r.teams ? `, ${r.teams} team(s)` : ''}\n`);
        for (const u of r.unpinned) {
          await core.audit.record({ type: 'computer.host_key_unpinned', actor: 'system:cli', outcome: 'success', computer: u.name, data: { id: u.id, organizationId: u.organizationId, previous: u.previous, reason: 'address changed' } });
          process.stdout.write(`${u.name}: address changed, host key unpinned: confirm it with \`jitgate computers pin-host-key ${u.name}\`\n`);
        }
        for (const k of r.pinned) {
          await core.audit.record({ type: 'computer.host_key_pinned', actor: 'system:cli', outcome: 'success', computer: k.name, data: { organizationId: k.organizationId, fingerprint: k.fingerprint, via: 'stated in jitgate apply (not scanned)' } });
        }
      } finally {
        await core.close();
      }
    } catch (err) {
      fail(err);
    }
  });

async function withQueue<T>(cfg: Config, fn: (q: JitQueue | undefined) => Promise<T>): Promise<T> {
  // The embedded Redis lives inside `serve`; operator commands use Redis only when it is external.
  if (!cfg.redis.url) return fn(undefined);
  const [{ JitQueue }, { redisOptions }] = await Promise.all([import('../provisioner/jobs.js'), import('../core/redis.js')]);
  const q = new JitQueue({ connection: redisOptions({ url: cfg.redis.url.reveal() }, { maxRetriesPerRequest: null }) as ConnectionOptions, prefix: cfg.redis.prefix });
  try {
    return await fn(q);
  } finally {
    await q.close();
  }
}

program
  .command('checkout <computer>')
  .description('provision a JIT account on <computer> (name or organization/name) for a person; the break-glass path')
  .requiredOption('--for <login>', 'the person the account is for')
  .addOption(new Option('--account-type <type>', 'domain or local, where the computer lets you choose').choices(['domain', 'local']))
  .option('--minutes <n>', 'lease length in minutes', (v) => Number(v))
  .addOption(new Option('--protocol <p>', 'session protocol').choices(['ssh', 'rdp']).default('ssh'))
  .option('--json', 'print JSON')
  .option('--show-password', 'print the password (audited)')
  .option('--elevate', "require the computer's JIT mode to be elevate (the person's own account joins the admin groups); refuse otherwise")
  .action(async (ref: string, opts: { for: string; accountType?: 'domain' | 'local'; minutes?: number; protocol: 'ssh' | 'rdp'; json?: boolean; showPassword?: boolean; elevate?: boolean }, cmd: Command) => {
    try {
      const cfg = config(cmd);
      const core = await openCore(cfg, quietLogger(cfg));
      try {
        const found = await core.repo.findComputers(ref);
        if (found.length !== 1) throw new Error(found.length === 0 ? `no computer named ${ref}` : `${ref} is ambiguous: use organization/name`);
        if (opts.elevate) {
          const jit = core.engine.settingsOf(found[0]!);
          // The mode is the computer's, set by its admins: the flag states what the operator expects, it does not change it.
          if (!jit.enabled || jit.mode !== 'elevate') throw new Error(`${found[0]!.name} does not elevate existing accounts (JIT ${jit.enabled ? `mode ${jit.mode}` : 'off'}); drop --elevate or set jit.mode: elevate on the computer`);
        }
        // The person's row, when they have one: their account mappings (elevation) and history hang on it.
        const personId = (await core.db.query<{ id: string }>('SELECT id FROM people WHERE lower(login) = lower($1)', [opts.for]))[0]?.id;
        const session = await core.engine.requestSession({ personLogin: opts.for, ...(personId ? { personId } : {}), computer: found[0]!, protocol: opts.protocol, accountType: opts.accountType, minutes: opts.minutes });
        // Said before anything is created: if this process dies mid-way, the operator can check the session in.
        process.stderr.write(`session ${session.id} requested on ${found[0]!.name}; provisioning…\n`);
        await withQueue(cfg, (q) => (q ? q.scheduleLeaseExpiry(session.id, session.leaseExpiresAt) : Promise.resolve()));
        let r;
        try {
          r = await core.engine.provision(session.id);
        } catch (err) {
          process.stderr.write(await checkoutFailureNote(core, session.id, cfg.jit.provisioningTimeoutSeconds));
          throw err;
        }
        const out: Record<string, unknown> = { sessionId: r.sessionId, computer: found[0]!.name, account: r.account, store: r.store, groups: r.groups, expiresAt: r.leaseExpiresAt, elevated: r.elevated };
        if (opts.showPassword && r.account && r.elevated) {
          process.stderr.write(`${r.account} is ${opts.for}'s own account: jitgate holds no password for it; they type their own\n`);
        } else if (opts.showPassword && r.account) {
          const creds = await core.engine.credentials(r.sessionId);
          await core.audit.record({ type: 'account.password_revealed', actor: opts.for, outcome: 'success', sessionId: r.sessionId, computer: found[0]!.name, account: r.account, data: { via: 'cli' } });
          out.password = creds.password.reveal();
        }
        if (opts.json) process.stdout.write(JSON.stringify(out) + '\n');
        else {
          process.stdout.write(
            `session   ${r.sessionId}\ncomputer  ${found[0]!.name}\naccount   ${r.account ?? '(existing account, JIT off)'}${r.elevated ? ` (elevated: ${opts.for}'s own account, own password)` : ''}\nstore     ${r.store ?? '-'}\ngroups    ${r.groups.join(', ') || '-'}\nexpires   ${r.leaseExpiresAt}\n` +
              (out.password ? `password  ${String(out.password)}\n` : ''),
          );
        }
      } finally {
        await core.close();
      }
    } catch (err) {
      fail(err);
    }
  });

/** For `jitgate check`: whether the directory itself removes memberships at lease end (docs/jit-engine.md "What the directory enforces by itself"). */
async function timeBoundWords(store: AccountStore): Promise<string> {
  if (!store.timeBoundMembership) return '';
  try {
    return (await store.timeBoundMembership())
      ? '; time-bound membership on (Privileged Access Management: the domain controller removes memberships at lease end + grace by itself)'
      : '; time-bound membership off (no Privileged Access Management feature in the forest: jitgate removes memberships)';
  } catch (err) {
    return `; time-bound membership unknown (${isJitgateError(err) ? err.code : String(err)})`;
  }
}

/** After a failed checkout: what was left behind, in words, and who removes it. */
async function checkoutFailureNote(core: Core, sessionId: string, timeoutSeconds: number): Promise<string> {
  const s = await core.repo.getSession(sessionId).catch(() => null);
  if (!s) return `session ${sessionId}: not found after the failure\n`;
  const account = s.accountId ? await core.repo.getAccount(s.accountId).catch(() => null) : null;
  if (s.state === 'failed' || s.state === 'ended') {
    return account && account.state !== 'deleted' && account.state !== 'idle'
      ? `session ${sessionId} ${s.state}; account ${account.name} is left (${account.state}): the reconciler removes it, or run jitgate reconcile\n`
      : `session ${sessionId} ${s.state}; nothing was left behind${account ? ` (account ${account.name} rolled back)` : ''}\n`;
  }
  return `session ${sessionId} is ${s.state}${account ? ` with account ${account.name} (${account.state})` : ''}: the reconciler rolls it back within ${timeoutSeconds} s of the request, or run jitgate checkin ${sessionId}\n`;
}

program
  .command('checkin <session-id>')
  .description('end a session: remove the JIT group membership or delete the account')
  .action(async (id: string, _o, cmd: Command) => {
    try {
      const cfg = config(cmd);
      const core = await openCore(cfg, quietLogger(cfg));
      try {
        const r = await core.engine.teardown(id, 'checked in (cli)', 'system:cli');
        process.stdout.write(`session ${id} ${r.state}\n`);
      } finally {
        await core.close();
      }
    } catch (err) {
      fail(err);
    }
  });

program
  .command('reconcile')
  .description('remove every JIT account and membership that has no live lease')
  .option('--dry-run', 'only say what would be done')
  .option('--json', 'print JSON')
  .action(async (opts: { dryRun?: boolean; json?: boolean }, cmd: Command) => {
    try {
      const cfg = config(cmd);
      const { noGatewayRunning } = await import('../provisioner/holder-liveness.js');
      // Embedded database: `serve` cannot be running while this command has it open, so no gateway holds a session.
      // Only an external Redis can say which gateways are alive (and only then is ioredis loaded).
      let liveness: import('../gateway/sessions/gateway-liveness.js').RedisGatewayLiveness | undefined;
      if (cfg.redis.url) {
        const [{ RedisGatewayLiveness }, { redisOptions }] = await Promise.all([import('../gateway/sessions/gateway-liveness.js'), import('../core/redis.js')]);
        liveness = new RedisGatewayLiveness(redisOptions({ url: cfg.redis.url.reveal() }), `${cfg.redis.prefix}:live`);
      }
      const core = await openCore(cfg, quietLogger(cfg), { holders: liveness ?? noGatewayRunning });
      try {
        const r = await core.engine.reconcile({ dryRun: opts.dryRun });
        if (opts.json) process.stdout.write(JSON.stringify(r) + '\n');
        else {
          const verb = r.dryRun ? 'would end' : 'ended';
          const endedCount = r.dryRun ? r.sessions.length : r.sessions.filter((x) => x.done).length;
          const acted = r.dryRun ? r.actions.length : r.actions.filter((x) => x.done).length;
          process.stdout.write(
            `${r.dryRun ? 'dry run: ' : ''}${verb} ${endedCount} session(s) (their accounts removed by teardown), ${acted} account action(s)${r.dryRun ? ' would be taken' : ' taken'}, ${r.skipped.length} account(s) left alone (in use), ${r.failures.length} failure(s)\n`,
          );
          for (const x of r.sessions) process.stdout.write(`  ${x.done ? 'ended' : r.dryRun ? 'would end' : 'FAILED to end'} session ${x.sessionId} on ${x.computer}${x.account ? ` (account ${x.account})` : ''}: ${x.reason}\n`);
          for (const a of r.actions) process.stdout.write(`  ${a.done ? 'done' : r.dryRun ? 'would' : 'FAILED'} ${a.kind} ${a.store}/${a.name}${'group' in a ? ` from ${a.group}` : ''} (${a.reason})\n`);
          // Elevated sessions: a membership jitgate added is removed; one the account had before is kept (only its record is closed).
          for (const e of r.elevations) {
            const what = e.action === 'removed' ? `remove ${e.store}/${e.name} from ${e.group} (added by jitgate)` : `keep ${e.store}/${e.name} in ${e.group} (member before the session)`;
            process.stdout.write(`  ${e.done ? 'done' : 'would'} elevation: ${what}, session ${e.sessionId}\n`);
          }
          for (const k of r.skipped) process.stdout.write(`  left ${k.store}/${k.name}: ${k.reason}\n`);
          for (const f of r.failures) process.stdout.write(`  failure ${f.item}: ${f.code}\n`);
        }
        process.exitCode = r.failures.length ? 1 : 0;
      } finally {
        await liveness?.close();
        await core.close();
      }
    } catch (err) {
      fail(err);
    }
  });

const accounts = program.command('accounts').description('JIT accounts jitgate created');
accounts
  .command('list')
  .option('--all', 'include deleted accounts')
  .option('--json', 'print JSON')
  .action(async (opts: { all?: boolean; json?: boolean }, cmd: Command) => {
    try {
      const cfg = config(cmd);
      const core = await openReadOnly(cfg);
      try {
        const rows = (await core.repo.listAccounts(opts.all)).map((a) => ({ name: a.name, store: a.store, mode: a.mode, state: a.state, owner: a.ownerKey, groups: a.groups, created: a.createdAt.toISOString() }));
        if (opts.json) process.stdout.write(JSON.stringify(rows) + '\n');
        else {
          process.stdout.write('NAME                 STORE        MODE    STATE     OWNER                 CREATED\n');
          for (const r of rows) process.stdout.write(`${r.name.padEnd(20)} ${r.store.padEnd(12)} ${r.mode.padEnd(7)} ${r.state.padEnd(9)} ${r.owner.padEnd(21)} ${r.created}\n`);
        }
      } finally {
        await core.close();
      }
    } catch (err) {
      fail(err);
    }
  });

const computers = program.command('computers').description('computers in the inventory');
computers
  .command('pin-host-key <name>')
  .description("scan the SSH host key <name> presents, show its fingerprint and pin it once confirmed (no pin, no SSH session)")
  .option('--yes', 'pin what the scan shows without asking')
  .option('--sha256 <fingerprint>', 'pin only if the computer presents this fingerprint (as `ssh-keygen -l` prints it)')
  .option('--organization <name>', 'when several organizations have a computer of that name')
  .action(async (name: string, opts: { yes?: boolean; sha256?: string; organization?: string }, cmd: Command) => {
    try {
      const cfg = config(cmd);
      // Loaded here: only this command needs them.
      const [{ confirmAndPin }, { scanHostKey }, { toComputer }, { SshGatewayErrors }, { JitgateError }] = await Promise.all([
        import('../gateway/api/host-keys.js'), import('../gateway/ssh/host-key-scan.js'), import('../provisioner/jit-repository.js'),
        import('../gateway/ssh/errors.js'), import('../core/errors.js'),
      ]);
      const core = await openCore(cfg, quietLogger(cfg));
      try {
        const rows = await core.db.query(
          'SELECT c.* FROM computers c JOIN organizations o ON o.id = c.organization_id WHERE c.name = $1 AND ($2::text IS NULL OR o.name = $2)',
          [name, opts.organization ?? null],
        );
        if (rows.length !== 1) throw new Error(rows.length ? `several computers are named ${name}: add --organization <name>` : `no computer named ${name}`);
        const c = toComputer(rows[0]!);
        const key = await scanHostKey({ host: c.address, port: c.sshPort });
        process.stdout.write(`${c.name} (${c.address}:${c.sshPort}) presents ${key.algorithm} ${key.sha256}\n`);
        const current = typeof c.policy.sshHostKeySha256 === 'string' ? c.policy.sshHostKeySha256.replace(/=+$/, '') : null;
        if (current === key.sha256) return void process.stdout.write('already pinned\n');
        if (current) process.stdout.write(`pinned now: ${current} (it will be replaced)\n`);
        if (opts.sha256 !== undefined && opts.sha256.trim().replace(/=+$/, '') !== key.sha256) {
          throw new JitgateError(SshGatewayErrors.JIT_ERR_SSH_HOST_KEY_NOT_CONFIRMED, { host: `${c.address}:${c.sshPort}`, seen: key.sha256, expected: opts.sha256.trim() });
        }
        if (opts.sha256 === undefined && !opts.yes) {
          if (!process.stdin.isTTY) throw new Error('not confirmed: compare the fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host, then run again with --sha256 <fingerprint> or --yes');
          const { createInterface } = await import('node:readline/promises');
          const rl = createInterface({ input: process.stdin, output: process.stdout });
          const answer = await rl.question('Compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host. Pin it? [y/N] ').finally(() => rl.close());
          if (!/^y(es)?$/i.test(answer.trim())) throw new Error('not pinned');
        }
        await confirmAndPin({ db: core.db, audit: core.audit }, c, key.sha256, 'system:cli');
        process.stdout.write(`pinned ${key.sha256} on ${c.name}\n`);
      } finally {
        await core.close();
      }
    } catch (err) {
      fail(err);
    }
  });

const audit = program.command('audit').description('the audit trail');
audit
  .command('verify')
  .description('check the keyed chain and its signed checkpoints: detects edited, deleted and truncated events (docs/audit.md)')
  .option('--checkpoints <file>', 'verify against this checkpoint file or forwarded audit stream instead of audit.checkpointFile (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
  .action(async (opts: { checkpoints: string[] }, cmd: Command) => {
    try {
      const cfg = config(cmd);
      const core = await openReadOnly(cfg);
      try {
        const { readCheckpointFiles } = await import('../core/audit-checkpoint.js');
        const { auditCheckpointPath } = await import('../core/audit-key.js');
        const { formatAuditReport } = await import('../core/audit-verify.js');
        const files = opts.checkpoints.length ? opts.checkpoints : [cfg.audit.checkpointFile ?? auditCheckpointPath(cfg.dataDir)];
        const r = await (await core.audit()).verify({ checkpoints: await readCheckpointFiles(files) });
        process.stdout.write(formatAuditReport(r));
        if (!r.ok) process.exitCode = 1;
      } finally {
        await core.close();
      }
    } catch (err) {
      fail(err);
    }
  });
audit
  .command('list')
  .option('--session <id>')
  .option('--account <name>')
  .option('--computer <name>')
  .option('--type <type>')
  .option('--limit <n>', 'at most n events', (v) => Number(v), 200)
  .action(async (opts: { session?: string; account?: string; computer?: string; type?: string; limit: number }, cmd: Command) => {
    try {
      const cfg = config(cmd);
      const core = await openReadOnly(cfg);
      try {
        const events = await (await core.audit()).list({ sessionId: opts.session, account: opts.account, computer: opts.computer, type: opts.type, limit: opts.limit });
        for (const e of events) process.stdout.write(JSON.stringify({ seq: e.seq, at: e.at.toISOString(), type: e.type, actor: e.actor, outcome: e.outcome, session: e.sessionId, computer: e.computer, account: e.account, data: e.data }) + '\n');
      } finally {
        await core.close();
      }
    } catch (err) {
      fail(err);
    }
  });

const recordings = program.command('recordings').description('session recordings');
recordings
  .command('verify')
  .description('check every recording (or one) against its SHA-256 and the signed manifest chain')
  .option('--id <recording-id>', 'only this recording')
  .option('--json', 'machine-readable report')
  .option('-v, --verbose', 'list every recording, not only problems')
  .action(async (opts: { id?: string; json?: boolean; verbose?: boolean }, cmd: Command) => {
    try {
      const cfg = config(cmd);
      const log = quietLogger(cfg);
      const [{ recorderFromConfig }, { formatVerifyReport }] = await Promise.all([import('../recorder/wiring.js'), import('../recorder/verify.js')]);
      const core = await openCore(cfg, log);
      try {
        const recorder = recorderFromConfig(cfg, { db: core.db, audit: core.audit, log });
        const report = await recorder.verify(opts.id ? { recordingId: opts.id } : {});
        if (opts.id && report.recordings.length === 0) {
          process.stderr.write(`jitgate: no recording ${opts.id}\n`);
          process.exitCode = 1;
          return;
        }
        process.stdout.write(opts.json ? JSON.stringify(report) + '\n' : formatVerifyReport(report, { verbose: opts.verbose ?? false }));
        await core.audit.record({
          type: 'recording.verified', actor: 'system:cli', outcome: report.ok ? 'success' : 'failure',
          data: { recordings: report.recordings.length, problems: report.problems, ...(opts.id ? { recordingId: opts.id } : {}) },
        });
        if (!report.ok) process.exitCode = 1;
      } finally {
        await core.close();
      }
    } catch (err) {
      fail(err);
    }
  });

const evidence = program.command('evidence').description('signed evidence bundles of sessions (docs/evidence.md)');
evidence
  .command('export <session-id>')
  .description("write one session's evidence bundle: recordings, manifest entries, audit events, signature")
  .requiredOption('-o, --output <file>', 'where to write the bundle (- for standard output)')
  .action(async (sessionId: string, opts: { output: string }, cmd: Command) => {
    try {
      const cfg = config(cmd);
      const [{ evidenceDepsFromConfig }, { exportEvidence }, { writeFileSync }] = await Promise.all([
        import('../recorder/wiring.js'), import('../recorder/evidence-export.js'), import('node:fs'),
      ]);
      const core = await openCore(cfg, quietLogger(cfg));
      try {
        const deps = evidenceDepsFromConfig(cfg, core.db);
        const bundle = /^[0-9a-f-]{36}$/.test(sessionId) ? await exportEvidence(deps, sessionId, 'system:cli') : null;
        if (!bundle) {
          process.stderr.write(`jitgate: no session ${sessionId}\n`);
          process.exitCode = 1;
          return;
        }
        const text = JSON.stringify(bundle) + '\n';
        if (opts.output === '-') process.stdout.write(text);
        else writeFileSync(opts.output, text, { mode: 0o600 });
        await core.audit.record({
          type: 'recording.evidence_exported', actor: 'system:cli', outcome: 'success', sessionId, computer: bundle.statement.session.computer,
          account: bundle.statement.session.account, data: { fingerprint: bundle.signature.fingerprint },
        });
        if (opts.output !== '-') {
          const s = bundle.statement;
          process.stderr.write(`${opts.output}: ${s.recordings.length} recording(s), ${s.auditEvents.length} audit event(s), signed by ${bundle.signature.fingerprint}\n`);
        }
      } finally {
        await core.close();
      }
    } catch (err) {
      fail(err);
    }
  });
evidence
  .command('verify <bundle>')
  .description('check a bundle offline (no configuration, no database): names each part that changed; exit 1 when tampered')
  .option('--fingerprint <fp>', 'the fingerprint the installation publishes (jitgate evidence key): fail when another key signed')
  .option('--audit-key <file>', "the installation's audit HMAC key: recompute each event's chain link too")
  .option('--recording-key <file>', "the installation's recording manifest key: recompute each entry's MAC too")
  .option('--json', 'machine-readable report')
  .action(async (file: string, opts: { fingerprint?: string; auditKey?: string; recordingKey?: string; json?: boolean }) => {
    try {
      const { parseBundle, verifyBundle, formatEvidenceReport, readHmacKey } = await import('../recorder/evidence.js');
      const report = verifyBundle(parseBundle(readFileSync(file, 'utf8')), {
        ...(opts.fingerprint ? { fingerprint: opts.fingerprint } : {}),
        ...(opts.auditKey ? { auditKey: readHmacKey(opts.auditKey) } : {}),
        ...(opts.recordingKey ? { recordingKey: readHmacKey(opts.recordingKey) } : {}),
      });
      process.stdout.write(opts.json ? JSON.stringify(report) + '\n' : formatEvidenceReport(report));
      if (!report.ok) process.exitCode = 1;
    } catch (err) {
      fail(err);
    }
  });
evidence
  .command('key')
  .description("print the public key and fingerprint that sign this installation's bundles (publish the fingerprint)")
  .action(async (_opts: unknown, cmd: Command) => {
    try {
      const cfg = config(cmd);
      const { loadEvidenceSigner } = await import('../recorder/evidence-key.js');
      const signer = loadEvidenceSigner({ configured: cfg.recordings.evidenceKey, dataDir: cfg.dataDir });
      process.stdout.write(`ed25519 ${signer.publicKey.toString('base64')}\n${signer.fingerprint}\n`);
    } catch (err) {
      fail(err);
    }
  });

program
  .command('errors')
  .description('print every error code as Markdown (docs/errors.md)')
  .action(async () => {
    const [, { renderErrorsDoc }] = await Promise.all([import('./all-errors.js'), import('../core/errors-doc.js')]);
    process.stdout.write(renderErrorsDoc());
  });

program.parseAsync(process.argv).catch(fail);
