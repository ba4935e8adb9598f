#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isValidLaneName } from '@graylane/lane-core';
import { Command, CommanderError, Option } from 'commander';
import { parseAllDocuments, stringify } from 'yaml';
import { parseDuration } from '../documents/duration.js';
import { ControllerErrors } from '../errors.js';
import { GRAYLANE_IMAGE, injectManifest } from '../kubernetes/inject.js';
import { REQUEST_ANNOTATION } from '../kubernetes/request.js';
import { RELEASE_ACTIONS } from '../release/actions.js';
import type { Release } from '../release/status.js';
import { readToken } from '../state/file-store.js';
import {
  type Expectation,
  expectationOf,
  parseExpectation,
  renderCheck,
  runCheck,
} from './check.js';
import { ApiCallError, ApiClient } from './client.js';
import { age, eventLines, renderStatus, stepText, table } from './format.js';
import type { KubernetesReleases } from './kubernetes.js';

const DEFAULT_SERVER = 'http://127.0.0.1:7070';
const DEFAULT_STATE_DIR = '.graylane';
const KINDS: Record<string, string> = {
  release: 'releases',
  releases: 'releases',
  rel: 'releases',
  service: 'services',
  services: 'services',
  svc: 'services',
  entrypoint: 'entrypoints',
  entrypoints: 'entrypoints',
  ep: 'entrypoints',
};

function usage(message: string): never {
  process.stderr.write(`graylane: ${message}\n`);
  process.exit(2);
}

async function client(program: Command): Promise<ApiClient> {
  const opts = program.opts<{ server: string; token?: string; stateDir: string }>();
  const token =
    opts.token ?? (await readToken(opts.stateDir)) ?? (await readToken(join(opts.stateDir)));
  return new ApiClient({ server: opts.server, token });
}

function print(value: unknown, output: string | undefined): boolean {
  if (output === 'json') process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  else if (output === 'yaml') process.stdout.write(stringify(value));
  else return false;
  return true;
}

function resource(kind: string): string {
  const name = KINDS[kind.toLowerCase()];
  if (!name) usage(`unknown kind "${kind}": releases, services or entrypoints`);
  return name;
}

type Doc = {
  metadata: { name: string };
  spec: Record<string, unknown>;
  status?: Record<string, unknown>;
};

function rowsOf(kind: string, items: Doc[]): string {
  if (kind === 'releases') {
    const releases = items as unknown as Release[];
    return table(
      ['NAME', 'LANE', 'PHASE', 'STEP', 'WEIGHT', 'SERVICES', 'AGE'],
      releases.map((r) => [
        r.metadata.name,
        r.spec.lane,
        r.status.phase,
        stepText(r),
        `${r.status.weight}%`,
        r.spec.services.map((s) => s.name).join(','),
        age(r.status.createdAt),
      ]),
    );
  }
  if (kind === 'services') {
    return table(
      ['NAME', 'STABLE', 'WHERE'],
      items.map((s) => {
        const stable = s.spec.stable as {
          version: string;
          endpoints?: string[];
          run?: { command: string };
        };
        return [
          s.metadata.name,
          stable.version,
          stable.endpoints?.join(',') ?? `run: ${stable.run?.command}`,
        ];
      }),
    );
  }
  return table(
    ['NAME', 'SERVICE', 'MATCH', 'CLIENT-LANES'],
    items.map((e) => {
      const match = e.spec.match as { host?: string; pathPrefix?: string };
      return [
        e.metadata.name,
        String(e.spec.service),
        `${match.host ?? '*'}${match.pathPrefix ?? '/'}`,
        String(e.spec.clientLanes),
      ];
    }),
  );
}

