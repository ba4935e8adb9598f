import {
  EntrypointSchema,
  HealthCheckSchema,
  LANE_PATTERN,
  LoadBalancingSchema,
  StringMatchSchema,
} from '@graylane/lane-core';
import { z } from 'zod';
import { AnalysisSchema } from './analysis.js';
import { DurationSchema } from './duration.js';

/**
 * The documents `graylane apply` takes and the API returns. They have the Kubernetes shape
 * (apiVersion, kind, metadata, spec, status) so that one Release works in local mode and, later, as
 * the CRD. This file is the single source of their types, validation and docs/controller.md tables.
 */

export const API_VERSION = 'graylane.dev/v1alpha1';

const dnsLabel = (what: string) =>
  z.string().regex(LANE_PATTERN, `${what} is a DNS label: lower-case letters, digits and -`);

export const MetadataSchema = z
  .object({
    name: dnsLabel('a name').describe('The name (a DNS label).'),
    labels: z.record(z.string(), z.string()).optional().describe('Free-form labels.'),
  })
  .strict();

export const RunSpecSchema = z
  .object({
    command: z.string().min(1).describe('The program to start (looked up on PATH).'),
    args: z.array(z.string()).default([]).describe('Its arguments.'),
    env: z
      .record(z.string(), z.string())
      .default({})
      .describe('Extra environment; `PORT` is set to the instance port, and the outbound proxy.'),
    cwd: z.string().optional().describe('Working directory; the controller’s when absent.'),
    port: z
      .number()
      .int()
      .min(1)
      .max(65535)
      .optional()
      .describe('Port of the first instance (the next ones count up); a free port when absent.'),
    replicas: z.number().int().min(1).max(32).default(1).describe('Instances to run.'),
    readyPath: z
      .string()
      .startsWith('/', 'readyPath starts with /')
      .default('/')
      .describe('GET path that answers 2xx once an instance is ready for traffic.'),
    readyTimeout: DurationSchema.default('30s').describe(
      'Time an instance has to become ready; past it the deploy fails.',
    ),
  })
  .strict()
  .describe('A process the controller starts and supervises (local mode).');

export const WorkloadSchema = z
  .object({
    version: z
      .string()
      .min(1)
      .describe('The version it runs; a label on metrics and `x-lane-served`.'),
    endpoints: z
      .array(z.string())
      .min(1)
      .optional()
      .describe('Base URLs of instances run by someone else (`http://host:port`).'),
    run: RunSpecSchema.optional(),
    image: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Kubernetes mode: the image of the canary (its containers named by `patch`, or all).',
      ),
    patch: z
      .record(z.string(), z.unknown())
      .optional()
      .describe(
        'Kubernetes mode: a strategic-merge patch of the Deployment for the canary (`{ spec: { template: … } }`).',
      ),
  })
  .strict()
  .refine(
    (w) =>
      [
        w.endpoints !== undefined,
        w.run !== undefined,
        w.image !== undefined || w.patch !== undefined,
      ].filter(Boolean).length === 1,
    { message: 'exactly one of endpoints, run, or image/patch' },
  )
  .describe(
    'Where a version runs: `endpoints` (run elsewhere), `run` (a local process) or `image`/`patch` (a Kubernetes Deployment).',
  );

export const ServiceSpecSchema = z
  .object({
    stable: WorkloadSchema.describe('The stable version.'),
    loadBalancing: LoadBalancingSchema.optional(),
    healthCheck: HealthCheckSchema.optional().describe(
      'Active health checks of every endpoint, by the proxies.',
    ),
    retryNonIdempotent: z.boolean().optional().describe('As in the route table.'),
  })
  .strict();

export const EntrypointSpecSchema = EntrypointSchema.omit({ name: true }).describe(
  'Mirrors the route table’s entrypoint; its name is metadata.name.',
);

export const StepSchema = z
  .union([
    z
      .object({
        weight: z
          .number()
          .min(0, 'weight must be between 0 and 100')
          .max(100, 'weight must be between 0 and 100')
          .describe('Percent of the entry’s untagged, unmatched traffic to put in the lane.'),
      })
      .strict(),
    z
      .object({
        pause: z
          .object({
            duration: DurationSchema.optional().describe(
              'How long to wait; without it the release waits for `graylane approve`.',
            ),
          })
          .strict()
          .describe('Wait for a time, or until approved.'),
      })
      .strict(),
  ])
  .describe('Exactly one of `weight` or `pause`.');

