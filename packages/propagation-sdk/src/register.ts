/**
 * Zero-code setup: `node --import @graylane/sdk/register app.js` (or `-r` for CommonJS). Installs
 * every inbound and outbound hook, configured from the environment. A bad variable is reported by
 * name and its default kept while the others still apply: a typo in deployment config must not stop
 * the service, nor switch off what was configured right.
 */
import { configureFromEnv } from './config.js';
import { install } from './install.js';

configureFromEnv(process.env);
install();
