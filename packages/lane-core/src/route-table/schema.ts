import { z } from 'zod';

/**
 * The route table: the one document every proxy consumes. This schema is the single source of the
 * TypeScript types, the structural validation and the field table in docs/route-table.md.
 * Cross-references (unknown services, fallback cycles, duplicate endpoints) are checked in validate.ts.
 */

const headerName = z
  .string()
  .regex(/^[!#$%&'*+\-.^_`|~0-9a-z]+$/, 'a header name in lower case')
  .describe('An HTTP header name, lower case.');

export const EndpointSetSchema = z
  .object({
    version: z
      .string()
      .min(1)
      .optional()
      .describe('The version these endpoints run; a label on metrics and `x-lane-served`.'),
    endpoints: z
      .array(z.string())
      .default([])
      .describe('Base URLs (`http://host:port` or `https://…`), no path.'),
  })
  .strict();

export const LaneSetSchema = EndpointSetSchema.extend({
  fallback: z
    .string()
    .default('stable')
    .describe(
      "Where this lane's traffic goes when it has no available endpoint: `stable`, another lane of the same service (a chain), or `none` (503).",
    ),
}).strict();

export const LoadBalancingSchema = z
  .enum(['least-request', 'round-robin'])
  .describe(
    'How an endpoint is picked within a set: least-request with two random choices, or round robin.',
  );

export const HealthCheckSchema = z
  .object({
    path: z
      .string()
      .startsWith('/', 'path starts with /')
      .describe('Path to GET; a 2xx or 3xx is healthy.'),
    intervalMs: z
      .number()
      .int()
      .min(100)
      .default(5000)
      .describe('Time between checks of an endpoint.'),
    timeoutMs: z.number().int().min(10).default(1000).describe('A check that takes longer fails.'),
    unhealthyThreshold: z
      .number()
      .int()
      .min(1)
      .default(2)
      .describe('Consecutive failed checks that make an endpoint unhealthy.'),
    healthyThreshold: z
      .number()
      .int()
      .min(1)
      .default(1)
      .describe('Consecutive passed checks that make an unhealthy endpoint healthy again.'),
  })
  .strict();

const hostName = z
  .string()
  .regex(
    /^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$/,
    'a host name without port (letters, digits, dots, dashes)',
  );

export const ServiceSchema = z
  .object({
    stable: EndpointSetSchema.describe('The stable (default) endpoints.'),
    hosts: z
      .array(hostName)
      .default([])
      .describe(
        "More host names that name this service at the outbound listener, besides `<service>`, `<service>.<namespace>`, `<service>.<namespace>.svc[.<cluster-domain>]` and the proxy's `serviceDomains`. Exact names, case-insensitive; a host may belong to one service only.",
      ),
    lanes: z
      .record(z.string(), LaneSetSchema)
      .default({})
      .describe('Canary endpoints by lane name (a DNS label, not `stable`).'),
    loadBalancing: LoadBalancingSchema.default('least-request'),
    healthCheck: HealthCheckSchema.optional().describe(
      'Active health checks of every endpoint of the service. A lane whose endpoints all fail them falls back, and returns when they pass again.',
    ),
    retryNonIdempotent: z
      .boolean()
      .default(false)
      .describe(
        'Also retry POST, PATCH and other non-idempotent requests that were sent but got no response (connect failures are always retried).',
      ),
  })
  .strict();

export const StringMatchSchema = z
  .union([
    z.object({ exact: z.string().describe('The whole value equals this.') }).strict(),
    z.object({ prefix: z.string().describe('The value starts with this.') }).strict(),
    z
      .object({
        regex: z
          .string()
          .describe('A JavaScript regular expression, unanchored, that the value matches.'),
      })
      .strict(),
  ])
  .describe('Exactly one of `exact`, `prefix` or `regex` (JavaScript syntax, unanchored).');

export const AssignRuleSchema = z
  .object({
    lane: z.string().describe('The lane this rule assigns.'),
    when: z
      .object({
        headers: z
          .record(headerName, StringMatchSchema)
          .default({})
          .describe('Every header named must match (a missing header does not).'),
      })
      .strict()
      .optional()
      .describe('Conditions; all must hold. Without `when` the rule matches every request.'),
    weight: z
      .number()
      .min(0, 'weight must be between 0 and 100')
      .max(100, 'weight must be between 0 and 100')
      .optional()
      .describe(
        'Percent of the requests that reach this rule to put in the lane (0..100, decimals allowed).',
      ),
    sticky: z
      .string()
      .regex(
        /^(cookie|header):[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/,
        'sticky is cookie:NAME or header:NAME',
      )
      .optional()
      .describe(
        '`cookie:NAME` or `header:NAME`: the same key always gets the same answer, and a key in the lane stays in it as the weight grows. The gateway sets the cookie when absent.',
      ),
  })
  .strict();

export const ClientLanesSchema = z
  .enum(['off', 'known', 'any'])
  .describe(
    'May a client choose its lane with the lane header or baggage? `off` strips it, `known` accepts lanes this table defines, `any` accepts every valid tag.',
  );

export const EntrypointSchema = z
  .object({
    name: z.string().min(1).describe('Names the entrypoint in metrics and logs.'),
    match: z
      .object({
        host: z
          .string()
          .regex(
            /^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$/,
            'a host name without port, or *.domain',
          )
          .optional()
          .describe(
            'Host to match, without port, case-insensitive; `*.example.com` matches any name below `example.com`; any host when absent. An exact host beats a wildcard beats any host.',
          ),
        pathPrefix: z
          .string()
          .startsWith('/', 'pathPrefix starts with /')
          .default('/')
          .describe(
            'Path prefix to match; within the chosen host, the longest matching prefix wins.',
          ),
      })
      .strict()
      .default({ pathPrefix: '/' })
      .describe('Which requests this entrypoint takes; every request when absent.'),
    service: z.string().describe('The service the gateway forwards this entrypoint to.'),
    clientLanes: ClientLanesSchema.default('known'),
    clientLanesSecret: z
      .object({
        header: headerName.describe(
          'Header that must carry the secret; stripped before forwarding.',
        ),
        value: z
          .string()
          .min(8, 'a secret of at least 8 characters')
          .describe('The shared secret.'),
      })
      .strict()
      .optional()
      .describe(
        'When set, a client tag is accepted only from a client that also sends this secret.',
      ),
    assign: z
      .array(AssignRuleSchema)
      .default([])
      .describe(
        'Rules for requests without an accepted client lane; the first that matches assigns its lane.',
      ),
  })
  .strict();

export const RouteTableSchema = z
  .object({
    apiVersion: z.literal('graylane/v1').describe('Always `graylane/v1`.'),
    revision: z
      .number()
      .int('revision must be an integer')
      .min(0)
      .describe('Increases on every change; proxies report the revision they serve.'),
    laneHeader: headerName.default('x-lane').describe('The lane header.'),
    baggageKey: z
      .string()
      .regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'a baggage key is a token')
      .default('lane')
      .describe('The W3C baggage entry that also carries the lane.'),
    services: z
      .record(z.string(), ServiceSchema)
      .default({})
      .describe(
        'Services by name (a DNS label). Callers name one as `<service>`, `<service>.<namespace>`, `<service>.<namespace>.svc[.<cluster-domain>]`, or one of its `hosts`.',
      ),
    entrypoints: z
      .array(EntrypointSchema)
      .default([])
      .describe('Where the gateway lets traffic in.'),
  })
  .strict();

export type RouteTable = z.output<typeof RouteTableSchema>;
export type RouteTableInput = z.input<typeof RouteTableSchema>;
export type Service = z.output<typeof ServiceSchema>;
export type EndpointSet = z.output<typeof EndpointSetSchema>;
export type LaneSet = z.output<typeof LaneSetSchema>;
export type Entrypoint = z.output<typeof EntrypointSchema>;
export type AssignRule = z.output<typeof AssignRuleSchema>;
export type StringMatch = z.output<typeof StringMatchSchema>;
export type ClientLanes = z.output<typeof ClientLanesSchema>;
export type LoadBalancing = z.output<typeof LoadBalancingSchema>;
export type HealthCheck = z.output<typeof HealthCheckSchema>;
