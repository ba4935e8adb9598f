// prepack of every package: the `workspace:` protocol is pnpm's, and only `pnpm pack` / `pnpm
// publish` replace it with the version. `npm pack` would ship it as is, and `npm install` of that
// tarball fails with EUNSUPPORTEDPROTOCOL, so it stops here with one line saying what to run.
import { readFileSync } from 'node:fs';

const manifest = JSON.parse(readFileSync('package.json', 'utf8'));
const agent = process.env.npm_config_user_agent ?? '';
const dryRun = process.env.npm_config_dry_run === 'true';
const workspaceDeps = Object.entries({
  ...manifest.dependencies,
  ...manifest.peerDependencies,
  ...manifest.optionalDependencies,
}).filter(([, spec]) => String(spec).startsWith('workspace:'));

if (!agent.startsWith('pnpm/') && !dryRun && workspaceDeps.length > 0) {
  process.stderr.write(
    `${manifest.name}: ${workspaceDeps.map(([n]) => n).join(', ')} use the workspace: protocol; ` +
      'pack or publish with pnpm (pnpm pack, pnpm publish), which writes the version\n',
  );
  process.exit(1);
}
