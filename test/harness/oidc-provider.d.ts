/**
 * The part of oidc-provider 9 (dev dependency, no bundled types) the OIDC
 * tests use: a real OpenID provider on loopback.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  interface Ctx {
    oidc: { session?: { accountId?: string }; client?: { clientId: string }; provider: Provider };
  }
  interface Grant {
    addOIDCScope(scope: string): void;
    save(): Promise<string>;
  }
  interface Client {
    backchannelLogout(sub: string, sid: string): Promise<void>;
  }
  interface Account {
    accountId: string;
    claims: () => Promise<Record<string, unknown>>;
  }
  export interface Configuration {
    clients?: object[];
    features?: Record<string, unknown>;
    scopes?: string[];
    claims?: Record<string, string[] | null>;
    findAccount?: (ctx: Ctx, id: string) => Promise<Account | undefined>;
    loadExistingGrant?: (ctx: Ctx) => Promise<Grant | undefined>;
    interactions?: { url: (ctx: Ctx, interaction: { uid: string }) => string };
    ttl?: Record<string, number>;
    cookies?: { keys: string[] };
    fetch?: (url: URL | string, options: RequestInit & { dispatcher?: unknown }) => Promise<Response>;
  }
  export default class Provider {
    constructor(issuer: string, configuration: Configuration);
    Grant: new (init: { clientId: string; accountId: string }) => Grant;
    Client: { find(id: string): Promise<Client | undefined> };
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<{ uid: string }>;
    interactionFinished(req: IncomingMessage, res: ServerResponse, result: object, options?: { mergeWithLastSubmission?: boolean }): Promise<void>;
  }
}
