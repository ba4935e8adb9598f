// prepack of every package: the `workspace:` protocol is pnpm's, and only `pnpm pack` / `pnpm
// publish` replace it with the version. `npm pack` would ship it as is, and `npm install` of that
// tarball fails with EUNSUPPORTEDPROTOCOL, so it stops here with one line saying what to run.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const manifest = JSON.parse(readFileSync('package.json', 'utf8'));
// Which client runs this script: npm sets npm_execpath to its own CLI, pnpm to pnpm's. The user agent
// alone is not enough: npm takes an inherited npm_config_user_agent as its config, so `npm pack` run
// from within a pnpm script (as `pnpm test` runs the pack test) would pass for pnpm.
const execPath = process.env.npm_execpath;
const byPnpm =
  execPath !== undefined
    ? basename(execPath).startsWith('pnpm')
    : (process.env.npm_config_user_agent ?? '').startsWith('pnpm/');
const dryRun = process.env.npm_config_dry_run === 'true';
const workspaceDeps = Object.entries({
  ...manifest.dependencies,
  ...manifest.peerDependencies,
  ...manifest.optionalDependencies,
}).filter(([, spec]) => String(spec).startsWith('workspace:'));

if (!byPnpm && !dryRun && workspaceDeps.length > 0) {
  process.stderr.write(
    `${manifest.name}: ${workspaceDeps.map(([n]) => n).join(', ')} use the workspace: protocol; ` +
      'pack or publish with pnpm (pnpm pack, pnpm publish), which writes the version\n',
  );
  process.exit(1);
}
