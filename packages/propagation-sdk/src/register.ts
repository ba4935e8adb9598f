/**
 * Zero-code setup: `node --import @graylane/sdk/register app.js` (or `-r` for CommonJS). Installs
 * every inbound and outbound hook, configured from the environment. A bad variable is reported and
 * the default is kept: a typo in deployment config must not stop the service from starting.
 */
import { optionsFromEnv } from './config.js';
import { install } from './install.js';
import { internalError } from './log.js';

try {
  install(optionsFromEnv(process.env));
} catch (err) {
  internalError('register', err);
  install();
}
