import { readLaneTag, STABLE, type TagOptions } from '@graylane/lane-core';
import {
  type Context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
} from '@opentelemetry/api';
import { getConfig } from '../config.js';
import { currentContext } from '../context.js';
import { countInvalidLane } from '../metrics.js';
import { contextWithLane, laneFromOtelContext, otelInjectPaused } from './bridge.js';

/**
 * An OpenTelemetry `TextMapPropagator` for the lane header. The lane itself lives in OTel baggage
 * (under the baggage key), so `W3CBaggagePropagator` carries it in `baggage`; this one adds the lane
 * header on inject, and on extract reads header and baggage with the proxy's validation (header
 * wins) into the context's baggage.
 *
 * Put it after `W3CBaggagePropagator` in a `CompositePropagator`: that propagator's extract replaces
 * the whole baggage, which would drop a lane taken from the header.
 */
export class GraylanePropagator implements TextMapPropagator {
  readonly #options: Partial<TagOptions>;

  constructor(options: Partial<TagOptions> = {}) {
    this.#options = options;
  }

  #tagOptions(): TagOptions {
    return { ...getConfig(), ...this.#options };
  }

  inject(context: Context, carrier: unknown, setter: TextMapSetter = defaultTextMapSetter): void {
    try {
      // The SDK's own hook has tagged this call already; a second line would make the tag invalid.
      if (otelInjectPaused()) return;
      const options = this.#tagOptions();
      // A tag set explicitly on the call wins over the context, as everywhere else.
      if (hasHeader(carrier, options.laneHeader)) return;
      const lane = laneFromOtelContext(context, options.baggageKey) ?? currentContext()?.lane;
      if (lane !== undefined && lane !== STABLE) setter.set(carrier, options.laneHeader, lane);
    } catch {
      // Instrumentation never throws into the app; the call goes on untagged.
    }
  }

  extract(
    context: Context,
    carrier: unknown,
    getter: TextMapGetter = defaultTextMapGetter,
  ): Context {
    try {
      const options = this.#tagOptions();
      const tag = readLaneTag(
        getter.get(carrier, options.laneHeader),
        getter.get(carrier, 'baggage'),
        options,
      );
      if (tag.invalid) countInvalidLane('extract');
      // An invalid tag is dropped: the lane entry that W3C baggage extraction may have copied goes too.
      if (tag.source === 'none' && !tag.invalid) return context;
      return contextWithLane(context, tag.lane, options.baggageKey);
    } catch {
      return context;
    }
  }

  fields(): string[] {
    return [this.#tagOptions().laneHeader];
  }
}

/** Whether a plain-object carrier (node:http's request headers) already has `name`, in any case. */
function hasHeader(carrier: unknown, name: string): boolean {
  if (typeof carrier !== 'object' || carrier === null || Array.isArray(carrier)) return false;
  for (const key of Object.keys(carrier)) {
    if (key.toLowerCase() === name && (carrier as Record<string, unknown>)[key] !== undefined) {
      return true;
    }
  }
  return false;
}
