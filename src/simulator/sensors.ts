/** The camera modules the simulator can pretend to be, with what `--list-cameras` shows for them. */

export type CfaOrder = 'RGGB' | 'GRBG' | 'GBRG' | 'BGGR';

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
  // Not a real module: a 12-bit sensor small enough for a capture to take milliseconds in tests,
  // yet with a DNG (150 KB) large enough for storage limits in tests to be set in round numbers.
  tiny: {
    name: 'tiny',
    width: 320,
    height: 240,
    bits: 12,
    cfa: 'RGGB',
    id: '/base/soc/i2c0mux/i2c@1/tiny@1a',
    viewfinderFps: 100,
    modes: [mode(320, 240, 12, 100.0, [0, 0, 320, 240])],
  },
};

export function sensorNamed(name: string): Sensor | undefined {
  return Object.hasOwn(SENSORS, name) ? SENSORS[name] : undefined;
}

/** The pixel format name libcamera gives a mode: `SRGGB12_CSI2P`. */
const formatName = (sensor: Sensor, bits: number): string => `S${sensor.cfa}${bits}_CSI2P`;

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

/**
 * The sensor mode a still is captured in: the one `--mode` names, else (an inference from the app's
 * still configuration) the smallest mode covering the requested output size, else the full array.
 */
export function rawModeFor(
  sensor: Sensor,
  requested: { mode?: { width: number; height: number; bits: number }; width?: number; height?: number },
): { width: number; height: number; bits: number } {
  if (requested.mode) {
    const width = Math.min(requested.mode.width, sensor.width);
    const height = Math.min(requested.mode.height, sensor.height);
    return { width, height, bits: Math.min(requested.mode.bits, sensor.bits) };
  }
  const full = { width: sensor.width, height: sensor.height, bits: sensor.bits };
  if (requested.width === undefined && requested.height === undefined) return full;
  const wantW = requested.width ?? 0;
  const wantH = requested.height ?? 0;
  const fits = sensor.modes
    .filter((m) => m.width >= wantW && m.height >= wantH && m.crop[2] === sensor.width && m.crop[3] === sensor.height)
    .sort((a, b) => a.width * a.height - b.width * b.height)[0];
  return fits ? { width: fits.width, height: fits.height, bits: fits.bits } : full;
}
