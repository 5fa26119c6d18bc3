import { rm, symlink, writeFile } from 'node:fs/promises';
import { layoutDng, type FilePiece } from './dng.js';
import { encodeBmp, encodePng, encodeRgb48, encodeYuv420 } from './encodings.js';
import { frameExposure, frameMetadata, metadataJson, metadataText } from './exposure.js';
import { dngName, outputName } from './filenames.js';
import { encodedSize, stillJpeg } from './jpeg.js';
import { failure, type Knobs } from './knobs.js';
import type { Log } from './log.js';
import { renderRgb, type Scene } from './pattern.js';
import { bootTimestampNs, sleepUntil, type StillFrame } from './frames.js';
import { rawModeFor, type Sensor } from './sensors.js';
import type { StillSettings } from './settings.js';
import { throttle, writePieces } from './writer.js';

/** An error the app reports as `ERROR: *** message ***` and exits 255. */
export class AppError extends Error {
  override name = 'AppError';
}

export interface SimulatedCamera {
  settings: StillSettings;
  knobs: Knobs;
  sensor: Sensor;
  log: Log;
}

/** `slow-write`: every file of the capture trickles out over this long, a dying SD card. */
export const SLOW_WRITE_MS = 30_000;

/**
 * `crash`: after writing half the DNG the app stalls this long, then dies. The stall keeps the
 * crash from beating a caller that aborts the capture while it is being written.
 */
export const CRASH_STALL_MS = 1000;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Never resolves, and keeps the process alive meanwhile: a camera stuck waiting for a frame. */
export function hang(): Promise<never> {
  setInterval(() => undefined, 1 << 30);
  return new Promise<never>(() => undefined);
}

/** Dies mid-write the way the kernel's OOM killer ends a camera app on a 512 MB Pi: SIGKILL, no last words. */
async function crash(): Promise<never> {
  await sleep(CRASH_STALL_MS);
  process.kill(process.pid, 'SIGKILL');
  return hang();
}

/** The processed image in the `-e` encoding. */
function processedImage(
  camera: SimulatedCamera,
  scene: Scene,
  exposure: ReturnType<typeof frameExposure>,
  raw: { width: number; height: number },
  date: Date,
): Buffer {
  const { settings } = camera;
  const explicit = settings.width !== undefined || settings.height !== undefined;
  const size = { width: settings.width ?? raw.width, height: settings.height ?? raw.height };
  if (settings.encoding === 'jpg') {
    const input = {
      scene,
      sensorName: camera.sensor.name,
      ...size,
      quality: settings.quality,
      thumb: settings.thumb,
      exposureUs: exposure.exposureUs,
      analogueGain: exposure.analogueGain,
      date,
    };
    return stillJpeg(input, explicit);
  }
  const encoded = encodedSize(size, explicit);
  const rgb = renderRgb(scene, encoded.width, encoded.height);
  switch (settings.encoding) {
    case 'png':
      return encodePng(rgb, encoded.width, encoded.height);
    case 'bmp':
      return encodeBmp(rgb, encoded.width, encoded.height);
    case 'rgb48':
      return encodeRgb48(rgb);
    case 'yuv420':
      return encodeYuv420(rgb, encoded.width, encoded.height);
    default:
      return Buffer.from(rgb);
  }
}

/** The processed output's size: `--width`/`--height`, else the raw mode's. */
export function processedSize(camera: SimulatedCamera): { width: number; height: number } {
  const raw = rawModeFor(camera.sensor, camera.settings);
  return { width: camera.settings.width ?? raw.width, height: camera.settings.height ?? raw.height };
}

/**
 * One still from `frame`: waits for the frame to arrive, the processing (ISP, encode), then the
 * files in the app's order (the image at `-o`, the DNG, the metadata), with the failure in force at
 * this moment injected. The metadata's SensorTimestamp is the frame's exposure start.
 */
export async function captureStill(camera: SimulatedCamera, counter: number, frame: StillFrame): Promise<void> {
  const { settings, knobs, sensor, log } = camera;
  const fail = failure(knobs);
  if (fail === 'no-camera') throw new AppError('no cameras available');
  if (fail === 'hang') await hang();
  await sleepUntil(frame.deliveredAt);
  const size = processedSize(camera);
  await sleep(knobs.processMs(settings.encoding === 'jpg' ? (size.width * size.height) / 1e6 : 0));
  if (fail === 'capture-error') throw new AppError('failed to capture still: timed out waiting for a frame from the camera');

  const date = new Date();
  const seed = (date.getTime() ^ Math.imul(counter + 1, 0x9e3779b1)) >>> 0;
  const exposure = frameExposure(settings);
  const scene: Scene = {
    seed,
    hflip: settings.hflip,
    vflip: settings.vflip,
    exposure: exposure.brightness,
    colourGains: exposure.colourGains,
  };
  const raw = rawModeFor(sensor, settings);
  const name = outputName(settings, counter, date);
  log.app('Still capture image received', 2);

  if (name !== null) {
    const image: FilePiece[] = [{ position: 0, data: processedImage(camera, scene, exposure, raw, date) }];
    const dng = settings.raw
      ? layoutDng({
          scene,
          sensorName: sensor.name,
          ...raw,
          cfa: sensor.cfa,
          exposureUs: exposure.exposureUs,
          analogueGain: exposure.analogueGain,
          date,
          libtiff: knobs.libtiff,
        })
      : null;
    const total = (image[0]?.data.length ?? 0) + (dng?.size ?? 0);
    const rate = throttle(fail === 'slow-write' ? total / SLOW_WRITE_MS : knobs.writeBytesPerMs);
    await writePieces(name, image, { rate });
    if (settings.latest) {
      await rm(settings.latest, { force: true });
      await symlink(name, settings.latest).catch(() => log.app(`could not make the latest link ${settings.latest}`));
    }
    if (dng) {
      const finished = await writePieces(
        dngName(name),
        dng.pieces,
        fail === 'crash' ? { rate, stopAfter: Math.floor(dng.size / 2) } : { rate },
      );
      if (!finished) await crash();
    } else if (fail === 'crash') {
      await crash();
    }
  }

  if (settings.metadata !== undefined) {
    const metadata = frameMetadata({
      sensorTimestampNs: bootTimestampNs(frame.exposedAt),
      exposure,
      bits: raw.bits,
      crop: raw.crop,
      frameDurationUs: 1_000_000 / raw.fps,
      sensorTemperature: sensor.name === 'imx477' || sensor.name === 'imx708' ? 38 + (seed % 60) / 10 : null,
      seed,
    });
    const text = settings.metadataFormat === 'txt' ? metadataText(metadata) : metadataJson(metadata);
    if (settings.metadata === '-') process.stdout.write(text);
    else
      await writeFile(settings.metadata, text).catch(() =>
        Promise.reject(new AppError(`failed to open metadata file ${settings.metadata}`)),
      );
  }
}
