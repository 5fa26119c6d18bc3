/**
 * A baseline JPEG encoder (ITU T.81): YCbCr 4:2:0, the example quantisation tables of Annex K scaled
 * by quality the way libjpeg does, the standard Huffman tables, a float AAN forward DCT. Enough for
 * the simulated camera's JPEG and its EXIF thumbnail; no restart markers, no progressive mode.
 */

const ZIGZAG = [
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57,
  50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

const LUMA_QUANT = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22,
  37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

const CHROMA_QUANT = [
  17,
  18,
  24,
  47,
  99,
  99,
  99,
  99,
  18,
  21,
  26,
  66,
  99,
  99,
  99,
  99,
  24,
  26,
  56,
  99,
  99,
  99,
  99,
  99,
  47,
  66,
  99,
  99,
  99,
  99,
  99,
  99,
  ...new Array<number>(32).fill(99),
];

interface HuffmanSpec {
  bits: number[];
  values: number[];
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

const DC_LUMA: HuffmanSpec = { bits: [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], values: range(12) };
const DC_CHROMA: HuffmanSpec = { bits: [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], values: range(12) };
const AC_LUMA: HuffmanSpec = {
  bits: [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d],
  values: [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91,
    0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a,
    0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53,
    0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79,
    0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9,
    0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2,
    0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
  ],
};
const AC_CHROMA: HuffmanSpec = {
  bits: [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77],
  values: [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14,
    0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17,
    0x18, 0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a,
    0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78,
    0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3,
    0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
    0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2,
    0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
  ],
};

/** Code and length per symbol (Annex C). */
interface HuffmanTable {
  codes: Uint16Array;
  lengths: Uint8Array;
}

function huffmanTable(spec: HuffmanSpec): HuffmanTable {
  const codes = new Uint16Array(256);
  const lengths = new Uint8Array(256);
  let code = 0;
  let k = 0;
  for (let length = 1; length <= 16; length++) {
    for (let i = 0; i < (spec.bits[length - 1] ?? 0); i++) {
      const symbol = spec.values[k++] ?? 0;
      codes[symbol] = code++;
      lengths[symbol] = length;
    }
    code <<= 1;
  }
  return { codes, lengths };
}

/** libjpeg's quality scaling of the Annex K tables (natural order). */
export function scaledQuant(base: readonly number[], quality: number): number[] {
  const q = Math.min(100, Math.max(1, Math.round(quality)));
  const scale = q < 50 ? 5000 / q : 200 - q * 2;
  return base.map((v) => Math.min(255, Math.max(1, Math.floor((v * scale + 50) / 100))));
}

const AAN = [1.0, 1.387039845, 1.306562965, 1.175875602, 1.0, 0.785694958, 0.5411961, 0.275899379];

/** Divisors folded with the AAN output scaling, in natural order. */
function dctDivisors(quant: readonly number[]): Float32Array {
  const out = new Float32Array(64);
  for (let row = 0; row < 8; row++) {
    for (let col = 0; col < 8; col++) out[row * 8 + col] = 1 / ((quant[row * 8 + col] ?? 1) * (AAN[row] ?? 1) * (AAN[col] ?? 1) * 8);
  }
  return out;
}

/** In-place float AAN forward DCT of one 8x8 block (libjpeg's jfdctflt), on 8 values at `o` with stride `s`. */
function dct8(d: Float32Array, o: number, s: number): void {
  const d0 = d[o] as number,
    d1 = d[o + s] as number,
    d2 = d[o + 2 * s] as number,
    d3 = d[o + 3 * s] as number;
  const d4 = d[o + 4 * s] as number,
    d5 = d[o + 5 * s] as number,
    d6 = d[o + 6 * s] as number,
    d7 = d[o + 7 * s] as number;
  const tmp0 = d0 + d7,
    tmp7 = d0 - d7,
    tmp1 = d1 + d6,
    tmp6 = d1 - d6;
  const tmp2 = d2 + d5,
    tmp5 = d2 - d5,
    tmp3 = d3 + d4,
    tmp4 = d3 - d4;
  let tmp10 = tmp0 + tmp3;
  const tmp13 = tmp0 - tmp3;
  let tmp11 = tmp1 + tmp2;
  let tmp12 = tmp1 - tmp2;
  d[o] = tmp10 + tmp11;
  d[o + 4 * s] = tmp10 - tmp11;
  const z1 = (tmp12 + tmp13) * Math.SQRT1_2;
  d[o + 2 * s] = tmp13 + z1;
  d[o + 6 * s] = tmp13 - z1;
  tmp10 = tmp4 + tmp5;
  tmp11 = tmp5 + tmp6;
  tmp12 = tmp6 + tmp7;
  const z5 = (tmp10 - tmp12) * 0.382683433;
  const z2 = 0.5411961 * tmp10 + z5;
  const z4 = 1.306562965 * tmp12 + z5;
  const z3 = tmp11 * Math.SQRT1_2;
  const z11 = tmp7 + z3;
  const z13 = tmp7 - z3;
  d[o + 5 * s] = z13 + z2;
  d[o + 3 * s] = z13 - z2;
  d[o + s] = z11 + z4;
  d[o + 7 * s] = z11 - z4;
}

class BitWriter {
  private out: Uint8Array;
  private length = 0;
  private acc = 0;
  private bits = 0;

  constructor(capacity: number) {
    this.out = new Uint8Array(Math.max(1024, capacity));
  }

  private byte(b: number): void {
    if (this.length + 2 > this.out.length) {
      const grown = new Uint8Array(this.out.length * 2);
      grown.set(this.out);
      this.out = grown;
    }
    this.out[this.length++] = b;
    if (b === 0xff) this.out[this.length++] = 0; // byte stuffing
  }

  write(code: number, length: number): void {
    this.acc = (this.acc << length) | (code & ((1 << length) - 1));
    this.bits += length;
    while (this.bits >= 8) {
      this.bits -= 8;
      this.byte((this.acc >>> this.bits) & 0xff);
    }
    this.acc &= (1 << this.bits) - 1;
  }

  /** Pads the last byte with 1 bits, as the standard asks. */
  finish(): Uint8Array {
    if (this.bits > 0) this.write(0x7f, 8 - this.bits);
    return this.out.subarray(0, this.length);
  }
}

interface Component {
  divisors: Float32Array;
  dc: HuffmanTable;
  ac: HuffmanTable;
  previousDc: number;
}

/** Per-encode scratch space, reused for every block. */
interface Scratch {
  block: Float32Array;
  coefficients: Int16Array;
}

function encodeBlock(writer: BitWriter, scratch: Scratch, plane: Float32Array, stride: number, x0: number, y0: number, c: Component): void {
  const { block, coefficients } = scratch;
  for (let y = 0; y < 8; y++) {
    const row = (y0 + y) * stride + x0;
    for (let x = 0; x < 8; x++) block[y * 8 + x] = (plane[row + x] as number) - 128;
  }
  for (let i = 0; i < 8; i++) dct8(block, i * 8, 1);
  for (let i = 0; i < 8; i++) dct8(block, i, 8);
  for (let i = 0; i < 64; i++) {
    const natural = ZIGZAG[i] as number;
    coefficients[i] = Math.round((block[natural] as number) * (c.divisors[natural] as number));
  }
  const dc = coefficients[0] as number;
  emit(writer, c.dc, 0, dc - c.previousDc);
  c.previousDc = dc;
  let run = 0;
  for (let i = 1; i < 64; i++) {
    const v = coefficients[i] as number;
    if (v === 0) {
      run++;
      continue;
    }
    while (run > 15) {
      writer.write(c.ac.codes[0xf0] as number, c.ac.lengths[0xf0] as number);
      run -= 16;
    }
    emit(writer, c.ac, run << 4, v);
    run = 0;
  }
  if (run > 0) writer.write(c.ac.codes[0] as number, c.ac.lengths[0] as number);
}

/** The symbol (run in the high nibble, size category low) and the value's extra bits. */
function emit(writer: BitWriter, table: HuffmanTable, runNibble: number, value: number): void {
  const magnitude = Math.abs(value);
  let size = 0;
  while (magnitude >> size) size++;
  const symbol = runNibble | size;
  writer.write(table.codes[symbol] as number, table.lengths[symbol] as number);
  if (size > 0) writer.write(value < 0 ? value + (1 << size) - 1 : value, size);
}

function segment(marker: number, body: readonly number[] | Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  out[0] = 0xff;
  out[1] = marker;
  out[2] = (body.length + 2) >> 8;
  out[3] = (body.length + 2) & 0xff;
  out.set(body, 4);
  return out;
}

const dht = (tableClass: number, id: number, spec: HuffmanSpec): number[] => [(tableClass << 4) | id, ...spec.bits, ...spec.values];

/** Y, Cb, Cr planes padded to whole 16x16 MCUs (edges replicated), chroma averaged 2x2. */
function planes(
  rgb: Uint8Array,
  width: number,
  height: number,
): { y: Float32Array; cb: Float32Array; cr: Float32Array; w: number; h: number } {
  const w = Math.ceil(width / 16) * 16;
  const h = Math.ceil(height / 16) * 16;
  const y = new Float32Array(w * h);
  const cbFull = new Float32Array(w * h);
  const crFull = new Float32Array(w * h);
  for (let row = 0; row < h; row++) {
    const src = Math.min(row, height - 1) * width;
    for (let col = 0; col < w; col++) {
      const p = (src + Math.min(col, width - 1)) * 3;
      const r = rgb[p] as number,
        g = rgb[p + 1] as number,
        b = rgb[p + 2] as number;
      const i = row * w + col;
      y[i] = 0.299 * r + 0.587 * g + 0.114 * b;
      cbFull[i] = -0.168736 * r - 0.331264 * g + 0.5 * b + 128;
      crFull[i] = 0.5 * r - 0.418688 * g - 0.081312 * b + 128;
    }
  }
  const half = (full: Float32Array): Float32Array => {
    const out = new Float32Array((w / 2) * (h / 2));
    for (let row = 0; row < h / 2; row++) {
      for (let col = 0; col < w / 2; col++) {
        const i = row * 2 * w + col * 2;
        out[row * (w / 2) + col] =
          ((full[i] as number) + (full[i + 1] as number) + (full[i + w] as number) + (full[i + w + 1] as number)) / 4;
      }
    }
    return out;
  };
  return { y, cb: half(cbFull), cr: half(crFull), w, h };
}

/**
 * Encodes 8-bit RGB (row-major) as a baseline JPEG. `segments` (complete marker segments, such as an
 * EXIF APP1) go right after SOI.
 */
export function encodeJpeg(rgb: Uint8Array, width: number, height: number, quality: number, segments: readonly Uint8Array[] = []): Buffer {
  if (width < 1 || height < 1 || width > 65535 || height > 65535) throw new RangeError(`cannot encode a ${width}x${height} JPEG`);
  const lumaQuant = scaledQuant(LUMA_QUANT, quality);
  const chromaQuant = scaledQuant(CHROMA_QUANT, quality);
  const header: Uint8Array[] = [
    new Uint8Array([0xff, 0xd8]),
    ...segments,
    segment(0xdb, [0, ...ZIGZAG.map((i) => lumaQuant[i] ?? 1), 1, ...ZIGZAG.map((i) => chromaQuant[i] ?? 1)]),
    segment(0xc0, [8, height >> 8, height & 0xff, width >> 8, width & 0xff, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]),
    segment(0xc4, [...dht(0, 0, DC_LUMA), ...dht(1, 0, AC_LUMA), ...dht(0, 1, DC_CHROMA), ...dht(1, 1, AC_CHROMA)]),
    segment(0xda, [3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]),
  ];
  const { y, cb, cr, w, h } = planes(rgb, width, height);
  const luma: Component = { divisors: dctDivisors(lumaQuant), dc: huffmanTable(DC_LUMA), ac: huffmanTable(AC_LUMA), previousDc: 0 };
  const chroma = { divisors: dctDivisors(chromaQuant), dc: huffmanTable(DC_CHROMA), ac: huffmanTable(AC_CHROMA) };
  const blue: Component = { ...chroma, previousDc: 0 };
  const red: Component = { ...chroma, previousDc: 0 };
  const writer = new BitWriter((width * height) / 4);
  const scratch: Scratch = { block: new Float32Array(64), coefficients: new Int16Array(64) };
  for (let my = 0; my < h; my += 16) {
    for (let mx = 0; mx < w; mx += 16) {
      encodeBlock(writer, scratch, y, w, mx, my, luma);
      encodeBlock(writer, scratch, y, w, mx + 8, my, luma);
      encodeBlock(writer, scratch, y, w, mx, my + 8, luma);
      encodeBlock(writer, scratch, y, w, mx + 8, my + 8, luma);
      encodeBlock(writer, scratch, cb, w / 2, mx / 2, my / 2, blue);
      encodeBlock(writer, scratch, cr, w / 2, mx / 2, my / 2, red);
    }
  }
  return Buffer.concat([...header, writer.finish(), new Uint8Array([0xff, 0xd9])]);
}
