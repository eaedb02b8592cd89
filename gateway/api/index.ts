import type { FastifyInstance } from 'fastify';
import { auditRoutes } from './audit.js';
import { computerRoutes } from './computers.js';
import { evidenceRoutes } from './evidence.js';
import { hostKeyRoutes } from './host-keys.js';
import type { ApiDeps } from './deps.js';
import { inventoryRoutes } from './inventory.js';
import { invitationRoutes } from './invitations.js';
import { organizationRoutes } from './organizations.js';
import { peopleRoutes } from './people.js';
import { personAccountRoutes } from './person-accounts.js';
import { recordingRoutes } from './recordings.js';
import { searchRoutes } from './search.js';
import { sessionRoutes } from './sessions.js';
import { storeRoutes } from './stores.js';
import { teamRoutes } from './teams.js';
import { recentComputerRoutes } from './recent-computers.js';

export type { ApiDeps, EvidenceSource, OpenedRecording, RecordingFiles, StoreInfo } from './deps.js';
export { computerPolicySchema, effectivePolicy, type ComputerPolicy } from './computer-policy.js';
export { storeInfos } from './stores.js';

/**
 * The administration API (docs/api.md "Administration"), for
 * `buildServer({ apiPlugins: [apiRoutes(deps)] })`, which mounts it under
 * /api/v1. Every route authorizes on the server with gateway/access-policy.ts.
 */
export function apiRoutes(deps: ApiDeps): (app: FastifyInstance) => Promise<void> {
  return async (app) => {
    await app.register(organizationRoutes(deps));
    await app.register(peopleRoutes(deps));
    await app.register(invitationRoutes(deps));
    await app.register(personAccountRoutes(deps));
    await app.register(computerRoutes(deps));
    await app.register(hostKeyRoutes(deps));
    await app.register(storeRoutes(deps));
    await app.register(sessionRoutes(deps));
    await app.register(recordingRoutes(deps));
    await app.register(searchRoutes(deps));
    await app.register(auditRoutes(deps));
    await app.register(inventoryRoutes(deps));
    await app.register(teamRoutes(deps));
    await app.register(recentComputerRoutes(deps));
    await app.register(evidenceRoutes(deps));
  };
}
