import type { Logger } from 'pino';
import type { Camera, CaptureSettings } from '../camera/types.js';
import type { CaptureQueue } from '../camera/queue.js';
import type { ImageStore } from '../storage/types.js';
import type { NodeLogger } from '../logs/types.js';
import type { Telemetry } from '../telemetry/types.js';
import type { EventBus } from '../events.js';
import { NodeError, toNodeError } from '../errors.js';
import { buildStatus, type CaptureCounters, type NodeStatus } from '../status.js';
import { preciseNow } from '../schedule/clock.js';
import { imageTimestamp } from '../storage/names.js';
import { runCapturePlan, type FrameDone } from './burst.js';
import { readPreview } from './preview.js';
import { planCapture, type CaptureScheduler } from './schedule.js';
import type { CommandContext, Commands, DeliveryChannel } from './types.js';

export interface CommandsOptions {
  nodeId: string;
  version: string;
  camera: Camera;
  queue: CaptureQueue;
  store: ImageStore;
  logs: NodeLogger;
  telemetry: Telemetry;
  events: EventBus;
  logger: Logger;
  maxLogLines: number;
  /** Status blocks contributed by optional parts (mqtt, delivery), read at every status(). */
  statusParts: ReadonlyMap<string, () => unknown>;
  isStopping: () => boolean;
  /** Where captures go when the request does not say (DELIVER). */
  defaultDeliver: DeliveryChannel | 'none';
  /** The delivery channels this node has (MQTT connected or not, an upload URL configured). */
  deliveryChannels: ReadonlySet<DeliveryChannel>;
  /** Where scheduled captures (`at`) and bursts wait for their instants, outside the queue. */
  scheduler: CaptureScheduler;
}

export function createCommands(options: CommandsOptions): Commands {
  const { camera, queue, store, events } = options;
  const logger = options.logger.child({ part: 'commands' });
  const counters: CaptureCounters = { total: 0, failed: 0, last_at: null, last_error: null };

  async function captureNow(params: CaptureSettings, context: CommandContext, signal: AbortSignal, at?: number): Promise<FrameDone> {
    if (options.isStopping()) throw new NodeError('shutting_down', 'the node is shutting down');
    const started = Date.now();
    const evicted = await store.reserve(camera.expectedDngBytes());
    const output = await camera
      .capture({ outputBase: store.tempBase(), settings: params, signal, ...(at === undefined ? {} : { at }) })
      .catch(async (err: unknown) => {
        // The camera app only says it could not write; a disk that filled up during the capture is a
        // storage problem (507), whatever words the app found for it.
        const error = toNodeError(err);
        if (error.code === 'camera_failed' && !(await store.hasDiskRoom(camera.expectedDngBytes()))) {
          throw new NodeError('storage_full', `the disk filled up during the capture: ${error.message}`, { cause: err });
        }
        throw err;
      });
    const sidecars = [output.jpegPath, `${output.dngPath.slice(0, -'.dng'.length)}.json`].filter((p): p is string => p !== null);
    try {
      const preview = output.jpegPath ? await readPreview(output.jpegPath) : null;
      const image = await store.commit(output.dngPath, new Date(output.triggeredAt));
      const duration_ms = Date.now() - started;
      counters.total++;
      counters.last_at = image.created;
      logger.info(
        { filename: image.filename, size: image.size, duration_ms, source: context.source, request_id: context.requestId },
        'captured',
      );
      events.emit('captured', {
        image,
        duration_ms,
        metadata: output.metadata,
        preview,
        deliver: context.deliver ?? options.defaultDeliver,
        ...(context.requestId ? { request_id: context.requestId } : {}),
      });
      const result = {
        status: 'success' as const,
        file_info: {
          filename: image.filename,
          filepath: store.pathOf(image.filename),
          timestamp: imageTimestamp(image.filename),
          size: image.size,
          captured_at: image.created,
          metadata: output.metadata,
        },
        node_id: options.nodeId,
        duration_ms,
        evicted: evicted.map((e) => e.filename),
        triggered_at: new Date(output.triggeredAt).toISOString(),
        ...(at === undefined
          ? {}
          : { scheduled_at: new Date(at).toISOString(), late_ms: Math.round((output.triggeredAt - at) * 100) / 100 }),
      };
      return { result, triggeredAt: output.triggeredAt };
    } catch (err) {
      await store.discard([output.dngPath]);
      throw err;
    } finally {
      await store.discard(sidecars);
    }
  }

  function recordFailure(error: NodeError, context: CommandContext): void {
    counters.failed++;
    counters.last_error = `${error.code}: ${error.message}`;
    // A refused request (busy, stopping) is not a camera failure worth an event for every retry.
    if (error.code !== 'busy') {
      logger.warn({ err: error, code: error.code, source: context.source, request_id: context.requestId }, 'capture failed');
      events.emit('capture_failed', {
        code: error.code,
        message: error.message,
        ...(context.requestId ? { request_id: context.requestId } : {}),
      });
    }
  }

  return {
    async capture(params, context) {
      // A bad `at`, count or interval is the request's fault, not a failed capture.
      const plan = planCapture(params, options.scheduler.limits, preciseNow());
      const deliver = params.deliver ?? options.defaultDeliver;
      if (deliver !== 'none' && !options.deliveryChannels.has(deliver)) {
        throw new NodeError(
          'bad_request',
          deliver === 'http' ? 'deliver=http needs UPLOAD_URL to be set' : 'deliver=mqtt needs MQTT to be enabled',
        );
      }
      try {
        return await runCapturePlan(plan, {
          queue,
          scheduler: options.scheduler,
          ...(context.signal ? { signal: context.signal } : {}),
          captureFrame: async (settings, at, queueSignal) => {
            const signal = context.signal ? AbortSignal.any([queueSignal, context.signal]) : queueSignal;
            try {
              return await captureNow(settings, { ...context, deliver }, signal, at);
            } catch (err) {
              // Each failed frame of a burst counts (and is announced) on its own.
              if (plan.count > 1) recordFailure(toNodeError(err), context);
              throw err;
            }
          },
        });
      } catch (err) {
        const error = toNodeError(err);
        if (plan.count === 1) recordFailure(error, context);
        throw error;
      }
    },

    list() {
      const images = store.list().map((image) => ({ ...image, timestamp: imageTimestamp(image.filename) }));
      return { images, count: images.length };
    },

    image(filename) {
      const info = store.get(filename);
      return { info, path: store.pathOf(info.filename) };
    },

    async delete(filename, context) {
      const image = await store.delete(filename);
      logger.info({ filename: image.filename, source: context.source, request_id: context.requestId }, 'image deleted');
      return { status: 'success', message: `Deleted ${image.filename}`, filename: image.filename };
    },

    async logs(lines) {
      if (!Number.isInteger(lines) || lines < 1 || lines > options.maxLogLines) {
        throw new NodeError('bad_request', `lines must be an integer from 1 to ${options.maxLogLines}`);
      }
      const logs = await options.logs.tail(lines);
      return { logs, lines: logs.length };
    },

    status(): NodeStatus {
      const extras: Record<string, unknown> = {};
      for (const [part, read] of options.statusParts) extras[part] = read();
      return buildStatus({
        nodeId: options.nodeId,
        version: options.version,
        stopping: options.isStopping(),
        camera: camera.info(),
        queueSize: queue.size(),
        usage: store.usage(),
        system: options.telemetry.snapshot(),
        captures: counters,
        extras,
      });
    },
  };
}
