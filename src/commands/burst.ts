import { isErrorCode, NodeError, toNodeError } from '../errors.js';
import type { CaptureQueue } from '../camera/queue.js';
import type { CaptureSettings } from '../camera/types.js';
import type { CapturePlan, CaptureScheduler } from './schedule.js';
import type { BurstFrame, CaptureResult } from './types.js';

/** One frame: the capture result and when the camera was triggered (epoch ms, fractional). */
export interface FrameDone {
  result: CaptureResult;
  triggeredAt: number;
}

export interface RunPlanDeps {
  queue: CaptureQueue;
  scheduler: CaptureScheduler;
  /** Takes one frame inside the queue; `at` = the instant to trigger (undefined: at once). */
  captureFrame(settings: CaptureSettings, at: number | undefined, signal: AbortSignal): Promise<FrameDone>;
  /** Aborts waits and queued frames (the request went away). */
  signal?: AbortSignal;
}

/**
 * Runs a capture plan. An unscheduled single capture queues as before. A scheduled one waits in the
 * scheduler (not in the queue) until shortly before its instant, then joins the queue's front. A
 * burst is a series of scheduled frames, `interval_ms` apart from the first frame's instant (its `at`,
 * or when it was triggered); each frame queues on its own, so a slow burst does not hold the camera
 * between frames. A frame whose turn comes late (the one before overran) fires at once, with its
 * lateness reported.
 */
/** The request's signal, so a frame still waiting in the queue is dropped when the requester goes away. */
const waitSignal = (deps: RunPlanDeps): { signal?: AbortSignal } => (deps.signal ? { signal: deps.signal } : {});

export async function runCapturePlan(plan: CapturePlan, deps: RunPlanDeps): Promise<CaptureResult> {
  const { queue, scheduler } = deps;
  if (plan.at === null && plan.count === 1) {
    return (await queue.run((signal) => deps.captureFrame(plan.settings, undefined, signal), waitSignal(deps))).result;
  }
  const ticket = scheduler.enter();
  try {
    if (plan.count === 1 && plan.at !== null) {
      const at = plan.at;
      await ticket.waitForTurn(at, deps.signal);
      return (await queue.run((signal) => deps.captureFrame(plan.settings, at, signal), { front: true, ...waitSignal(deps) })).result;
    }
    return await runBurst(plan, deps, ticket.waitForTurn);
  } finally {
    ticket.release();
  }
}

async function runBurst(
  plan: CapturePlan,
  deps: RunPlanDeps,
  waitForTurn: (at: number, signal?: AbortSignal) => Promise<void>,
): Promise<CaptureResult> {
  const started = Date.now();
  const done: Array<{ index: number; frame: FrameDone }> = [];
  const frames: BurstFrame[] = [];
  let base = plan.at;
  let stopped: NodeError | null = null;
  for (let index = 0; index < plan.count; index++) {
    const at = base === null ? undefined : base + index * plan.intervalMs;
    if (stopped) {
      frames.push({
        index,
        ...(at === undefined ? {} : { scheduled_at: new Date(at).toISOString() }),
        error: { code: stopped.code, message: stopped.message },
      });
      continue;
    }
    try {
      let frame: FrameDone;
      if (at === undefined) {
        frame = await deps.queue.run((signal) => deps.captureFrame(plan.settings, undefined, signal), waitSignal(deps));
        base = frame.triggeredAt;
      } else {
        await waitForTurn(at, deps.signal);
        frame = await deps.queue.run((signal) => deps.captureFrame(plan.settings, at, signal), { front: true, ...waitSignal(deps) });
      }
      done.push({ index, frame });
      const { result } = frame;
      frames.push({
        index,
        ...(result.scheduled_at ? { scheduled_at: result.scheduled_at } : {}),
        triggered_at: result.triggered_at,
        ...(result.late_ms !== undefined ? { late_ms: result.late_ms } : {}),
        filename: result.file_info.filename,
      });
    } catch (err) {
      const error = toNodeError(err);
      // A refused first frame refuses the whole burst; nothing was taken.
      if (index === 0 && error.code === 'busy') throw error;
      frames.push({
        index,
        ...(at === undefined ? {} : { scheduled_at: new Date(at).toISOString() }),
        error: { code: error.code, message: error.message },
      });
      if (error.code === 'shutting_down') stopped = error;
      // Without a first frame there is no instant to space the others from: take them from now.
      if (base === null) base = Date.now() - index * plan.intervalMs;
    }
  }
  const first = done[0];
  if (!first) {
    const firstError = frames.find((frame) => frame.error)?.error;
    const code = isErrorCode(firstError?.code) ? firstError.code : 'camera_failed';
    throw new NodeError(code, `every frame of the burst failed: ${firstError?.message ?? 'unknown error'}`, { details: { frames } });
  }
  const failed = frames.filter((frame) => frame.error).length;
  return {
    ...first.frame.result,
    duration_ms: Date.now() - started,
    evicted: done.flatMap(({ frame }) => frame.result.evicted),
    count: plan.count,
    interval_ms: plan.intervalMs,
    failed,
    files: done.map(({ frame }) => frame.result.file_info),
    frames,
  };
}
