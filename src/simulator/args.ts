/**
 * The command line of rpicam-still, parsed the way boost::program_options does it for the app:
 * long options with `--name value` or `--name=value`, unambiguous prefixes of long names accepted,
 * short options with the value next or attached (`-t 0`, `-t0`), switches that take a value only when
 * attached (`--hflip`, `--hflip=0`), no positional arguments. Errors carry boost's wording, which the
 * app prints as `ERROR: *** <message> ***`.
 */

export class UsageError extends Error {
  override name = 'UsageError';
}

type Kind = 'switch' | 'value' | 'implicit';

interface OptionSpec {
  long: string;
  short?: string;
  kind: Kind;
  /** For `implicit` options: the value when none is attached (`-v` means `-v 2`). */
  implicit?: string;
  /** Options that may be given more than once (`--exif`). */
  repeatable?: boolean;
}

const sw = (long: string, short?: string): OptionSpec => ({ long, kind: 'switch', ...(short ? { short } : {}) });
const val = (long: string, short?: string): OptionSpec => ({ long, kind: 'value', ...(short ? { short } : {}) });

/** The options of rpicam-still (common options and still options) that the simulator knows. */
const SPECS: readonly OptionSpec[] = [
  sw('help', 'h'),
  sw('version'),
  sw('list-cameras'),
  { long: 'verbose', short: 'v', kind: 'implicit', implicit: '2' },
  val('output', 'o'),
  val('timeout', 't'),
  sw('nopreview', 'n'),
  val('preview', 'p'),
  sw('fullscreen', 'f'),
  sw('qt-preview'),
  val('width'),
  val('height'),
  val('mode'),
  val('viewfinder-mode'),
  val('viewfinder-width'),
  val('viewfinder-height'),
  val('lores-width'),
  val('lores-height'),
  val('buffer-count'),
  val('viewfinder-buffer-count'),
  val('info-text'),
  sw('hflip'),
  sw('vflip'),
  val('rotation'),
  val('roi'),
  val('shutter'),
  val('gain'),
  val('analoggain'),
  val('metering'),
  val('exposure'),
  val('ev'),
  val('awb'),
  val('awbgains'),
  val('brightness'),
  val('contrast'),
  val('saturation'),
  val('sharpness'),
  val('framerate'),
  val('denoise'),
  val('hdr'),
  val('tuning-file'),
  val('post-process-file'),
  val('camera'),
  val('metadata'),
  val('metadata-format'),
  sw('flush'),
  val('autofocus-mode'),
  val('autofocus-range'),
  val('autofocus-speed'),
  val('autofocus-window'),
  val('lens-position'),
  val('quality', 'q'),
  { long: 'exif', short: 'x', kind: 'value', repeatable: true },
  val('timelapse'),
  val('framestart'),
  sw('datetime'),
  sw('timestamp'),
  val('restart'),
  sw('keypress', 'k'),
  sw('signal', 's'),
  val('thumb'),
  val('encoding', 'e'),
  sw('raw', 'r'),
  val('latest'),
  sw('immediate'),
  sw('autofocus-on-capture'),
  sw('zsl'),
];

const BY_LONG = new Map(SPECS.map((spec) => [spec.long, spec]));
const BY_SHORT = new Map(SPECS.filter((spec) => spec.short).map((spec) => [spec.short as string, spec]));

/** Parsed options: long name → raw values (switches give `true`, or the value attached). */
export type RawOptions = Map<string, string[]>;

function findLong(name: string, token: string): OptionSpec {
  const exact = BY_LONG.get(name);
  if (exact) return exact;
  // boost's allow_guessing: an unambiguous prefix names the option.
  const matches = name === '' ? [] : SPECS.filter((spec) => spec.long.startsWith(name));
  if (matches.length === 1 && matches[0]) return matches[0];
  if (matches.length > 1)
    throw new UsageError(`option '${token}' is ambiguous and matches ${matches.map((m) => `'--${m.long}'`).join(', ')}`);
  throw new UsageError(`unrecognised option '${token}'`);
}

