import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { basename, delimiter, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ConfigError } from '../config/config.js';
import type { CameraBackend, CameraBackendSetting } from './types.js';

/** The names the camera app goes by: Bookworm ships both, older images only the old one. */
export const APP_NAMES = { rpicam: 'rpicam-still', libcamera: 'libcamera-still' } as const;

/**
 * The simulator script, relative to this module. Both live under `src/` and compile side by side
 * under `dist/src/`, so the relative URL holds in both places.
 */
export const SIMULATOR_SCRIPT: string = fileURLToPath(new URL('../simulator/main.js', import.meta.url));

/** How to run the camera app: `file` with `prefixArgs` before the app's own arguments. */
export interface AppInvocation {
  backend: CameraBackend;
  /** What the status shows as the command: the app's path, or the simulator script's. */
  command: string;
  file: string;
  prefixArgs: string[];
  simulated: boolean;
}

export interface ResolveBackendOptions {
  /** An explicit executable (CAMERA_COMMAND) for installs where the app is not on PATH. */
  command?: string;
  /** What says which board this is (`auto` never simulates on a Raspberry Pi); tests point it elsewhere. */
  deviceModelPath?: string;
  /** PATH to search; defaults to process.env.PATH. */
  searchPath?: string;
  /** Where the simulator script is (tests point it elsewhere). */
  simulatorScript?: string;
  logger: Logger;
}

/** The device-tree model, e.g. `Raspberry Pi Zero 2 W Rev 1.0`. */
export const DEVICE_MODEL_PATH = '/proc/device-tree/model';

/**
 * `auto` on a Raspberry Pi that has no camera app. Not a configuration error: the node starts
 * without a camera (disconnected, saying what is missing) and looks for the app again at each check,
 * rather than capturing synthetic images that would pass for real ones.
 */
export class CameraAppMissingError extends Error {
  override name = 'CameraAppMissingError';
}

/** The board's model when it is a Raspberry Pi, else null (another machine, or no device tree). */
export async function raspberryPiModel(path: string = DEVICE_MODEL_PATH): Promise<string | null> {
  try {
    // The device tree's strings end with a NUL.
    const model = (await readFile(path, 'latin1')).replace(/\0+$/, '').trim();
    return /raspberry pi/i.test(model) ? model : null;
  } catch {
    return null;
  }
}

/**
 * Thrown at start when the configured camera app cannot be run. It is a configuration error, not a
 * capture error, so it extends ConfigError: main reports it in one line and exits 2.
 */
export class CameraBackendError extends ConfigError {
  override name = 'CameraBackendError';
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** The first PATH entry holding an executable file called `name` (what `which` does, without a process). */
export async function findOnPath(name: string, searchPath: string = process.env.PATH ?? ''): Promise<string | null> {
  for (const dir of searchPath.split(delimiter)) {
    // An empty PATH entry means the current directory; a daemon must not run whatever is there.
    if (dir === '' || !isAbsolute(dir)) continue;
    const candidate = join(dir, name);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return null;
}

function appInvocation(backend: 'rpicam' | 'libcamera', path: string): AppInvocation {
  return { backend, command: path, file: path, prefixArgs: [], simulated: false };
}

async function simulatorInvocation(script: string): Promise<AppInvocation> {
  try {
    await access(script, constants.R_OK);
  } catch {
    throw new CameraBackendError(`the camera simulator is missing (${script}); build the project first`);
  }
  // Run with this very Node binary: no dependence on a `node` on PATH or on the script's mode bits.
  return { backend: 'simulated', command: script, file: process.execPath, prefixArgs: [script], simulated: true };
}

/**
 * Turns the configured backend into the command to run. Called once, at start.
 *  - `auto`: `rpicam-still` on PATH, else `libcamera-still`; else, on a Raspberry Pi, no camera
 *    (CameraAppMissingError: the app is missing, not simulated); elsewhere the simulator (said at
 *    info, so a development machine is visibly simulated rather than silently so).
 *  - `rpicam` / `libcamera`: that app, or an error at start if it is not installed.
 *  - `simulated`: the packaged simulator.
 * A `command` override replaces the PATH search for the real apps; the backend is then named after
 * the override (`libcamera` if its name says so, else `rpicam`: the options are the same).
 */
export async function resolveBackend(setting: CameraBackendSetting, options: ResolveBackendOptions): Promise<AppInvocation> {
  const script = options.simulatorScript ?? SIMULATOR_SCRIPT;
  if (setting === 'simulated') {
    if (options.command) options.logger.warn({ command: options.command }, 'camera command ignored: the simulated backend is configured');
    return simulatorInvocation(script);
  }

  if (options.command) {
    if (!isAbsolute(options.command)) throw new CameraBackendError(`camera command must be an absolute path: ${options.command}`);
    if (!(await isExecutableFile(options.command)))
      throw new CameraBackendError(`camera command is not an executable file: ${options.command}`);
    const named: 'rpicam' | 'libcamera' =
      setting === 'auto' ? (basename(options.command).includes('libcamera') ? 'libcamera' : 'rpicam') : setting;
    return appInvocation(named, options.command);
  }

  if (setting === 'rpicam' || setting === 'libcamera') {
    const found = await findOnPath(APP_NAMES[setting], options.searchPath);
    if (!found) throw new CameraBackendError(`${APP_NAMES[setting]} not found on PATH (camera backend "${setting}")`);
    return appInvocation(setting, found);
  }

  for (const backend of ['rpicam', 'libcamera'] as const) {
    const found = await findOnPath(APP_NAMES[backend], options.searchPath);
    if (found) return appInvocation(backend, found);
  }
  const model = await raspberryPiModel(options.deviceModelPath);
  if (model !== null) {
    throw new CameraAppMissingError(
      `no camera app found on this ${model}: neither ${APP_NAMES.rpicam} nor ${APP_NAMES.libcamera} is on PATH ` +
        '(install rpicam-apps, or set CAMERA_COMMAND; CAMERA_BACKEND=simulated runs the simulator)',
    );
  }
  const simulator = await simulatorInvocation(script);
  options.logger.info({ tried: Object.values(APP_NAMES), simulator: script }, 'no camera app found, using the simulator');
  return simulator;
}
