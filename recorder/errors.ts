import { defineErrors } from '../core/errors.js';

/** Recorder error codes (docs/errors.md). */
export const RecorderErrors = defineErrors({
  JIT_ERR_RECORDING_BAD_PATH: { status: 500, message: 'recording path is not one jitgate generated: {reason}' },
  JIT_ERR_RECORDING_SIGNING_KEY: { status: 500, message: 'recording signing key is unusable: {reason}' },
  JIT_ERR_SEARCH_NOT_SEALED: { status: 409, message: 'recording {recordingId} is not sealed yet: it is indexed once its writer closed it', transient: true },
  JIT_ERR_SEARCH_FILE_ELSEWHERE: { status: 503, message: 'recording {recordingId} has no file in this gateway\'s store (another gateway wrote it)', transient: true },
  JIT_ERR_EVIDENCE_KEY: { status: 500, message: 'evidence signing key is unusable: {reason}' },
  JIT_ERR_EVIDENCE_BUNDLE: { status: 400, message: 'not a jitgate evidence bundle: {reason}' },
});
