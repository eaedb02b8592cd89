// Importing every errors module registers every code (for docs/errors.md).
import '../core/errors.js';
import '../config/errors.js';
import '../provisioner/errors.js';
import '../provisioner/jit-errors.js';
import '../provisioner/winrm/errors.js';
import '../gateway/auth/errors.js';
import '../gateway/ssh/errors.js';
import '../gateway/ssh/front-door-errors.js';
import '../gateway/sessions/errors.js';
import '../recorder/errors.js';
import '../gateway/rdp/errors.js';
import '../gateway/access-requests/errors.js';
