import { endianness } from 'node:os';
import type { CfaOrder } from './sensors.js';

/**
 * The test scene every output of a capture shows: eight colour bars darkening downwards and a white
 * square whose place comes from the capture's seed, so consecutive captures differ while a given
 * seed always gives the same image. Rendering is a per-row/per-column product, cheap enough for a
 * 12 MP Bayer frame in tens of milliseconds.
 */
export interface Scene {
  seed: number;
  hflip: boolean;
  vflip: boolean;
  /** Brightness multiplier from exposure settings (1 = auto exposure). */
  exposure: number;
  /** The white balance the raw data needs (red and blue gains): raw red/blue are divided by them. */
  colourGains: readonly [number, number];
}

const BARS: ReadonlyArray<readonly [number, number, number]> = [
  [0.9, 0.9, 0.9],
  [0.9, 0.9, 0.1],
  [0.1, 0.9, 0.9],
  [0.1, 0.9, 0.1],
  [0.9, 0.1, 0.9],
  [0.9, 0.1, 0.1],
  [0.1, 0.1, 0.9],
  [0.2, 0.2, 0.2],
];

/** mulberry32: a tiny deterministic generator. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Layout {
  /** Per column: red, green, blue of the bar (0..1), interleaved. */
  columns: Float32Array;
  /** Per row: brightness factor. */
  rows: Float32Array;
  /** The square, in pixels: x0, y0, x1, y1 (exclusive). */
  square: [number, number, number, number];
}

function layout(scene: Scene, width: number, height: number): Layout {
  const columns = new Float32Array(width * 3);
  for (let x = 0; x < width; x++) {
    const u = (scene.hflip ? width - 1 - x : x) / width;
    const bar = BARS[Math.min(7, Math.floor(u * 8))] ?? [0, 0, 0];
    columns[x * 3] = bar[0];
    columns[x * 3 + 1] = bar[1];
    columns[x * 3 + 2] = bar[2];
  }
  const rows = new Float32Array(height);
  for (let y = 0; y < height; y++) {
    const v = (scene.vflip ? height - 1 - y : y) / height;
    rows[y] = (0.15 + 0.85 * (1 - v)) * scene.exposure;
  }
  const next = random(scene.seed);
  let cu = 0.1 + 0.8 * next();
  let cv = 0.1 + 0.8 * next();
  if (scene.hflip) cu = 1 - cu;
  if (scene.vflip) cv = 1 - cv;
  const half = Math.max(1, Math.round(0.06 * height));
  const cx = Math.round(cu * width);
  const cy = Math.round(cv * height);
  return {
    columns,
    rows,
    square: [Math.max(0, cx - half), Math.max(0, cy - half), Math.min(width, cx + half), Math.min(height, cy + half)],
  };
}

/** The scene as 8-bit RGB, row-major (for the JPEG and the thumbnails). */
export function renderRgb(scene: Scene, width: number, height: number): Uint8Array {
  const { columns, rows, square } = layout(scene, width, height);
  const out = new Uint8Array(width * height * 3);
  const [sx0, sy0, sx1, sy1] = square;
  for (let y = 0; y < height; y++) {
    const f = (rows[y] ?? 0) * 255;
    const base = y * width * 3;
    for (let i = 0; i < width * 3; i++) out[base + i] = Math.min(255, (columns[i] ?? 0) * f);
    if (y >= sy0 && y < sy1) out.fill(255, base + sx0 * 3, base + sx1 * 3);
  }
  return out;
}

/** Black level of the raw data: 256 for 12-bit sensors, 64 for 10-bit (scaled for other depths). */
export const blackLevel = (bits: number): number => Math.round(4096 * 2 ** (bits - 16));

const CHANNEL: Readonly<Record<string, number>> = { R: 0, G: 1, B: 2 };

/** The CFA as colour indices (R 0, G 1, B 2) in reading order, as DNG's CFAPattern writes it. */
export const cfaColours = (cfa: CfaOrder): number[] => [...cfa].map((c) => CHANNEL[c] ?? 1);

/**
 * The scene as a Bayer mosaic of `bits`-bit samples in 16-bit words, little-endian (as the DNG
 * stores them), with a little fixed-pattern noise so it does not compress to nothing.
 */
export function renderBayer(scene: Scene, width: number, height: number, bits: number, cfa: CfaOrder): Buffer {
  const { columns, rows, square } = layout(scene, width, height);
  const black = blackLevel(bits);
  const range = 2 ** bits - 1 - black;
  const gains = [1 / scene.colourGains[0], 1, 1 / scene.colourGains[1]];
  const colours = cfaColours(cfa);
  // For each row parity, the column values of the colour each column samples, already scaled.
  const byParity = [0, 1].map((p) => {
    const line = new Float32Array(width);
    for (let x = 0; x < width; x++) {
      const c = colours[p * 2 + (x & 1)] ?? 1;
      line[x] = (columns[x * 3 + c] ?? 0) * (gains[c] ?? 1) * range;
    }
    return line;
  });
  const noise = new Uint8Array(4096);
  const next = random(scene.seed ^ 0x5bd1e995);
  for (let i = 0; i < noise.length; i++) noise[i] = Math.floor(next() * 16);
  const samples = new Uint16Array(width * height);
  const [sx0, sy0, sx1, sy1] = square;
  // Room for the noise below white: only the square clips.
  const max = range - 16;
  for (let y = 0; y < height; y++) {
    const line = byParity[y & 1] as Float32Array;
    const f = rows[y] ?? 0;
    const base = y * width;
    const n0 = (y * 97) & 4095;
    for (let x = 0; x < width; x++) {
      const v = (line[x] as number) * f;
      samples[base + x] = black + Math.min(v, max) + (noise[(n0 + x) & 4095] as number);
    }
    if (y >= sy0 && y < sy1) samples.fill(2 ** bits - 1, base + sx0, base + sx1);
  }
  const buf = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  if (endianness() === 'BE') buf.swap16();
  return buf;
}