async function readInput(file: string): Promise<string> {
  if (file !== '-') return await readFile(file, 'utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function watchStatus(
  fetch: () => Promise<Release>,
  intervalMs: number,
  modeFlags: string,
): Promise<void> {
  const tty = process.stdout.isTTY;
  let last = '';
  for (;;) {
    const release = await fetch();
    if (tty) {
      const text = renderStatus(release, undefined, modeFlags);
      if (text !== last) process.stdout.write(`\x1b[H\x1b[2J${text}\n`);
      last = text;
    } else {
      const line = `${new Date().toISOString()}  ${release.status.phase}  step ${stepText(release)}  weight ${release.status.weight}%  ${release.spec.services.map((s) => `${s.name}=${release.status.services[s.name]?.canary}/${release.status.services[s.name]?.health}`).join(' ')}`;
      const key = line.slice(25);
      if (key !== last) process.stdout.write(`${line}\n`);
      last = key;
    }
    if (['Succeeded', 'RolledBack', 'Failed'].includes(release.status.phase)) return;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

interface KubernetesOptions {
  kubernetes?: boolean;
  kubeconfig?: string;
  namespace?: string;
}

/** `--kubernetes [--kubeconfig F] [--namespace N]`: the cluster's Releases instead of a local controller. */
function withKubernetes(command: Command, what: string): Command {
  return command
    .addOption(new Option('--kubernetes', `Kubernetes mode: ${what}`).env('GRAYLANE_KUBERNETES'))
    .addOption(
      new Option(
        '--kubeconfig <file>',
        'with --kubernetes: the kubeconfig (default: in-cluster or ~/.kube/config)',
      ).env('KUBECONFIG'),
    )
    .addOption(
      new Option(
        '--namespace <ns>',
        "with --kubernetes: the namespace (default: the context's)",
      ).env('GRAYLANE_NAMESPACE'),
    );
}

/**
 * Loaded only with --kubernetes (as the controller's code only for `graylane controller`): the
 * Kubernetes client is most of a CLI call's start-up, and most calls do not need it.
 */
async function kubernetesReleases(opts: KubernetesOptions): Promise<KubernetesReleases> {
  const { KubernetesReleases } = await import('./kubernetes.js');
  try {
    return new KubernetesReleases({
      ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}),
      ...(opts.namespace ? { namespace: opts.namespace } : {}),
    });
  } catch (error) {
    usage((error as Error).message);
  }
}

/** One release, from the local controller or (with --kubernetes) from its custom resource. */
async function getRelease(
  program: Command,
  name: string,
  opts: KubernetesOptions,
): Promise<Release> {
  if (opts.kubernetes) return await (await kubernetesReleases(opts)).get(name);
  return await (await client(program)).call<Release>(
    'GET',
    `/v1/releases/${encodeURIComponent(name)}`,
  );
}

export function buildProgram(): Command {
  const program = new Command('graylane')
    .description('Release a change that spans several services as one canary (local mode).')
    .addOption(
      new Option('--server <url>', 'controller API').env('GRAYLANE_SERVER').default(DEFAULT_SERVER),
    )
    .addOption(
      new Option('--token <token>', 'write token (default: read from the state dir)').env(
        'GRAYLANE_TOKEN',
      ),
    )
    .addOption(
      new Option('--state-dir <dir>', 'state directory')
        .env('GRAYLANE_STATE_DIR')
        .default(DEFAULT_STATE_DIR),
    )
    .showHelpAfterError()
    .exitOverride();

  withKubernetes(program.command('controller'), 'Releases as custom resources, canary Deployments')
    .description('run the controller (HTTP API, state, reconcile loop) in the foreground')
    .addOption(
      new Option('--listen <host:port>', 'API address')
        .env('GRAYLANE_LISTEN')
        .default('127.0.0.1:7070'),
    )
    .addOption(
      new Option('--gateway <host:port>', 'also run a graylane-proxy gateway here').env(
        'GRAYLANE_GATEWAY',
      ),
    )
    .addOption(
      new Option(
        '--outbound <host:port>',
        'also run a graylane-proxy outbound (sidecar) listener here',
      ).env('GRAYLANE_OUTBOUND'),
    )
    .addOption(
      new Option('--read-token <token>', 'require this bearer token to read the route table').env(
        'GRAYLANE_READ_TOKEN',
      ),
    )
    .addOption(
      new Option('--drain <duration>', 'wait between unrouting an instance and stopping it')
        .env('GRAYLANE_DRAIN')
        .default('1s'),
    )
    .addOption(
      new Option(
        '--leave-running',
        'on exit, leave managed processes running for the next controller to adopt',
      ).env('GRAYLANE_LEAVE_RUNNING'),
    )
    .addOption(
      new Option('--log-level <level>', 'fatal|error|warn|info|debug|silent')
        .env('GRAYLANE_LOG_LEVEL')
        .default('info'),
    )
    .addOption(
      new Option('--lease-duration <duration>', 'with --kubernetes: leader-election lease')
        .env('GRAYLANE_LEASE_DURATION')
        .default('15s'),
    )
    .action(async (opts) => {
      const leaseDuration = parseDuration(opts.leaseDuration);
      if (leaseDuration === undefined)
        usage(`--lease-duration: not a duration: ${opts.leaseDuration}`);
      opts.leaseDuration = leaseDuration;
      const drain =
        parseDuration(opts.drain) ?? (opts.drain === '0' || opts.drain === '0s' ? 0 : undefined);
      if (drain === undefined) usage(`--drain: not a duration: ${opts.drain}`);
      const { runController } = await import('./controller-command.js');
      await runController({ ...opts, stateDir: program.opts().stateDir, drain }, usage);
    });

  program
    .command('apply')
    .description('create or update services, entrypoints and releases from YAML or JSON')
    .requiredOption('-f, --filename <file...>', 'file(s) to apply; - for standard input')
    .action(async (opts: { filename: string[] }) => {
      const api = await client(program);
      for (const file of opts.filename) {
        let text: string;
        try {
          text = await readInput(file);
        } catch (error) {
          usage(`${file}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`);
        }
        const { results } = await api.call<{
          results: Array<{ kind: string; name: string; result: string }>;
        }>('POST', '/v1/apply', { text });
        for (const r of results)
          process.stdout.write(`${r.kind.toLowerCase()}/${r.name} ${r.result}\n`);
      }
    });

  withKubernetes(program.command('get'), "the cluster's Release resources (releases only)")
    .description('list releases, services or entrypoints')
    .argument('<kind>', 'releases | services | entrypoints')
    .argument('[name]', 'one of them')
    .addOption(
      new Option('-o, --output <format>', 'output format')
        .choices(['table', 'json', 'yaml'])
        .default('table'),
    )
    .action(
      async (
        kind: string,
        name: string | undefined,
        opts: { output: string } & KubernetesOptions,
      ) => {
        const path = resource(kind);
        if (opts.kubernetes) {
          if (path !== 'releases')
            usage(
              `with --kubernetes, get lists releases; services are Deployments (kubectl get deployments), entrypoints: kubectl get entrypoints`,
            );
          const releases = await kubernetesReleases(opts);
          if (name) {
            print(
              (await releases.get(name)).object,
              opts.output === 'table' ? 'yaml' : opts.output,
            );
            return;
          }
          const items = await releases.list();
          if (
            print(
              items.map((r) => r.object),
              opts.output,
            )
          )
            return;
          process.stdout.write(
            items.length === 0
              ? `no releases in namespace ${releases.namespace}\n`
              : `${rowsOf(path, items as unknown as Doc[])}\n`,
          );
          return;
        }
        const api = await client(program);
        if (name) {
          const doc = await api.call<Doc>('GET', `/v1/${path}/${encodeURIComponent(name)}`);
          if (!print(doc, opts.output === 'table' ? 'yaml' : opts.output)) return;
          return;
        }
        const { items } = await api.call<{ items: Doc[] }>('GET', `/v1/${path}`);
        if (print(items, opts.output)) return;
        process.stdout.write(items.length === 0 ? `no ${path}\n` : `${rowsOf(path, items)}\n`);
      },
    );

  program
    .command('delete')
    .description('delete a release (ended), service or entrypoint (unused)')
    .argument('<kind>')
    .argument('<name>')
    .action(async (kind: string, name: string) => {
      const api = await client(program);
      await api.call('DELETE', `/v1/${resource(kind)}/${encodeURIComponent(name)}`);
      process.stdout.write(`${kind.replace(/s$/, '')}/${name} deleted\n`);
    });

  withKubernetes(program.command('status'), "the Release resource's status")
    .description('phase, step, weight, canary health and last events of a release')
    .argument('<release>')
    .option(
      '-w, --watch',
      'follow until the release ends (redraws on a terminal, prints changes otherwise)',
    )
    .option('--interval <duration>', 'poll interval with --watch', '1s')
    .action(
      async (name: string, opts: { watch?: boolean; interval: string } & KubernetesOptions) => {
        const fetch = () => getRelease(program, name, opts);
        const modeFlags = !opts.kubernetes
          ? ''
          : ` --kubernetes${opts.namespace ? ` --namespace ${opts.namespace}` : ''}`;
        if (opts.watch)
          return await watchStatus(fetch, parseDuration(opts.interval) ?? 1000, modeFlags);
        process.stdout.write(`${renderStatus(await fetch(), undefined, modeFlags)}\n`);
      },
    );

  withKubernetes(program.command('events'), "the Release resource's status")
    .description('every event of a release')
    .argument('<release>')
    .action(async (name: string, opts: KubernetesOptions) => {
      if (opts.kubernetes) {
        const release = await getRelease(program, name, opts);
        process.stdout.write(`${eventLines(release.status.events).join('\n')}\n`);
        return;
      }
      const api = await client(program);
      const { items } = await api.call<{ items: Release['status']['events'] }>(
        'GET',
        `/v1/releases/${encodeURIComponent(name)}/events`,
      );
      process.stdout.write(`${eventLines(items).join('\n')}\n`);
    });

  for (const action of RELEASE_ACTIONS) {
    withKubernetes(
      program.command(action),
      `ask the controller with the annotation ${REQUEST_ANNOTATION}=${action}:<id>`,
    )
      .description(`${action} a release`)
      .argument('<release>')
      .option('--wait', 'with --kubernetes: wait until the controller took the request')
      .option('--timeout <duration>', 'with --wait: how long', '60s')
      .action(
        async (name: string, opts: { wait?: boolean; timeout: string } & KubernetesOptions) => {
          if (opts.kubernetes) {
            const timeout = parseDuration(opts.timeout);
            if (timeout === undefined) usage(`--timeout: not a duration: ${opts.timeout}`);
            const releases = await kubernetesReleases(opts);
            const value = await releases.request(name, action);
            if (!opts.wait) {
              process.stdout.write(
                `release/${name} ${action} requested (${REQUEST_ANNOTATION}=${value})\n`,
              );
              return;
            }
            const release = await releases.waitForRequest(name, value, timeout);
            process.stdout.write(`release/${name} ${action}: ${release.status.phase}\n`);
            return;
          }
          const api = await client(program);
          const release = await api.call<Release>(
            'POST',
            `/v1/releases/${encodeURIComponent(name)}/${action}`,
          );
          process.stdout.write(`release/${name} ${action}: ${release.status.phase}\n`);
        },
      );
  }

  program
    .command('check')
    .description(
      'send requests tagged with a lane through the entry and check the path each took (x-lane-served); exit 1 when one left the lane',
    )
    .requiredOption('--entry <url>', 'the gateway URL to send them to')
    .requiredOption('--lane <lane>', 'the lane to tag them with')
    .option('-n, --requests <count>', 'how many requests', '50')
    .option(
      '--expect <services>',
      'the lane each service must serve, e.g. frontend=gray,backend=stable',
    )
    .option('--release <name>', 'expect what this release routes now (asks the controller)')
    .option('-H, --header <header...>', 'extra request header(s), NAME:VALUE')
    .option('--lane-header <name>', 'the lane header', 'x-lane')
    .addOption(new Option('-o, --output <format>').choices(['text', 'json']).default('text'))
    .action(
      async (opts: {
        entry: string;
        lane: string;
        requests: string;
        expect?: string;
        release?: string;
        header?: string[];
        laneHeader: string;
        output: string;
      }) => {
        if (!isValidLaneName(opts.lane))
          usage(`--lane: not a lane name (a DNS label): ${opts.lane}`);
        const requests = Number(opts.requests);
        if (!Number.isInteger(requests) || requests < 1 || requests > 100_000)
          usage(`--requests: a whole number from 1 to 100000, not ${opts.requests}`);
        if (!URL.canParse(opts.entry) || !/^https?:$/.test(new URL(opts.entry).protocol))
          usage(`--entry: not an http(s) URL: ${opts.entry}`);
        const headers: Record<string, string> = {};
        for (const header of opts.header ?? []) {
          const colon = header.indexOf(':');
          if (colon < 1) usage(`--header: "${header}" is not NAME:VALUE`);
          headers[header.slice(0, colon).trim().toLowerCase()] = header.slice(colon + 1).trim();
        }
        let expect: Expectation | undefined;
        if (opts.expect !== undefined) {
          const parsed = parseExpectation(opts.expect);
          if (typeof parsed === 'string') usage(parsed);
          expect = parsed;
        }
        if (opts.release !== undefined) {
          const api = await client(program);
          const release = await api.call<Release>(
            'GET',
            `/v1/releases/${encodeURIComponent(opts.release)}`,
          );
          if (release.spec.lane !== opts.lane)
            usage(`--release ${opts.release} is lane ${release.spec.lane}, not ${opts.lane}`);
          const derived = expectationOf(release);
          if (typeof derived === 'string')
            throw new ApiCallError(ControllerErrors.invalidAction.code, derived);
          expect = { ...derived, ...expect };
        }
        const report = await runCheck({
          entry: opts.entry,
          lane: opts.lane,
          requests,
          laneHeader: opts.laneHeader.toLowerCase(),
          headers,
          ...(expect ? { expect } : {}),
        });
        if (!print(report, opts.output)) process.stdout.write(`${renderCheck(report)}\n`);
        if (!report.ok) process.exitCode = 1;
      },
    );

  program
    .command('inject')
    .description(
      'add the graylane-proxy sidecar and HTTP_PROXY to the workloads of a Kubernetes manifest',
    )
    .requiredOption('-f, --filename <file>', 'the manifest (YAML); - for standard input')
    .option('--image <image>', 'the image with graylane-proxy in it', GRAYLANE_IMAGE)
    .option(
      '--route-table <url>',
      'where the sidecar watches the route table',
      'http://graylane-controller:7070/v1/routetable',
    )
    .action(async (opts: { filename: string; image: string; routeTable: string }) => {
      let text: string;
      try {
        text = await readInput(opts.filename);
      } catch (error) {
        usage(`${opts.filename}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`);
      }
      const documents = parseAllDocuments(text).map((d) => d.toJS() as unknown);
      const injected = injectManifest(documents, {
        image: opts.image,
        routeTable: opts.routeTable,
      });
      process.stdout.write(injected.map((d) => stringify(d)).join('---\n'));
    });

  program
    .command('routetable')
    .description('the route table the controller serves')
    .addOption(new Option('-o, --output <format>').choices(['json', 'yaml']).default('yaml'))
    .action(async (opts: { output: string }) => {
      const api = await client(program);
      print(await api.call('GET', '/v1/routetable'), opts.output);
    });

  return program;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exit(error.exitCode === 0 ? 0 : 2);
    }
    if (error instanceof ApiCallError) {
      process.stderr.write(`graylane: ${error.code}: ${error.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`graylane: ${(error as Error).message}\n`);
    process.exit(1);
  }
}

void main(process.argv);
