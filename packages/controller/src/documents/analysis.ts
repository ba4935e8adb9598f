import { z } from 'zod';
import { DurationSchema } from './duration.js';

/**
 * `spec.analysis` of a Release: the metric checks that gate each step, as in Flagger's canary
 * analysis, but over every service of the lane and with fallbacks away from a canary counted as its
 * failures. docs/analysis.md is the user guide; this file is the single source of the fields.
 */

const RelativeSchema = z
  .number()
  .min(1, 'relative is a ratio of at least 1 (canary ≤ relative × stable)')
  .optional()
  .describe(
    'Compare with the stable version over the same interval: the check fails when canary > relative × stable.',
  );

export const SuccessRateCheckSchema = z
  .object({
    name: z.literal('request-success-rate'),
    min: z
      .number()
      .min(0, 'min is a percentage')
      .max(100, 'min is a percentage')
      .default(99)
      .describe(
        'Lowest percentage of canary requests that succeed (not 5xx, not a fallback away from the canary).',
      ),
  })
  .strict();

export const DurationCheckSchema = z
  .object({
    name: z.literal('request-duration'),
    stat: z
      .enum(['mean', 'p99'])
      .default('p99')
      .describe('The statistic of the canary’s durations.'),
    max: DurationSchema.optional().describe('Longest the statistic may be.'),
    relative: RelativeSchema,
  })
  .strict()
  .refine((check) => check.max !== undefined || check.relative !== undefined, {
    message: 'request-duration needs max, relative or both',
  });

export const CustomCheckSchema = z
  .object({
    name: z.literal('custom'),
    id: z.string().min(1).describe('What events and `graylane status` call the check.'),
    query: z
      .string()
      .min(1)
      .describe(
        'PromQL giving one number; `{{ lane }}`, `{{ service }}` and `{{ interval }}` are replaced.',
      ),
    min: z.number().optional().describe('Lowest value that passes.'),
    max: z.number().optional().describe('Highest value that passes.'),
    relative: RelativeSchema,
  })
  .strict()
  .refine((c) => c.min !== undefined || c.max !== undefined || c.relative !== undefined, {
    message: 'a custom check needs min, max or relative',
  });

export const CheckSchema = z
  .union([SuccessRateCheckSchema, DurationCheckSchema, CustomCheckSchema])
  .describe('One of `request-success-rate`, `request-duration` or `custom`, checked per service.');

export const ProviderSchema = z
  .discriminatedUnion('type', [
    z
      .object({
        type: z.literal('direct'),
        targets: z
          .array(z.url())
          .optional()
          .describe('Proxies’ admin `/metrics` URLs; the proxy the controller runs when absent.'),
      })
      .strict(),
    z
      .object({
        type: z.literal('prometheus'),
        address: z.url().describe('The Prometheus server (`http://127.0.0.1:9090`).'),
      })
      .strict(),
  ])
  .describe(
    '`direct`: the controller scrapes the proxies itself; `prometheus`: queries a server that scrapes them.',
  );

export const WEBHOOK_TYPES = [
  'pre-rollout',
  'rollout',
  'confirm-promotion',
  'post-rollout',
  'rollback',
] as const;

export const WebhookSchema = z
  .object({
    name: z.string().min(1).describe('What events call it.'),
    type: z
      .enum(WEBHOOK_TYPES)
      .describe(
        'When it is called: `pre-rollout` before the first weight (a failure counts as a failed interval), `rollout` every interval (as a check), `confirm-promotion` before promotion (waits until 2xx), `post-rollout` once the release ends, `rollback` every interval (2xx rolls back).',
      ),
    url: z.url().describe('Gets an HTTP POST of the release’s state as JSON.'),
    timeout: DurationSchema.default('10s').describe('No answer within it is a failure.'),
    metadata: z
      .record(z.string(), z.string())
      .default({})
      .describe('Sent along in the body, as in Flagger.'),
  })
  .strict()
  .describe('Flagger-style webhooks: 2xx passes, anything else or a timeout fails.');

export const LoadSchema = z
  .object({
    rps: z.number().min(0.1).max(1000).default(10).describe('Requests per second.'),
    path: z.string().startsWith('/', 'path starts with /').default('/').describe('Request path.'),
    duration: DurationSchema.optional().describe(
      'How long to send at each analysed step; the whole step when absent.',
    ),
    url: z
      .url()
      .optional()
      .describe('The entry to send to; the gateway the controller runs when absent.'),
  })
  .strict()
  .describe(
    'Synthetic load for low-traffic lanes: GETs tagged with the lane and `x-graylane-synthetic: 1`, which proxies count apart from business metrics.',
  );

export const AnalysisSchema = z
  .object({
    provider: ProviderSchema.default({ type: 'direct' }),
    interval: DurationSchema.default('10s').describe('How long each check measures.'),
    threshold: z
      .number()
      .int()
      .min(1)
      .default(2)
      .describe('Failed intervals (in a row or not) that roll the release back.'),
    minSamples: z
      .number()
      .int()
      .min(0)
      .default(20)
      .describe('Fewer canary requests of a service in an interval fail its checks: no data.'),
    stepWeight: z
      .number()
      .min(1)
      .max(100)
      .optional()
      .describe('Without `steps`: the weight grows by this much after each passing interval.'),
    maxWeight: z
      .number()
      .min(1)
      .max(100)
      .default(50)
      .describe('With `stepWeight`: the first weight at or above it is the last step.'),
    checks: z
      .array(CheckSchema)
      .min(1, 'an analysis has at least one check')
      .describe('Checked for every service of the lane each interval; see docs/analysis.md.'),
    webhooks: z.array(WebhookSchema).default([]),
    load: LoadSchema.optional(),
  })
  .strict()
  .describe('Metric analysis of every step; see docs/analysis.md.');

export type Analysis = z.output<typeof AnalysisSchema>;
export type Check = z.output<typeof CheckSchema>;
export type Provider = z.output<typeof ProviderSchema>;
export type Webhook = z.output<typeof WebhookSchema>;
export type Load = z.output<typeof LoadSchema>;
export type WebhookType = (typeof WEBHOOK_TYPES)[number];
