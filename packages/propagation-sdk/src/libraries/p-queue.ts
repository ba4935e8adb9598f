import { AsyncResource } from 'node:async_hooks';

/**
 * p-queue starts a queued job from the continuation of the job that finished before it, so without
 * help a job runs in the context of whichever request fed the queue last: another request, often
 * still live, whose lane the job's calls would carry (4 of 200 calls in `stacks.test.ts`, and 144 more
 * sent untagged because that request had just ended). Each job is bound to the context of the `add`
 * call, as OpenTelemetry's instrumentations bind the callbacks of libraries that pool work
 * (`AsyncResource.bind`). `addAll` goes through `add`.
 *
 * The job runs in its own request's context as that request is: once the request has ended, its calls
 * are stale and go out untagged (leak.ts); `bindLane(job)` keeps the lane past the response.
 */

const boundMark = Symbol.for('graylane.sdk.pQueueBound');

interface QueueClass {
  prototype: { add?: (job: unknown, ...rest: unknown[]) => unknown; [boundMark]?: true };
}

export function bindQueueJobs(exported: unknown): void {
  const proto = (exported as QueueClass | undefined)?.prototype;
  const add = proto?.add;
  // A second copy of the SDK, or a second import of the same file, finds the mark.
  if (proto === undefined || typeof add !== 'function' || Object.hasOwn(proto, boundMark)) return;
  proto[boundMark] = true;
  proto.add = function graylaneAdd(this: unknown, job: unknown, ...rest: unknown[]) {
    const bound = typeof job === 'function' ? AsyncResource.bind(job as () => unknown) : job;
    return add.call(this, bound, ...rest);
  };
}