function store(options: RawOptions, spec: OptionSpec, value: string): void {
  const values = options.get(spec.long);
  if (values && !spec.repeatable) throw new UsageError(`option '--${spec.long}' cannot be specified more than once`);
  if (values) values.push(value);
  else options.set(spec.long, [value]);
}

export function parseArgs(argv: readonly string[]): RawOptions {
  const options: RawOptions = new Map();
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] ?? '';
    let spec: OptionSpec;
    let attached: string | undefined;
    if (token.startsWith('--') && token.length > 2) {
      const eq = token.indexOf('=');
      const name = eq === -1 ? token.slice(2) : token.slice(2, eq);
      spec = findLong(name, eq === -1 ? token : token.slice(0, eq));
      if (eq !== -1) attached = token.slice(eq + 1);
    } else if (token.startsWith('-') && token.length > 1 && token !== '--') {
      const found = BY_SHORT.get(token[1] ?? '');
      if (!found) throw new UsageError(`unrecognised option '${token.slice(0, 2)}'`);
      spec = found;
      if (token.length > 2) attached = token.slice(2);
    } else {
      throw new UsageError('too many positional options have been specified on the command line');
    }
    const display = spec.short && !token.startsWith('--') ? `-${spec.short}` : `--${spec.long}`;
    if (spec.kind === 'value') {
      if (attached === undefined) {
        const next = argv[i + 1];
        if (next === undefined) throw new UsageError(`the required argument for option '${display}' is missing`);
        attached = next;
        i++;
      }
      store(options, spec, attached);
    } else if (spec.kind === 'implicit') {
      store(options, spec, attached ?? spec.implicit ?? 'true');
    } else {
      if (attached !== undefined) parseBool(attached, display);
      store(options, spec, attached ?? 'true');
    }
  }
  return options;
}

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

function parseBool(value: string, option: string): boolean {
  const lower = value.toLowerCase();
  if (TRUE.has(lower)) return true;
  if (FALSE.has(lower)) return false;
  throw new UsageError(`the argument ('${value}') for option '${option}' is invalid`);
}

/** Typed access to parsed options, with boost's "invalid argument" wording for bad values. */
export class Options {
  constructor(private readonly raw: RawOptions) {}

  has(name: string): boolean {
    return this.raw.has(name);
  }

  string(name: string): string | undefined {
    return this.raw.get(name)?.at(-1);
  }

  all(name: string): string[] {
    return this.raw.get(name) ?? [];
  }

  flag(name: string): boolean {
    const value = this.string(name);
    return value === undefined ? false : parseBool(value, `--${name}`);
  }

  number(name: string, check: (n: number) => boolean = Number.isFinite): number | undefined {
    const value = this.string(name);
    if (value === undefined) return undefined;
    const n = value.trim() === '' ? Number.NaN : Number(value);
    if (!check(n)) throw new UsageError(`the argument ('${value}') for option '--${name}' is invalid`);
    return n;
  }

  integer(name: string, min = Number.MIN_SAFE_INTEGER): number | undefined {
    return this.number(name, (n) => Number.isSafeInteger(n) && n >= min);
  }
}

const UNITS_MS: Readonly<Record<string, number>> = { min: 60_000, s: 1000, sec: 1000, ms: 1, us: 0.001, ns: 0.000_001 };

/**
 * A duration the way the apps read it: a number with an optional unit (`min`, `s`/`sec`, `ms`, `us`,
 * `ns`); a bare number is in `bareUnit`. Returns milliseconds.
 */
export function parseDuration(value: string, option: string, bareUnit: 'ms' | 'us'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  const unit = match?.[2]?.toLowerCase() || bareUnit;
  const scale = UNITS_MS[unit];
  if (!match?.[1] || scale === undefined) throw new UsageError(`Invalid time string provided for ${option}: ${value}`);
  return Number(match[1]) * scale;
}
