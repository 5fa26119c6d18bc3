/** The camera modules the simulator can pretend to be, with what `--list-cameras` shows for them. */

/** The colour filter order; `MONO` for a sensor without one (no CFA in its DNG). */
export type CfaOrder = 'RGGB' | 'GRBG' | 'GBRG' | 'BGGR' | 'MONO';

export interface SensorMode {
  width: number;
  height: number;
  bits: number;
  fps: number;
  /** The crop on the pixel array: x, y, width, height. */
  crop: readonly [number, number, number, number];
}

export interface Sensor {
  name: string;
  width: number;
  height: number;
  bits: number;
  cfa: CfaOrder;
  /** libcamera's id: the device-tree path of the sensor. */
  id: string;
  modes: readonly SensorMode[];
  /** The viewfinder mode's frame rate, which sets how often signal mode polls. */
  viewfinderFps: number;
}

const mode = (width: number, height: number, bits: number, fps: number, crop: SensorMode['crop']): SensorMode => ({
  width,
  height,
  bits,
  fps,
  crop,
});

export const SENSORS: Readonly<Record<string, Sensor>> = {
  imx477: {
    name: 'imx477',
    width: 4056,
    height: 3040,
    bits: 12,
    cfa: 'RGGB',
    id: '/base/soc/i2c0mux/i2c@1/imx477@1a',
    viewfinderFps: 30,
    modes: [
      mode(1332, 990, 10, 120.05, [696, 528, 2664, 1980]),
      mode(2028, 1080, 12, 50.03, [0, 440, 4056, 2160]),
      mode(2028, 1520, 12, 40.01, [0, 0, 4056, 3040]),
      mode(4056, 3040, 12, 10.0, [0, 0, 4056, 3040]),
    ],
  },
  imx708: {
    name: 'imx708',
    width: 4608,
    height: 2592,
    bits: 10,
    cfa: 'RGGB',
    id: '/base/soc/i2c0mux/i2c@1/imx708@1a',
    viewfinderFps: 30,
    modes: [
      mode(1536, 864, 10, 120.13, [768, 432, 3072, 1728]),
      mode(2304, 1296, 10, 56.03, [0, 0, 4608, 2592]),
      mode(4608, 2592, 10, 14.35, [0, 0, 4608, 2592]),
    ],
  },
  imx219: {
    name: 'imx219',
    width: 3280,
    height: 2464,
    bits: 10,
    cfa: 'RGGB',
    id: '/base/soc/i2c0mux/i2c@1/imx219@10',
    viewfinderFps: 30,
    modes: [
      mode(640, 480, 10, 206.65, [1000, 752, 1280, 960]),
      mode(1640, 1232, 10, 41.85, [0, 0, 3280, 2464]),
      mode(1920, 1080, 10, 47.57, [680, 692, 1920, 1080]),
      mode(3280, 2464, 10, 21.19, [0, 0, 3280, 2464]),
    ],
  },
  ov5647: {
    name: 'ov5647',
    width: 2592,
    height: 1944,
    bits: 10,
    cfa: 'GBRG',
    id: '/base/soc/i2c0mux/i2c@1/ov5647@36',
    viewfinderFps: 30,
    modes: [
      mode(640, 480, 10, 58.92, [16, 0, 2560, 1920]),
      mode(1296, 972, 10, 43.25, [0, 0, 2592, 1944]),
      mode(1920, 1080, 10, 30.62, [348, 434, 1928, 1080]),
      mode(2592, 1944, 10, 15.63, [0, 0, 2592, 1944]),
    ],
  },
  // The global-shutter mono sensor of Arducam's and Inno-Maker's modules: no colour filter.
  ov9281: {
    name: 'ov9281',
    width: 1280,
    height: 800,
    bits: 10,
    cfa: 'MONO',
    id: '/base/soc/i2c0mux/i2c@1/ov9281@60',
    viewfinderFps: 30,
    modes: [
      mode(640, 400, 10, 309.89, [0, 0, 1280, 800]),
      mode(1280, 720, 10, 150.02, [0, 40, 1280, 720]),
      mode(1280, 800, 10, 144.0, [0, 0, 1280, 800]),
    ],
  },
  // Not a real module: a 12-bit sensor small enough for a capture to take milliseconds in tests,
  // yet with a DNG (150 KB) large enough for storage limits in tests to be set in round numbers.
  tiny: {
    name: 'tiny',
    width: 320,
    height: 240,
    bits: 12,
    cfa: 'RGGB',
    id: '/base/soc/i2c0mux/i2c@1/tiny@1a',
    // A frame a millisecond, so the startup frames every camera start drops cost tests nothing.
    viewfinderFps: 1000,
    modes: [mode(320, 240, 12, 1000.0, [0, 0, 320, 240])],
  },
};

