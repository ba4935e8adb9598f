'use strict';
// `node -r @graylane/sdk/register app.cjs`. The SDK is ESM; Node >= 20.19 loads it synchronously
// here, so the hooks are in place before the app's first require. Older Nodes (20.18 without
// --experimental-require-module) can only load it asynchronously: inbound hooks still apply, but
// a client function the app copied out of node:http at load time would stay untagged.
try {
  require('./dist/register.js');
} catch (err) {
  if (err === null || typeof err !== 'object' || err.code !== 'ERR_REQUIRE_ESM') throw err;
  process.emitWarning(
    'graylane: this Node cannot require ESM synchronously; hooks install asynchronously',
    { code: 'GRAYLANE_REGISTER_ASYNC' },
  );
  import('./dist/register.js');
}
