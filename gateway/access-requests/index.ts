export { AccessRequestService, type AccessRequestServiceDeps, type SecondFactorCheck, type StepUpProof, type EndComputerSessions, type RequestView } from './access-request.service.js';
export { accessRequestRoutes } from './access-request.routes.js';
export { computerSessionEnder } from './end-computer-sessions.js';
export { ChannelNotifier, smtpSender, signBody, slackPayload, teamsPayload, SIGNATURE_HEADER, TIMESTAMP_HEADER, type AccessRequestNotifier, type WebhookTarget, type MailSender } from './notifier.js';
export { AccessRequestErrors } from './errors.js';
export { SessionModerationService, moderationPolicyOf, type ModerationPolicy } from './moderation.js';
export { moderationRoutes } from './moderation.routes.js';