export function sensorNamed(name: string): Sensor | undefined {
  return Object.hasOwn(SENSORS, name) ? SENSORS[name] : undefined;
}

/** The pixel format name libcamera gives a mode: `SRGGB12_CSI2P`. */
const formatName = (sensor: Sensor, bits: number): string => (sensor.cfa === 'MONO' ? `R${bits}_CSI2P` : `S${sensor.cfa}${bits}_CSI2P`);

/**
 * The `--list-cameras` text for one camera, in the app's layout: the camera line, then the modes
 * grouped by pixel format, the format named on the first line of its group only, then a blank line.
 */
export function listCamerasText(sensors: readonly Sensor[]): string {
  if (sensors.length === 0) return 'No cameras available!\n';
  const lines = ['Available cameras', '-----------------'];
  sensors.forEach((sensor, index) => {
    lines.push(`${index} : ${sensor.name} [${sensor.width}x${sensor.height} ${sensor.bits}-bit ${sensor.cfa}] (${sensor.id})`);
    const formats = [...new Set(sensor.modes.map((m) => m.bits))];
    let first = true;
    for (const bits of formats) {
      const label = `'${formatName(sensor, bits)}' : `;
      sensor.modes
        .filter((m) => m.bits === bits)
        .forEach((m, i) => {
          const lead = first ? '    Modes: ' : '           ';
          const name = i === 0 ? label : ' '.repeat(label.length);
          const [x, y, w, h] = m.crop;
          lines.push(`${lead}${name}${m.width}x${m.height} [${m.fps.toFixed(2)} fps - (${x}, ${y})/${w}x${h} crop]`);
          first = false;
        });
    }
    lines.push('');
  });
  return `${lines.join('\n')}\n`;
}

/** The libcamera pixel format of a raw stream in `mode`: `SRGGB12_CSI2P`, `R10_CSI2P` for mono. */
export const rawFormat = (sensor: Sensor, bits: number): string => formatName(sensor, bits);

const area = (m: SensorMode): number => m.width * m.height;

/** The smallest of `modes` at least `width` × `height`, else the largest of them. */
function covering(modes: readonly SensorMode[], width: number, height: number): SensorMode | undefined {
  const fits = modes.filter((m) => m.width >= width && m.height >= height).sort((a, b) => area(a) - area(b))[0];
  return fits ?? [...modes].sort((a, b) => area(b) - area(a))[0];
}

/**
 * The sensor mode a still is captured in (and so the DNG's size), as rpicam-still picks it:
 *  - `--mode W:H:bits` names it: libcamera takes the sensor mode closest to it (the smallest that
 *    covers it), whatever `--width`/`--height` say about the processed output;
 *  - without `--mode`, the still configuration asks for the processed size and the pipeline picks
 *    a raw mode to suit (an inference from rpicam-apps' `ConfigureStill`): the smallest full
 *    field-of-view mode covering `--width` × `--height`, so a small `--width` shrinks the DNG too;
 *  - with neither, the full pixel array.
 */
export function rawModeFor(
  sensor: Sensor,
  requested: {
    mode?: { width: number; height: number; bits: number } | undefined;
    width?: number | undefined;
    height?: number | undefined;
  },
): SensorMode {
  const full =
    sensor.modes.find((m) => m.width === sensor.width && m.height === sensor.height) ?? covering(sensor.modes, sensor.width, sensor.height);
  if (!full) throw new Error(`sensor ${sensor.name} has no modes`);
  if (requested.mode) return covering(sensor.modes, requested.mode.width, requested.mode.height) ?? full;
  if (requested.width === undefined && requested.height === undefined) return full;
  const fullView = sensor.modes.filter((m) => m.crop[2] === sensor.width && m.crop[3] === sensor.height);
  const fits = fullView
    .filter((m) => m.width >= (requested.width ?? 0) && m.height >= (requested.height ?? 0))
    .sort((a, b) => area(a) - area(b))[0];
  return fits ?? full;
}