export const MatchRuleSchema = z
  .object({
    headers: z
      .record(
        z.string().regex(/^[!#$%&'*+\-.^_`|~0-9a-z]+$/, 'a header name in lower case'),
        StringMatchSchema,
      )
      .default({})
      .describe('Every header named must match.'),
  })
  .strict();

export const ReleaseServiceSchema = z
  .object({
    name: dnsLabel('a service name').describe('A Service applied before.'),
    canary: WorkloadSchema.describe('The canary: its version and where it runs.'),
    dependsOn: z
      .array(z.string())
      .optional()
      .describe('Services of this release it calls; they deploy first. List order when absent.'),
  })
  .strict();

export const ReleaseSpecSchema = z
  .object({
    lane: dnsLabel('a lane')
      .refine((lane) => lane !== 'stable', '"stable" is the default lane, not a release lane')
      .describe('The lane of the release (a DNS label, not `stable`).'),
    entrypoint: z.string().min(1).describe('The Entrypoint where traffic splits.'),
    services: z
      .array(ReleaseServiceSchema)
      .min(1, 'a release has at least one service')
      .describe('The services in the release, callees first unless `dependsOn` says otherwise.'),
    match: z
      .array(MatchRuleSchema)
      .default([])
      .describe('Requests put in the lane from the first step on (testers: a header or a cookie).'),
    sticky: z
      .string()
      .regex(
        /^(cookie|header):[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/,
        'sticky is cookie:NAME or header:NAME',
      )
      .default('cookie:graylane')
      .describe('What keeps a user in the lane as the weight changes.'),
    steps: z
      .array(StepSchema)
      .min(1, 'a release needs at least one step; the last one ends in promotion')
      .optional()
      .describe(
        'Walked in order; after the last one the release promotes. Without them, `analysis.stepWeight` makes the steps.',
      ),
    analysis: AnalysisSchema.optional(),
    trafficFromReplicas: z
      .boolean()
      .default(false)
      .describe(
        'Split the entry by instance count, as a Kubernetes Service does over the pods of both versions: the lane gets canary / (canary + stable) instances of the entry’s service of the untagged, unmatched traffic, once every canary is deployed. Steps are then pauses only.',
      ),
  })
  .strict()
  .refine(
    (spec) =>
      !spec.trafficFromReplicas ||
      (spec.analysis?.stepWeight === undefined &&
        (spec.steps ?? []).every((step) => !('weight' in step))),
    {
      message: 'with trafficFromReplicas the replicas set the weight: steps are pauses only',
      path: ['steps'],
    },
  )
  .refine((spec) => spec.steps !== undefined || spec.analysis?.stepWeight !== undefined, {
    message: 'a release needs steps, or analysis.stepWeight to make them',
    path: ['steps'],
  })
  .refine(
    (spec) =>
      spec.analysis?.provider.type !== 'direct' ||
      spec.analysis.checks.every((check) => check.name !== 'custom'),
    {
      message: 'custom checks are PromQL: they need the prometheus provider',
      path: ['analysis', 'checks'],
    },
  );

const document = <K extends string, S extends z.ZodType>(kind: K, spec: S) =>
  z
    .object({
      apiVersion: z.literal(API_VERSION).describe(`Always \`${API_VERSION}\`.`),
      kind: z.literal(kind),
      metadata: MetadataSchema,
      spec,
      status: z.unknown().optional().describe('Filled by the controller; ignored on input.'),
    })
    .strict();

export const ServiceDocumentSchema = document('Service', ServiceSpecSchema);
export const EntrypointDocumentSchema = document('Entrypoint', EntrypointSpecSchema);
export const ReleaseDocumentSchema = document('Release', ReleaseSpecSchema);

export const KINDS = ['Service', 'Entrypoint', 'Release'] as const;
export type Kind = (typeof KINDS)[number];

export type Metadata = z.output<typeof MetadataSchema>;
export type RunSpec = z.output<typeof RunSpecSchema>;
export type Workload = z.output<typeof WorkloadSchema>;
export type ServiceSpec = z.output<typeof ServiceSpecSchema>;
export type EntrypointSpec = z.output<typeof EntrypointSpecSchema>;
export type Step = z.output<typeof StepSchema>;
export type MatchRule = z.output<typeof MatchRuleSchema>;
export type ReleaseService = z.output<typeof ReleaseServiceSchema>;
export type ReleaseSpec = z.output<typeof ReleaseSpecSchema>;
export type ServiceDocument = z.output<typeof ServiceDocumentSchema>;
export type EntrypointDocument = z.output<typeof EntrypointDocumentSchema>;
export type ReleaseDocument = z.output<typeof ReleaseDocumentSchema>;
