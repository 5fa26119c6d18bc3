import type { Logger } from 'pino';
import type { RawMode } from './args.js';
import type { AppInvocation } from './backend.js';
import type { ProbeOutcome } from './run-app.js';
import type { CameraBackendSetting, CameraDescriptor, CameraInfo } from './types.js';

/** Used for size estimates until a probe has seen the real sensor: the HQ camera, the largest DNG. */
export const DEFAULT_SENSOR = { width: 4056, height: 3040 } as const;

/** Header, IFDs, tags and slack around the pixel data in a DNG from rpicam-still. */
const DNG_HEADER_BYTES = 64 * 1024;

/**
 * Bytes of the DNG rpicam-still writes for a sensor: 16-bit samples for the full pixel array, an
 * 8-bit RGB thumbnail at 1/16 scale (IFD0), and the headers.
 */
export function dngBytesFor(width: number, height: number): number {
  return width * height * 2 + Math.floor(width / 16) * Math.floor(height / 16) * 3 + DNG_HEADER_BYTES;
}

export interface CameraStateOptions {
  backend: CameraBackendSetting;
  cameraIndex: number;
  mode: CameraInfo['mode'];
  logger: Logger;
}

/**
 * What a camera knows about itself (the `CameraInfo` clients see) and who wants to hear when it
 * changes. Kept apart from the process handling so the cold camera and a later warm one share it.
 */
export interface CameraState {
  info(): CameraInfo;
  onChange(listener: (info: CameraInfo) => void): () => void;
  setBackend(invocation: AppInvocation): void;
  /** Applies a `--list-cameras` outcome (a canceled one changes nothing). */
  applyProbe(outcome: ProbeOutcome): void;
  /** A capture failed for a camera reason; `disconnected` when the app said there is no camera. */
  recordFailure(message: string, disconnected: boolean): void;
  /** A capture worked: the camera is evidently there and any earlier error is over. */
  recordSuccess(): void;
  expectedDngBytes(): number;
  /** The selected sensor's full-resolution mode as last seen by a probe; null before any. */
  rawMode(): RawMode | null;
}

export function createCameraState(options: CameraStateOptions): CameraState {
  const { logger } = options;
  const listeners = new Set<(info: CameraInfo) => void>();
  // Before the backend is resolved, show what was configured (`auto` shows as rpicam, its first choice).
  let current: CameraInfo = {
    backend: options.backend === 'auto' ? 'rpicam' : options.backend,
    command: '',
    simulated: options.backend === 'simulated',
    connected: false,
    sensor: null,
    cameras: [],
    mode: options.mode,
    checked_at: null,
    last_error: null,
  };
  // The last sensor seen, kept across a disconnection so size estimates stay right when it returns.
  let lastSeen: CameraDescriptor | null = null;

  const snapshot = (): CameraInfo => ({ ...current, cameras: current.cameras.map((camera) => ({ ...camera })) });

  function update(changes: Partial<CameraInfo>): void {
    const before = current;
    current = { ...current, ...changes };
    const changed =
      before.connected !== current.connected ||
      before.sensor !== current.sensor ||
      before.last_error !== current.last_error ||
      before.mode !== current.mode ||
      before.backend !== current.backend;
    if (!changed) return;
    logger.info(
      { connected: current.connected, sensor: current.sensor, last_error: current.last_error, backend: current.backend },
      'camera state changed',
    );
    const copy = snapshot();
    for (const listener of listeners) {
      try {
        listener(copy);
      } catch (err) {
        logger.error({ err }, 'camera change listener failed');
      }
    }
  }

  return {
    info: snapshot,

    onChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },

    setBackend(invocation) {
      update({ backend: invocation.backend, command: invocation.command, simulated: invocation.simulated });
    },

    applyProbe(outcome) {
      if (outcome.kind === 'canceled') return;
      const checked_at = new Date().toISOString();
      if (outcome.kind === 'failed') {
        update({ connected: false, sensor: null, cameras: [], checked_at, last_error: outcome.error });
        return;
      }
      const { cameras } = outcome;
      const selected = cameras.find((camera) => camera.index === options.cameraIndex);
      if (selected) lastSeen = selected;
      let last_error: string | null = null;
      if (!selected) {
        last_error =
          cameras.length === 0
            ? 'no cameras available'
            : `camera ${options.cameraIndex} not found (available: ${cameras.map((camera) => camera.index).join(', ')})`;
      }
      update({ connected: selected !== undefined, sensor: selected?.sensor ?? null, cameras, checked_at, last_error });
    },

    recordFailure(message, disconnected) {
      update(disconnected ? { connected: false, sensor: null, last_error: message } : { last_error: message });
    },

    recordSuccess() {
      if (current.last_error !== null) update({ last_error: null });
    },

    expectedDngBytes() {
      const width = lastSeen?.width || DEFAULT_SENSOR.width;
      const height = lastSeen?.height || DEFAULT_SENSOR.height;
      return dngBytesFor(width, height);
    },

    rawMode() {
      return lastSeen && lastSeen.width > 0 && lastSeen.height > 0 && lastSeen.bit_depth > 0
        ? { width: lastSeen.width, height: lastSeen.height, bits: lastSeen.bit_depth }
        : null;
    },
  };
}
