import { defineErrors } from '../../core/errors.js';

/**
 * Errors of the WS-Management client. The WinRM store translates them to
 * StoreErrors at its boundary; callers branch on `code`, and for faults on
 * `details.wsmanCode` (the WSManFault Code attribute, a Win32/WinRM error number).
 */
export const WinRmErrors = defineErrors({
  JIT_ERR_WINRM_FAULT: { status: 502, message: 'WinRM fault {wsmanCode} during {operation}: {reason}' },
  JIT_ERR_WINRM_AUTH: { status: 502, message: 'WinRM authentication to {endpoint} failed: {reason}' },
  JIT_ERR_WINRM_TRANSPORT: { status: 503, message: 'WinRM transport to {endpoint} failed: {reason}', transient: true },
  JIT_ERR_WINRM_TIMEOUT: { status: 504, message: 'WinRM {operation} timed out after {ms} ms', transient: true },
  JIT_ERR_WINRM_PROTOCOL: { status: 502, message: 'WinRM protocol error: {reason}' },
  JIT_ERR_WINRM_INSECURE: { status: 500, message: 'refusing WinRM {auth} over {scheme}: {reason}' },
  JIT_ERR_WINRM_SCRIPT: { status: 502, message: 'the account script failed with exit code {exitCode}: {reason}' },
});

/** WSManFault code of an operation timeout on Receive (ERROR_WSMAN_OPERATION_TIMEDOUT). */
export const WSMAN_TIMED_OUT = '2150858793';
