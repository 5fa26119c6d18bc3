import { crc32, deflateSync } from 'node:zlib';

/** The app's other `-e` encodings, from 8-bit RGB: PNG, BMP, and the raw buffer formats. */

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

export function encodePng(rgb: Uint8Array, width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, no filter method extras, no interlace
  const rows = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) rows.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (width * 3 + 1) + 1);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(rows, { level: 1 })),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

export function encodeBmp(rgb: Uint8Array, width: number, height: number): Buffer {
  const stride = Math.ceil((width * 3) / 4) * 4;
  const buf = Buffer.alloc(54 + stride * height);
  buf.write('BM', 0, 'latin1');
  buf.writeUInt32LE(buf.length, 2);
  buf.writeUInt32LE(54, 10);
  buf.writeUInt32LE(40, 14);
  buf.writeInt32LE(width, 18);
  buf.writeInt32LE(height, 22); // positive: rows bottom-up
  buf.writeUInt16LE(1, 26);
  buf.writeUInt16LE(24, 28);
  buf.writeUInt32LE(stride * height, 34);
  for (let y = 0; y < height; y++) {
    const row = 54 + (height - 1 - y) * stride;
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      buf[row + x * 3] = rgb[p + 2] ?? 0;
      buf[row + x * 3 + 1] = rgb[p + 1] ?? 0;
      buf[row + x * 3 + 2] = rgb[p] ?? 0;
    }
  }
  return buf;
}

export function encodeRgb48(rgb: Uint8Array): Buffer {
  const buf = Buffer.alloc(rgb.length * 2);
  for (let i = 0; i < rgb.length; i++) buf.writeUInt16LE((rgb[i] ?? 0) * 257, i * 2);
  return buf;
}

/** Planar YUV 4:2:0 (I420), as the app's `yuv420` output. */
export function encodeYuv420(rgb: Uint8Array, width: number, height: number): Buffer {
  const cw = Math.ceil(width / 2);
  const ch = Math.ceil(height / 2);
  const buf = Buffer.alloc(width * height + cw * ch * 2);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      buf[y * width + x] = Math.round(0.299 * (rgb[p] ?? 0) + 0.587 * (rgb[p + 1] ?? 0) + 0.114 * (rgb[p + 2] ?? 0));
    }
  }
  for (let y = 0; y < ch; y++) {
    for (let x = 0; x < cw; x++) {
      const p = (Math.min(height - 1, y * 2) * width + Math.min(width - 1, x * 2)) * 3;
      const r = rgb[p] ?? 0,
        g = rgb[p + 1] ?? 0,
        b = rgb[p + 2] ?? 0;
      buf[width * height + y * cw + x] = Math.round(-0.168736 * r - 0.331264 * g + 0.5 * b + 128);
      buf[width * height + cw * ch + y * cw + x] = Math.round(0.5 * r - 0.418688 * g - 0.081312 * b + 128);
    }
  }
  return buf;
}
