/** Every topic of one node, in one place: the plane, delivery, Home Assistant and the client use these. */
export interface NodeTopics {
  /** Commands for this node alone. */
  cmd: string;
  /** Replies to commands that carry no MQTT 5 response topic. */
  res: string;
  availability: string;
  status: string;
  telemetry: string;
  events: string;
  preview: string;
  /** Prefix of the chunked image transfer: `<images>/<filename>/manifest`, `<images>/<filename>/chunk/<i>`. */
  images: string;
}

export function nodeTopics(prefix: string, nodeId: string): NodeTopics {
  const base = `${prefix}/${nodeId}`;
  return {
    cmd: `${base}/cmd`,
    res: `${base}/res`,
    availability: `${base}/availability`,
    status: `${base}/status`,
    telemetry: `${base}/telemetry`,
    events: `${base}/events`,
    preview: `${base}/preview`,
    images: `${base}/images`,
  };
}

/** The fleet broadcast: every node subscribes to it. */
export const broadcastTopic = (prefix: string): string => `${prefix}/all/cmd`;
export const groupTopic = (prefix: string, group: string): string => `${prefix}/group/${group}/cmd`;

/** Every topic a node takes commands from. */
export function commandTopics(prefix: string, nodeId: string, groups: readonly string[]): string[] {
  return [nodeTopics(prefix, nodeId).cmd, broadcastTopic(prefix), ...groups.map((group) => groupTopic(prefix, group))];
}

/**
 * Node ids and group names become single topic levels, so they must not contain the separators or
 * wildcards; the config schema enforces that, this guards what arrives from elsewhere (the client).
 */
export const isTopicLevel = (value: string): boolean => value.length > 0 && !/[/+#\u0000]/.test(value);

/** Collectors announce themselves here (retained `online` / `offline`, Last Will `offline`). */
export const collectorAvailabilityFilter = (prefix: string): string => `${prefix}/collectors/+/availability`;

/** Whether `topic` matches an MQTT filter with `+` and a trailing `#`. */
export function topicMatches(filter: string, topic: string): boolean {
  const want = filter.split('/');
  const have = topic.split('/');
  for (let i = 0; i < want.length; i += 1) {
    if (want[i] === '#') return i === want.length - 1;
    if (i >= have.length || (want[i] !== '+' && want[i] !== have[i])) return false;
  }
  return want.length === have.length;
}
