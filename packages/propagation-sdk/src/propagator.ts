import {
  BAGGAGE_HEADER,
  type HeaderCarrier,
  type LaneTag,
  readLaneTagFrom,
  type TagOptions,
  writeLaneTag,
} from '@graylane/lane-core';
import { carrierFor } from './carriers.js';
import { getConfig } from './config.js';
import { getLane } from './context.js';
import { countInvalidLane } from './metrics.js';

/**
 * inject/extract over any carrier, in the shape OpenTelemetry users know, for what the automatic
 * hooks do not see: message-queue headers, job payloads, a custom transport. The getter and setter
 * are optional for `Headers`, `Map` and plain objects.
 */

type Value = string | readonly string[] | undefined;

export interface LaneGetter<C> {
  get(carrier: C, key: string): Value;
}

/** `get` and `delete` are needed to merge into an existing `baggage` value and to clear a tag. */
export interface LaneSetter<C> {
  set(carrier: C, key: string, value: string): void;
  get?(carrier: C, key: string): Value;
  delete?(carrier: C, key: string): void;
}

export interface LanePropagator {
  /** Writes the current lane (or an explicit tag already in the carrier) into it; returns the lane. */
  inject<C extends object>(carrier: C, setter?: LaneSetter<C>): string;
  /** Reads the lane from a carrier; an invalid tag is dropped (read as stable) and counted. */
  extract<C extends object>(carrier: C, getter?: LaneGetter<C>): LaneTag;
  /** The keys this propagator reads and writes. */
  fields(): string[];
}

function adapt<C extends object>(
  carrier: C,
  accessor?: LaneSetter<C> | LaneGetter<C>,
): HeaderCarrier {
  if (accessor === undefined) return carrierFor(carrier);
  return {
    get: (name) => accessor.get?.(carrier, name),
    set: (name, value) => {
      if ('set' in accessor) accessor.set(carrier, name, value);
    },
    delete: (name) => {
      if ('delete' in accessor) accessor.delete?.(carrier, name);
    },
  };
}

/**
 * A propagator with fixed options, or (by default) one that follows `configure()`: the same header
 * name, baggage key and validation as the proxy.
 */
export function createPropagator(options?: Partial<TagOptions>): LanePropagator {
  const tagOptions = (): TagOptions => ({ ...getConfig(), ...options });
  return {
    inject(carrier, setter) {
      const opts = tagOptions();
      const target = adapt(carrier, setter);
      const tag = readLaneTagFrom(target, opts);
      if (tag.invalid) countInvalidLane('outbound');
      const lane = tag.source === 'none' ? getLane() : tag.lane;
      writeLaneTag(target, lane, opts);
      return lane;
    },
    extract(carrier, getter) {
      const tag = readLaneTagFrom(adapt(carrier, getter), tagOptions());
      if (tag.invalid) countInvalidLane('extract');
      return tag;
    },
    fields() {
      return [tagOptions().laneHeader, BAGGAGE_HEADER];
    },
  };
}

/** The default propagator, following `configure()`. */
export const propagator: LanePropagator = createPropagator();
export const inject: LanePropagator['inject'] = (carrier, setter) =>
  propagator.inject(carrier, setter);
export const extract: LanePropagator['extract'] = (carrier, getter) =>
  propagator.extract(carrier, getter);
export const fields = (): string[] => propagator.fields();
