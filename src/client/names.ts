/** The fleet commands of the CLI; a module of its own so main can tell them apart without loading them. */
export const CLIENT_COMMANDS = ['capture', 'collect', 'watch', 'status', 'dashboard', 'ha-remove'] as const;
export type ClientCommand = (typeof CLIENT_COMMANDS)[number];

export const isClientCommand = (name: string | undefined): name is ClientCommand =>
  (CLIENT_COMMANDS as readonly string[]).includes(name ?? '');
