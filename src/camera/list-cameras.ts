import type { CameraDescriptor } from './types.js';

/**
 * One camera line of `rpicam-still --list-cameras`, e.g.
 *   `0 : imx477 [4056x3040 12-bit RGGB] (/base/soc/i2c0mux/i2c@1/imx477@1a)`
 * The app builds the bracket from optional parts (the size, the bit depth and the CFA order are each
 * left out when libcamera does not report them), so each is optional here. The model is taken up to
 * the bracket rather than as one word: USB cameras report models with spaces in them.
 */
const CAMERA_LINE = /^\s*(\d+)\s*:\s*(\S(?:.*?\S)?)\s*\[([^\]]*)\]\s*\((.*)\)\s*$/;
const SIZE = /^(\d+)x(\d+)$/;
const BIT_DEPTH = /^(\d+)-bit$/;

/**
 * Parses the stdout of `--list-cameras`. The app exits 0 whether or not it found a camera, so the
 * output is the only evidence: `No cameras available!` (or anything without a camera line) gives [].
 * The `Available cameras` header, the dashes, the indented `Modes:` block and blank lines are skipped:
 * only lines that start with `<index> :` and carry the `[...]` and `(...)` parts are cameras. The
 * index is read from the line, not counted, because the app skips a camera it cannot configure but
 * still advances its counter, and `--camera N` means that counter's N.
 */
export function parseListCameras(stdout: string): CameraDescriptor[] {
  const cameras: CameraDescriptor[] = [];
  for (const line of stdout.split(/\r?\n/)) {
    const match = CAMERA_LINE.exec(line);
    if (!match) continue;
    const [, index, sensor, bracket, id] = match;
    if (index === undefined || sensor === undefined || bracket === undefined || id === undefined) continue;
    const camera: CameraDescriptor = { index: Number(index), sensor, width: 0, height: 0, bit_depth: 0, cfa: '', id: id.trim() };
    for (const part of bracket.trim().split(/\s+/)) {
      const size = SIZE.exec(part);
      const bits = BIT_DEPTH.exec(part);
      if (size) {
        camera.width = Number(size[1]);
        camera.height = Number(size[2]);
      } else if (bits) {
        camera.bit_depth = Number(bits[1]);
      } else if (/^[A-Z]+$/.test(part)) {
        camera.cfa = part;
      }
    }
    cameras.push(camera);
  }
  return cameras;
}

/** True when the output is the app's explicit "no camera" answer (as opposed to output we do not understand). */
export function saysNoCameras(stdout: string): boolean {
  return /^\s*No cameras available!?\s*$/m.test(stdout);
}
