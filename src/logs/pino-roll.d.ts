/** The slice of pino-roll's options this project uses (the package ships no types). */
declare module 'pino-roll' {
  import type pino from 'pino';

  interface PinoRollOptions {
    file: string;
    size?: number | string;
    frequency?: 'daily' | 'hourly' | number;
    extension?: string;
    symlink?: boolean;
    limit?: { count: number; removeOtherLogFiles?: boolean };
    dateFormat?: string;
    mkdir?: boolean;
    sync?: boolean;
  }

  export default function pinoRoll(options: PinoRollOptions): Promise<ReturnType<typeof pino.destination>>;
}
