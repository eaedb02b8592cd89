// Importing every errors module registers every code (for docs/errors.md).
import './core/errors.js';
import './config/errors.js';
import './provisioner/errors.js';
import './provisioner/jit-errors.js';
import './provisioner/winrm/errors.js';
